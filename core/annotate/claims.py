"""Read the checkable claims out of a description: category, colors, sizes, materials, counts, relations.

A small pattern reader, not a parser, used by the pipeline's verification and by `python -m core
factcheck` on any description file (ours or a human dataset's). The text is read sentence by sentence:

- Object names come from a `Vocabulary`: the scene's labels, their head nouns, the label table's names
  (raw category, category, NYU40 class) and a few explicit synonyms (`SYNONYMS`: cushion ~ pillow,
  sofa ~ couch ...). A name matches an object through `Vocabulary.names`.
- A relation phrase (`RELATION_PHRASES`, longest first) takes the next object name(s) within three words
  as its anchor(s). An anchor keeps what singles it out: "the largest chair" (a size superlative before
  the name) or "the nightstand nearest the bed" (a unique reference after it), so the checker can resolve
  the instance meant (`AnchorRef`). A relation right after another object's name ("a table which is under
  the window") is about that object (`Claim.about`), not the subject.
- A color or size word belongs to the next object name within three words, or to the subject when no
  name follows ("it is brown"); a color of another object is no claim about the subject.
- A number before a plural name is a count, in words or digits ("two chairs", "2 chairs"; `core.text.
  parse_count`, which also reads "both" and "no"): "one of the three pillows" and "there are two chairs (in
  the room)" count the room; followed by a relation ("two pillows on the bed") it counts the objects of
  that class the relation holds for; any other group ("two chairs at the table") cannot be checked.
- Words are `core.text.words` (hyphenated words whole, digits kept), so shape and material words around a
  name ("the round table", "the L-shaped desk", "the wooden chair") leave the name to be found; a color,
  size or material word that is part of a name ("white board", a "glass") is no claim.
- A sentence in which nothing can be read becomes one `kind="sentence"` claim with value "unparsed", so
  that the checker marks it unverifiable instead of letting it pass silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.scene.colors import COLOR_WORDS
from core.scene.relations import called, head_noun, normalize_label, singular_phrase
from core.text import MATERIAL_WORDS, ROOM_PREDICATES, parse_count, relation_words
from core.text import words as tokenize

SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large",
              "huge": "large"}  # fmt: skip
# Interchangeable names beyond the label table (each group names the same things).
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("couch", "sofa"),
    ("pillow", "cushion"),
    ("nightstand", "night stand", "bedside table"),
    ("tv", "television"),
    ("trash can", "trash bin", "garbage can", "garbage bin", "wastebasket", "waste bin", "trashcan"),
    ("bookshelf", "bookcase", "book shelf"),
    ("rug", "carpet"),
    ("refrigerator", "fridge"),
    ("monitor", "computer monitor", "screen"),
    ("closet", "wardrobe"),
    ("picture", "painting", "poster"),
    ("whiteboard", "white board"),
    ("armchair", "arm chair"),
    ("kitchen counter", "counter", "countertop"),
)
GENERIC_CLASSES = frozenset({"otherprop", "otherfurniture", "otherstructure", "unannotated", ""})
# Relation phrases as token sequences -> predicate of `core.scene.relations` (the English of `core.text`:
# what its writers say and what people also write); longest matched first.
RELATION_PHRASES: dict[tuple[str, ...], str] = relation_words()
# Read as relations by this reader only: a bare "nearest the X" after an anchor's name qualifies that
# anchor ("the nightstand nearest the bed"), so `_relation_at` (which others use to find anchors) omits it.
READER_PHRASES: dict[tuple[str, ...], str] = {("nearest",): "closest to"}
UNLOCATED = "unlocated"  # the predicate of a count whose group the text places in no way the reader knows
NO_ANCHOR = (*ROOM_PREDICATES, "leftmost", "rightmost")
SUPERLATIVES = ("largest", "smallest", "tallest", "shortest")
SUPERLATIVE_WORDS = {"largest": "largest", "biggest": "largest", "smallest": "smallest",
                     "tallest": "tallest", "shortest": "shortest"}  # fmt: skip
NEAREST_WORDS = (("nearest", "to"), ("closest", "to"), ("nearest",), ("closest",))
# Words that may sit between an object's name and a relation that is about that object.
LINK_WORDS = frozenset(
    {"which", "that", "is", "are", "sits", "stands", "lies", "sitting", "standing", "lying"}
)
MAX_PHRASE = max(len(k) for k in RELATION_PHRASES)


@dataclass
class AnchorRef:
    """How a sentence names an object: its name, plus what singles it out among its class."""

    name: str
    superlative: str = ""  # "largest chair"
    nearest: str = ""  # "chair nearest the bed": the reference's name

    @property
    def text(self) -> str:
        if self.superlative:
            return f"{self.superlative} {self.name}"
        return f"{self.name} nearest the {self.nearest}" if self.nearest else self.name


@dataclass
class Claim:
    """One checkable statement: kind is category, color, size, material, count, relation or sentence."""

    kind: str
    text: str  # the words of the caption it comes from
    value: str = ""  # color / size / material word, predicate, named category, count, or "unparsed"
    refs: list[AnchorRef] = field(default_factory=list)  # the objects a relation points at
    about: AnchorRef | None = None  # the object the claim is about when not the subject; count: the class

    @property
    def anchors(self) -> list[str]:
        return [r.text for r in self.refs]


@dataclass
class Mention:
    start: int
    end: int
    name: str
    plural: bool = False


class Vocabulary:
    """The object names a reader knows and which labels each can name (see the module docstring)."""

    def __init__(self, labels: Iterable[str] = (), table_rows: Iterable[tuple[str, ...]] = ()):
        self._aliases: dict[str, set[str]] = {}  # name -> the names it may stand for
        for group in SYNONYMS:
            self._link(group)
        for row in table_rows:  # (raw_category, category, nyu40 class): the first two are one thing
            names = [singular_phrase(n) for n in row[:2] if normalize_label(n) not in GENERIC_CLASSES]
            self._link(names)
            if len(row) > 2 and normalize_label(row[2]) not in GENERIC_CLASSES:
                general = singular_phrase(row[2])  # a couch is a "sofa"; an armchair a "chair"
                for n in names:
                    self._aliases.setdefault(general, {general}).add(n)
        for label in labels:
            full = singular_phrase(label)
            self._aliases.setdefault(full, {full})
            self._aliases.setdefault(head_noun(label), {head_noun(label)})
        self._aliases.pop("", None)
        self.longest = max((len(n.split()) for n in self._aliases), default=1)

    @classmethod
    def from_label_map(cls, labels: Iterable[str], label_map) -> Vocabulary:
        """Names of the scene's labels plus every name of a `core.scene.labels.LabelMap`."""
        rows = [(r.raw_category, r.category, r.nyu40_class) for r in label_map.rows.values()]
        return cls(labels, rows)

    def _link(self, names: Iterable[str]) -> None:
        group = {singular_phrase(n) for n in names if n}
        for n in group:
            self._aliases.setdefault(n, {n}).update(group)

    def __contains__(self, name: str) -> bool:
        return name in self._aliases

    def names(self, label: str, name: str) -> bool:
        """Can "the <name>" refer to an object labelled `label`? Directly (`relations.called`) or through
        a synonym or the label table (cushion -> pillow, sofa -> couch, night stand -> nightstand)."""
        name = singular_phrase(name)
        return any(called(label, alias) for alias in self._aliases.get(name, {name}))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"[.!?;]+", text) if re.search(r"[a-z]", s.lower())]


