"""English in one place: tokens, articles, plurals, number words, lists, relation and attribute phrases.

Every writer of text about a scene (the grounded captioner, the narratives, the synthetic benchmark files)
and every reader of it (the fact checker, the answer normalisation of `core.eval.answers`) uses these
functions, so that what is written can be read back and no module keeps its own copy of English rules.

- Tokens: `scanrefer_tokens` is ScanRefer's `token` field (punctuation and clitics as tokens); `words` is
  the same split with only the words kept ("2", "l-shaped" and "twenty-one" stay whole).
- Nouns: `plural` / `singular` act on a label's head noun (its last word: "kitchen cabinet" -> "kitchen
  cabinets"), with irregular forms (mouse -> mice, shelf -> shelves, person -> people) and nouns that are
  plural already ("clothes", "papers", "kitchen cabinets": `is_plural`); `singular_phrase` is the name a
  label is matched by. `indefinite` picks "a" / "an" by sound ("an orange", "a unicorn", "an L-shaped
  desk") and "some" for plural or uncountable nouns; `be` and `pronoun` agree with them.
- Numbers: `number_word` (0 -> "zero", 23 -> "twenty-three") and `parse_number` ("two", "2",
  "twenty-one" -> int) both ways; `count_phrase` says "two chairs", "one chair"; `answer_number` is a
  count as a short answer in the form the answer normalisation writes (`SPELLED_IN_ANSWERS`).
- `join_words`: "a, b and c".
- Relations: `RELATION_PHRASES` holds the English of every predicate of `core.scene.relations` (the
  canonical phrase first, then variants a writer may draw); `relation_phrase` fills in the anchors;
  `READING_PHRASES` adds what a reader should also understand ("underneath", "far away from").
- Attributes: material and shape values as words before a noun (`attribute_adjective`: "wooden",
  "drum-shaped") and after "it is" (`attribute_predicate`: "made of metal", "round"), never "It is mesh.".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# ------------------------------------------------------------------------------------------------ tokens

_TOKEN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*|'(?:s|re|ve|ll|d|m|t)\b|[^\sa-z0-9]")


def scanrefer_tokens(text: str) -> list[str]:
    """Lower-case words (hyphenated ones kept whole), with punctuation and clitics ("'s") as tokens of
    their own: "It's the L-shaped desk." -> it 's the l-shaped desk ."""
    return _TOKEN.findall(text.lower())


def words(text: str) -> list[str]:
    """The words of `scanrefer_tokens` (numbers included), without punctuation and clitics."""
    return [t for t in scanrefer_tokens(text) if t[0].isalnum()]


def sentence(text: str) -> str:
    """One sentence: trimmed, first letter upper-case, ending in a full stop unless it has its own."""
    text = " ".join(text.split())
    if not text:
        return ""
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


# ------------------------------------------------------------------------------------------------- nouns

# Singular -> plural where adding "s" / "es" is wrong; the reverse map reads them back.
IRREGULAR_PLURALS = {
    "mouse": "mice", "person": "people", "child": "children", "man": "men", "woman": "women",
    "foot": "feet", "tooth": "teeth", "goose": "geese", "die": "dice", "shelf": "shelves", "leaf": "leaves",
    "knife": "knives", "half": "halves", "wife": "wives", "life": "lives", "scarf": "scarves",
    "wolf": "wolves",
    "loaf": "loaves", "thief": "thieves", "calf": "calves", "potato": "potatoes", "tomato": "tomatoes",
    "hero": "heroes", "echo": "echoes", "cactus": "cacti", "shoe": "shoes", "toe": "toes",
    "canoe": "canoes", "house": "houses", "bus": "buses", "gas": "gases", "canvas": "canvases",
    "atlas": "atlases", "lens": "lenses", "iris": "irises", "radius": "radii",
}  # fmt: skip
_SINGULARS = {p: s for s, p in IRREGULAR_PLURALS.items()}
# Nouns said in the plural only ("the clothes are"), uncountable ones ("some furniture"), and nouns the
# same in both numbers: each is its own plural.
PLURAL_ONLY = frozenset(
    {"clothes", "pants", "trousers", "jeans", "shorts", "scissors", "pajamas", "binoculars", "tongs",
     "headphones", "earphones", "blinds", "stairs", "belongings", "groceries", "toiletries"}
)  # fmt: skip
UNCOUNTABLE = frozenset(
    {"clothing", "furniture", "equipment", "luggage", "laundry", "news", "stuff", "trash", "rubbish",
     "garbage", "mail", "hair", "bedding", "cutlery", "dishware", "glassware", "kitchenware", "jewelry",
     "information", "paperwork", "software", "hardware"}
)  # fmt: skip
SAME_BOTH_WAYS = frozenset({"sheep", "fish", "deer", "series", "species", "aircraft", "chassis"})
INVARIANT = PLURAL_ONLY | UNCOUNTABLE | SAME_BOTH_WAYS
# Singular words that end in "s" and are no plurals.
_SINGULAR_IN_S = frozenset({"bias", "chaos", "cosmos", "tennis", "dais", "bonus", "campus", "virus", "status",
                            "analysis", "basis", "oasis", "thesis"})  # fmt: skip