def find_mentions(tokens: list[str], vocab: Vocabulary | set[str]) -> list[Mention]:
    """Object names (of a `Vocabulary` or a set of names) in the token list, longest match first, singular
    or plural."""
    if isinstance(vocab, Vocabulary):
        longest = vocab.longest
    else:
        longest = max((len(n.split()) for n in vocab), default=1)
    out, i = [], 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            words = " ".join(tokens[i : i + n])
            phrase = singular_phrase(words)
            if phrase in vocab:
                out.append(Mention(i, i + n, phrase, plural=phrase != words))
                i += n
                break
        else:
            i += 1
    return out


def scene_names(labels: list[str]) -> set[str]:
    """Every name the scene's labels can be called by: the label and its head noun, singular."""
    names = set()
    for label in labels:
        full = singular_phrase(label)
        names.update((full, full.split()[-1] if full else ""))
    return {n for n in names if n}


def extract_claims(
    text: str, subject_label: str, labels: list[str], vocab: Vocabulary | None = None
) -> list[Claim]:
    """The claims a caption of the object labelled `subject_label` makes (see the module docstring)."""
    vocab = vocab or Vocabulary([*labels, subject_label])
    claims: list[Claim] = []
    for k, sentence in enumerate(sentences(text)):
        found = _sentence_claims(tokenize(sentence), subject_label, vocab, first=k == 0, named=bool(claims))
        if any(c.kind == "category" for c in claims):
            found = [c for c in found if c.kind != "category"]
        claims.extend(found or [Claim("sentence", sentence.lower(), "unparsed")])
    return claims