_VES = ("shelf", "knife", "leaf")  # compounds end in them: bookshelf -> bookshelves


def _split_head(phrase: str) -> tuple[str, str]:
    """(everything before the last word including its space, last word) of a label, `_` read as a space."""
    text = " ".join(phrase.replace("_", " ").split())
    cut = text.rfind(" ") + 1
    return text[:cut], text[cut:]


def _plural_word(word: str) -> str:
    low = word.lower()
    if not low or low in INVARIANT or _is_plural_word(low):
        return word
    if low in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[low]
    for stem in _VES:  # bookshelf -> bookshelves
        if low.endswith(stem):
            return word[: len(word) - len(stem)] + IRREGULAR_PLURALS[stem]
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        return word[:-1] + "ies"
    return word + "s"


def _singular_word(word: str) -> str:
    low = word.lower()
    if low in INVARIANT or low in _SINGULAR_IN_S or low in IRREGULAR_PLURALS:
        return word
    if low in _SINGULARS:
        return _SINGULARS[low]
    for stem in _VES:  # bookshelves -> bookshelf
        if low.endswith(IRREGULAR_PLURALS[stem]):
            return word[: len(word) - len(IRREGULAR_PLURALS[stem])] + stem
    if low.endswith("ies") and len(low) > 4:
        return word[:-3] + "y"
    if low.endswith(("sses", "xes", "zzes", "ches", "shes")):
        return word[:-2]
    if low.endswith("s") and not low.endswith(("ss", "us", "is", "'s")) and len(low) > 2:
        return word[:-1]
    return word


def _is_plural_word(word: str) -> bool:
    low = word.lower()
    return low in _SINGULARS or (low not in IRREGULAR_PLURALS and _singular_word(low) != low)


def plural(phrase: str) -> str:
    """The plural of a label, formed on its head noun: box -> boxes, bookshelf -> bookshelves, kitchen
    cabinet -> kitchen cabinets, mouse -> mice, person -> people, paper -> papers; a noun that is plural
    already stays ("clothes", "kitchen cabinets")."""
    before, head = _split_head(phrase)
    return before + _plural_word(head)


def singular(phrase: str) -> str:
    """The singular of a label's head noun: boxes -> box, bookshelves -> bookshelf, mice -> mouse, kitchen
    cabinets -> kitchen cabinet; singular words ending in s stay ("glass", "dress", "bus", "clothes")."""
    before, head = _split_head(phrase)
    return before + _singular_word(head)


def singular_phrase(label: str) -> str:
    """The name a label is matched by: lower-case, `_` as spaces, head noun singular."""
    return singular(label.lower())


def is_plural(phrase: str) -> bool:
    """Does the label name several things, or a plural-only noun ("books", "clothes", "kitchen cabinets")?
    Verbs and pronouns agree with it (`be`, `pronoun`)."""
    _, head = _split_head(phrase.lower())
    return head in PLURAL_ONLY or _is_plural_word(head)


def be(phrase: str) -> str:
    """The verb "is" or "are", agreeing with the noun phrase."""
    return "are" if is_plural(phrase) else "is"


_PRONOUNS = {"subject": ("it", "they"), "object": ("it", "them"), "possessive": ("its", "their")}


def pronoun(phrase: str, case: str = "subject") -> str:
    """The pronoun for the noun phrase: "it" / "they" (subject), "it" / "them" (object), "its" / "their"
    (possessive)."""
    return _PRONOUNS[case][is_plural(phrase)]


# --------------------------------------------------------------------------------------------- articles

_VOWEL_LETTERS = frozenset("aefhilmnorsx")  # letters whose name starts with a vowel sound: "an L"
_AN_WORDS = ("hour", "honest", "honor", "honour", "heir", "herb")  # silent h
# Vowel letters that sound like "y" or "w": a unicorn, a one-seat couch.
_A_PREFIXES = ("uni", "use", "usu", "usa", "uten", "uti", "uri", "ure", "uro", "uku", "ufo", "eu", "ewe",
               "one", "once", "ouija")  # fmt: skip
_AN_EXCEPTIONS = ("unin", "unim", "unid")  # an unimportant, an unidentified (but a unique, a unicorn)
_ACRONYMS = {"tv": "a", "usb": "a", "hdmi": "an", "led": "an", "lcd": "an", "dvd": "a", "pc": "a",
             "cd": "a", "fm": "an", "mp3": "an", "xbox": "an", "hvac": "an", "ac": "an"}  # fmt: skip


def indefinite_article(phrase: str) -> str:
    """The article "a" or "an" by the sound of the first word: an orange, an ottoman, an hour, an
    L-shaped desk, an 8, a unicorn, a one-seat couch, a TV."""
    first = re.split(r"[\s_]+", phrase.strip().lower(), maxsplit=1)[0] if phrase.strip() else ""
    if not first:
        return "a"
    if first in _ACRONYMS:
        return _ACRONYMS[first]
    segment = first.split("-")[0]
    if len(segment) == 1 and segment.isalpha():  # a letter said by its name: an L-shaped, a U-shaped
        return "an" if segment in _VOWEL_LETTERS else "a"
    if first[0].isdigit():
        digits = re.match(r"\d+", first).group()
        if len(digits) <= 2:
            return "an" if number_word(int(digits)).startswith(("eight", "eleven")) else "a"
        group = digits[: (len(digits) - 1) % 3 + 1]  # the leading group said first: "eleven thousand"
        return "an" if group in ("8", "11", "18") or group.startswith("8") else "a"
    if first.startswith(_AN_WORDS):
        return "an"
    if first.startswith(_A_PREFIXES) and not first.startswith(_AN_EXCEPTIONS):
        return "a"
    return "an" if first[0] in "aeiou" else "a"


def indefinite(phrase: str) -> str:
    """The phrase with its indefinite article: "an orange chair", "a box", "some clothes", "some books"."""
    _, head = _split_head(phrase.lower())
    if head in UNCOUNTABLE or is_plural(phrase):
        return f"some {phrase}"
    return f"{indefinite_article(phrase)} {phrase}"


# ---------------------------------------------------------------------------------------------- numbers

NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
COUNT_WORDS = {"both": 2, "no": 0, "none": 0}  # quantifiers that state a count


def number_word(n: int) -> str:
    """A whole number in words, 0-99 ("zero", "seven", "twenty-three"); digits beyond or below."""
    if 0 <= n < len(NUMBER_WORDS):
        return NUMBER_WORDS[n]
    if 0 <= n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else f"-{NUMBER_WORDS[n % 10]}")
    return str(n)


# The numbers that the answer normalisation of the 3D-LLM evaluations (LEO's, `core.eval.answers`) spells
# out; any other number stays in digits there.
SPELLED_IN_ANSWERS = (*range(21), 23)


def answer_number(n: int) -> str:
    """A count as a short answer, in the form answer normalisation gives it: words for 0-20 and 23
    ("two", "twenty-three"), digits otherwise ("21"), so that "21" and "2" predicted match after cleaning."""
    return number_word(n) if n in SPELLED_IN_ANSWERS else str(n)