def _sentence_claims(tokens: list[str], subject_label: str, vocab: Vocabulary, first: bool, named: bool):
    mentions = find_mentions(tokens, vocab)
    at = {m.start: m for m in mentions}
    claims: list[Claim] = []
    about_subject = [m for m in mentions if vocab.names(subject_label, m.name) and not m.plural]
    named_first = next(
        (m for m in mentions if not any(_relation_at(tokens, k, reader=True)[0] for k in range(m.start))),
        None,
    )
    if about_subject:
        subject_mention = about_subject[0]
    elif first and not named and named_first and named_first.start <= 5 and not named_first.plural:
        subject_mention = named_first  # the description opens by naming what it is about: another kind?
    else:
        subject_mention = None
    if subject_mention is not None:
        claims.append(Claim("category", subject_mention.name, subject_mention.name))
    mine = lambda m: m is subject_mention or vocab.names(subject_label, m.name)  # noqa: E731

    used: set[int] = set()  # mention starts consumed as anchors or counts
    counted: list[tuple[int, Claim]] = []
    for m in mentions:
        k = m.start - 1 if m.start and tokens[m.start - 1] != "the" else m.start - 2
        if m.plural and k >= 0 and parse_count(tokens[k]) is not None:
            # The room's total only for "one of (the) three pillows", "there are two chairs (in the
            # room)"; a group placed otherwise ("two chairs at the table") is counted by a relation below
            # when one follows, else it cannot be checked.
            whole = (
                tokens[k - 1 : k] == ["of"]
                or tokens[k - 2 : k] == ["of", "the"]
                or (
                    tokens[:k] in (["there", "are"], ["there", "are", "the"])
                    and tokens[m.end :] in ([], ["in", "the", "room"], ["in", "this", "room"])
                )
            )
            number = str(parse_count(tokens[k])) + ("" if whole else f" {UNLOCATED}")
            claim = Claim("count", " ".join(tokens[k : m.end]), number, about=AnchorRef(m.name))
            claims.append(claim)
            counted.append((m.end, claim))
            used.add(m.start)
    i = 0
    while i < len(tokens):
        predicate, length = _relation_at(tokens, i, reader=True)
        if predicate is None:
            i += 1
            continue
        span_end = i + length
        if predicate in NO_ANCHOR:
            claims.append(Claim("relation", " ".join(tokens[i:span_end]), predicate))
            i = span_end
            continue
        wanted = 2 if predicate == "between" else 1
        refs, j, after = [], span_end, span_end
        while len(refs) < wanted and j < len(tokens) and j <= span_end + 3 + 4 * len(refs):
            if j in at:
                ref, j = _anchor(tokens, after, at[j], at)
                refs.append(ref)
                after = j
            elif refs == [] and j > span_end and _relation_at(tokens, j, reader=True)[0] is not None:
                break  # another relation starts before any anchor: this one has none
            else:
                j += 1
        if len(refs) < wanted:
            i = span_end
            continue
        used.update(m.start for m in mentions if span_end <= m.start < j)
        claim = Claim("relation", " ".join(tokens[i:j]), predicate, refs)
        count = next((c for end, c in counted if _linked(tokens, end, i)), None)
        if count is not None:
            counted = [(end, c) for end, c in counted if c is not count]  # one relation per count
            count.refs, count.value = refs, f"{count.value.split()[0]} {predicate}"
            count.text = f"{count.text} {claim.text}"
        else:
            # "a table which is under the window": about the table. With no word between ("the lamp on the
            # nightstand, next to the bed" reads without its comma) the relation stays the subject's.
            owner = next((m for m in reversed(mentions) if m.end <= i and _linked(tokens, m.end, i)), None)
            if owner is not None and owner.end < i and not mine(owner) and not owner.plural:
                claim.about = AnchorRef(owner.name)
            claims.append(claim)
        i = j
    named_words = {k for m in mentions for k in range(m.start, m.end)}  # "white board" names, says no color
    for k, token in enumerate(tokens):
        if token in SUPERLATIVES:
            following = [m for m in mentions if k < m.start <= k + 3]
            if following and mine(following[0]) and following[0].start not in used:
                claims.append(Claim("relation", f"the {token} {following[0].name}", token))
        if k not in named_words and (token in COLOR_WORDS or token in SIZE_WORDS or token in MATERIAL_WORDS):
            owner = next((m for m in mentions if k < m.start <= k + 3), None)
            if owner is not None and (owner.start in used or not mine(owner)):
                continue  # describes another object
            if token in COLOR_WORDS:
                claims.append(Claim("color", token, token))
            elif token in SIZE_WORDS:
                claims.append(Claim("size", token, SIZE_WORDS[token]))
            else:
                claims.append(Claim("material", token, MATERIAL_WORDS[token]))
    return claims


def _linked(tokens: list[str], end: int, start: int) -> bool:
    """Only link words (or nothing) between a name ending at `end` and a relation starting at `start`."""
    return end <= start and start - end <= 3 and all(t in LINK_WORDS for t in tokens[end:start])


def _anchor(tokens: list[str], search_from: int, mention: Mention, at: dict[int, Mention]):
    """The anchor named by `mention` with its qualifiers, and the token index after it."""
    superlative = next(
        (SUPERLATIVE_WORDS[t] for t in tokens[search_from : mention.start] if t in SUPERLATIVE_WORDS), ""
    )
    end = mention.end
    if not superlative:
        for words in NEAREST_WORDS:
            if tuple(tokens[end : end + len(words)]) == words:
                k = end + len(words) + (tokens[end + len(words) : end + len(words) + 1] == ["the"])
                if k in at:
                    return AnchorRef(mention.name, nearest=at[k].name), at[k].end
    return AnchorRef(mention.name, superlative), end


def _relation_at(tokens: list[str], i: int, reader: bool = False) -> tuple[str | None, int]:
    """The relation phrase starting at token i (longest first) and its length; `reader` adds
    `READER_PHRASES`."""
    for n in range(min(MAX_PHRASE, len(tokens) - i), 0, -1):
        phrase = tuple(tokens[i : i + n])
        predicate = RELATION_PHRASES.get(phrase) or (READER_PHRASES.get(phrase) if reader else None)
        if predicate is not None:
            return predicate, n
    return None, 0