def parse_number(word: str) -> int | None:
    """The whole number a word or digits say ("two", "2", "twenty-one", "twenty one"); None otherwise."""
    word = word.strip().lower()
    if word.isdigit():
        return int(word)
    if word in NUMBER_WORDS:
        return NUMBER_WORDS.index(word)
    parts = re.split(r"[-\s]+", word)
    if 1 <= len(parts) <= 2 and parts[0] in TENS[2:]:
        ones = NUMBER_WORDS.index(parts[1]) if len(parts) == 2 and parts[1] in NUMBER_WORDS[1:10] else None
        if len(parts) == 1 or ones is not None:
            return 10 * TENS.index(parts[0]) + (ones or 0)
    return None


def parse_count(word: str) -> int | None:
    """`parse_number`, plus the quantifiers that state a count before a plural noun ("both", "no")."""
    value = parse_number(word)
    return COUNT_WORDS.get(word.strip().lower()) if value is None else value


def count_phrase(n: int, label: str) -> str:
    """A count in words: "one chair", "two chairs", "no chairs". A label already plural counts its head
    noun ("one kitchen cabinet" of "kitchen cabinets"); a plural-only or uncountable one counts sets or
    pieces ("some clothes", "two sets of clothes", "three pieces of furniture")."""
    _, head = _split_head(label.lower())
    if head in PLURAL_ONLY or head in UNCOUNTABLE:
        unit = "sets" if head in PLURAL_ONLY else "pieces"
        if n <= 1:
            return f"no {label}" if n == 0 else indefinite(label)
        return f"{number_word(n)} {unit} of {label}"
    if n == 0:
        return f"no {plural(label)}"
    return f"one {singular(label)}" if n == 1 else f"{number_word(n)} {plural(label)}"


def join_words(items: Sequence[str], conjunction: str = "and") -> str:
    """A list in words: "a", "a and b", "a, b and c"."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


# -------------------------------------------------------------------------------------------- relations

# predicate of `core.scene.relations` -> phrases after the subject, canonical first. {0} and {1} are the
# anchors as noun phrases ("the bed"), {s} the subject's label (rankings within its class).
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "on": ("on {0}", "on top of {0}"),
    "in": ("in {0}", "inside {0}"),
    "under": ("under {0}", "beneath {0}"),
    "above": ("above {0}",),
    "below": ("below {0}",),
    "next to": ("next to {0}", "beside {0}"),
    "near": ("near {0}", "close to {0}"),
    "far from": ("far from {0}",),
    "between": ("between {0} and {1}",),
    "closest to": ("closest to {0}",),
    "farthest from": ("farthest from {0}",),
    "largest": ("the largest {s} in the room",),
    "smallest": ("the smallest {s} in the room",),
    "tallest": ("the tallest {s} in the room",),
    "shortest": ("the shortest {s} in the room",),
    "against the wall": ("against the wall", "by the wall"),
    "in the corner": ("in the corner", "in the corner of the room", "in a corner of the room"),
    "in the middle of the room": ("in the middle of the room", "in the center of the room"),
    "left of": ("to the left of {0}",),
    "right of": ("to the right of {0}",),
    "in front of": ("in front of {0}",),
    "behind": ("behind {0}",),
    "leftmost": ("on the far left",),
    "rightmost": ("on the far right",),
}
# Further phrases a reader takes for a predicate (what people write), beyond `RELATION_PHRASES`.
READING_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("left of",),
    "right of": ("right of",),
    "closest to": ("nearest to",),
    "farthest from": ("furthest from",),
    "far from": ("far away from", "away from"),
    "on": ("lying on", "sitting on"),
    "in": ("inside of",),
    "under": ("underneath",),
    "against the wall": ("against a wall", "next to the wall", "on the wall", "on a wall"),
    "in the corner": ("in a corner",),
}
SUPERLATIVE_PREDICATES = ("largest", "smallest", "tallest", "shortest")
# Rankings within the subject's class: "It is the window closest to the couch." With the subject's label the
# phrase names the class, so a reader does not take "closest to the couch" as "the couch is its nearest
# object"; after a noun ("the chair closest to the bed") the plain phrase is used.
RANKING_PREDICATES = ("closest to", "farthest from")
ROOM_PREDICATES = ("against the wall", "in the corner", "in the middle of the room")


def relation_phrase(predicate: str, anchors: Sequence[str] = (), subject: str = "", variant: int = 0) -> str:
    """A relation in words after its subject: relation_phrase("between", ["the desk", "the bed"]) ->
    "between the desk and the bed"; `anchors` are noun phrases with their determiner; `variant` picks
    one of the predicate's phrasings (`RELATION_PHRASES`), the canonical one by default. With `subject`,
    rankings name the class: relation_phrase("closest to", ["the couch"], "window") -> "the window closest
    to the couch"."""
    options = RELATION_PHRASES.get(predicate)
    if options is None:
        raise ValueError(f"no English for the relation {predicate!r}")
    template = options[variant % len(options)]
    wanted = template.count("{0}") + template.count("{1}")
    if len(anchors) < wanted:
        raise ValueError(f"the relation {predicate!r} needs {wanted} anchor(s), got {len(anchors)}")
    phrase = template.format(*anchors, s=subject)
    return f"the {subject} {phrase}" if predicate in RANKING_PREDICATES and subject else phrase


def relation_words() -> dict[tuple[str, ...], str]:
    """Every phrase that names a relation, as words before its anchors -> predicate: ("to", "the", "left",
    "of") -> "left of". Rankings of a class ("the largest chair") are adjectives, not listed here."""
    out: dict[tuple[str, ...], str] = {}
    for predicate, phrases in [*RELATION_PHRASES.items(), *READING_PHRASES.items()]:
        if predicate in SUPERLATIVE_PREDICATES:
            continue
        for phrase in phrases:
            lead = phrase.split("{0}")[0] if "{0}" in phrase else phrase
            out.setdefault(tuple(words(lead)), predicate)
    return out


# ------------------------------------------------------------------------------------------- attributes

# Material values -> (before a noun, after "it is"); a value not listed reads "<value>" / "made of <value>".
MATERIALS = {
    "wooden": ("wooden", "made of wood"), "wood": ("wooden", "made of wood"),
    "metal": ("metal", "made of metal"), "metallic": ("metal", "made of metal"),
    "plastic": ("plastic", "made of plastic"), "fabric": ("fabric", "covered in fabric"),
    "leather": ("leather", "covered in leather"), "mesh": ("mesh", "made of mesh"),
    "laminate": ("laminate", "made of laminate"), "stone": ("stone", "made of stone"),
    "granite": ("granite", "made of granite"), "ceramic": ("ceramic", "made of ceramic"),
    "cardboard": ("cardboard", "made of cardboard"), "glass": ("glass", "made of glass"),
    "paper": ("paper", "made of paper"), "rubber": ("rubber", "made of rubber"),
}  # fmt: skip
# Material words a reader takes, as the material they name.
MATERIAL_WORDS = {word: ("wood" if word in ("wooden", "wood") else "metal" if word == "metallic" else word)
                  for word in MATERIALS}  # fmt: skip
# Shape values that are nouns: said as "<value>-shaped".
_SHAPE_NOUNS = frozenset({"drum", "cone", "globe", "l", "u", "bowl", "ball", "cylinder", "star", "heart"})
# Shape values said otherwise: (before a noun, after "it is").
SHAPES = {
    "landscape": ("landscape-format", "in landscape format"),
    "portrait": ("portrait-format", "in portrait format"),
}


def material_name(value: str) -> str:
    """The material a value names, as a reader compares it: "wooden" -> "wood", "metallic" -> "metal"."""
    value = value.strip().lower()
    return MATERIAL_WORDS.get(value, value)


def attribute_adjective(kind: str, value: str) -> str:
    """An attribute value as a word before the noun: material "wooden", shape "drum" -> "drum-shaped"."""
    value = value.strip().lower()
    if kind == "material":
        return MATERIALS.get(value, (value, ""))[0]
    if kind == "shape" and value in _SHAPE_NOUNS:
        return f"{value}-shaped"
    if kind == "shape" and value in SHAPES:
        return SHAPES[value][0]
    return value


def attribute_predicate(kind: str, value: str) -> str:
    """An attribute after "it is": material "mesh" -> "made of mesh", shape "round" -> "round", shape
    "cone" -> "cone-shaped"."""
    value = value.strip().lower()
    if kind == "material":
        return MATERIALS.get(value, ("", f"made of {value}"))[1]
    if kind == "shape" and value in SHAPES:
        return SHAPES[value][1]
    return attribute_adjective(kind, value)
