"""English in one place (`core.text`): plurals and articles of every label, number words both ways, lists,
relation and attribute phrases; and a sweep over the text the project writes about generated scenes
(grounded captions, narratives, benchmark files) for known-bad forms."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.claims import RELATION_PHRASES as READER_PHRASES
from core.annotate.config import AnnotateConfig
from core.annotate.facts import shape_words, size_class
from core.annotate.scene_runner import annotate_scene
from core.scene.objects import ObjectInfo
from core.scene.relations import PREDICATES
from core.synth.annotations import OBJECT_CATEGORIES
from core.text import (
    MATERIALS,
    RELATION_PHRASES,
    answer_number,
    attribute_adjective,
    attribute_predicate,
    be,
    count_phrase,
    indefinite,
    indefinite_article,
    is_plural,
    join_words,
    number_word,
    parse_count,
    parse_number,
    plural,
    pronoun,
    relation_phrase,
    relation_words,
    scanrefer_tokens,
    singular,
    singular_phrase,
    words,
)

LABEL_TABLE = Path(__file__).resolve().parents[1] / "assets" / "labels" / "scannetv2-labels.synthetic.tsv"

# label -> (plural, with its indefinite article): the synthetic label table and the clutter classes.
ENGLISH = {
    "wall": ("walls", "a wall"), "chair": ("chairs", "a chair"), "floor": ("floors", "a floor"),
    "door": ("doors", "a door"), "window": ("windows", "a window"), "table": ("tables", "a table"),
    "trash can": ("trash cans", "a trash can"), "pillow": ("pillows", "a pillow"),
    "picture": ("pictures", "a picture"), "box": ("boxes", "a box"), "monitor": ("monitors", "a monitor"),
    "cabinet": ("cabinets", "a cabinet"), "desk": ("desks", "a desk"), "shelf": ("shelves", "a shelf"),
    "office chair": ("office chairs", "an office chair"), "towel": ("towels", "a towel"),
    "couch": ("couches", "a couch"), "sink": ("sinks", "a sink"), "backpack": ("backpacks", "a backpack"),
    "lamp": ("lamps", "a lamp"), "bed": ("beds", "a bed"), "bookshelf": ("bookshelves", "a bookshelf"),
    "mirror": ("mirrors", "a mirror"), "curtain": ("curtains", "a curtain"), "plant": ("plants", "a plant"),
    "whiteboard": ("whiteboards", "a whiteboard"),
    "kitchen cabinet": ("kitchen cabinets", "a kitchen cabinet"),
    "armchair": ("armchairs", "an armchair"), "coffee table": ("coffee tables", "a coffee table"),
    "toilet": ("toilets", "a toilet"), "keyboard": ("keyboards", "a keyboard"),
    "nightstand": ("nightstands", "a nightstand"), "stool": ("stools", "a stool"), "tv": ("tvs", "a tv"),
    "dresser": ("dressers", "a dresser"), "refrigerator": ("refrigerators", "a refrigerator"),
    "bathtub": ("bathtubs", "a bathtub"), "microwave": ("microwaves", "a microwave"),
    "kitchen counter": ("kitchen counters", "a kitchen counter"), "laptop": ("laptops", "a laptop"),
    # clutter
    "book": ("books", "a book"), "books": ("books", "some books"), "cup": ("cups", "a cup"),
    "bottle": ("bottles", "a bottle"), "paper": ("papers", "a paper"), "papers": ("papers", "some papers"),
    "bag": ("bags", "a bag"), "clothes": ("clothes", "some clothes"), "shoe": ("shoes", "a shoe"),
    "shoes": ("shoes", "some shoes"), "mouse": ("mice", "a mouse"), "cable": ("cables", "a cable"),
    "small box": ("small boxes", "a small box"), "glass": ("glasses", "a glass"),
    "dress": ("dresses", "a dress"), "person": ("people", "a person"),
    "kitchen cabinets": ("kitchen cabinets", "some kitchen cabinets"), "orange": ("oranges", "an orange"),
    "ottoman": ("ottomans", "an ottoman"), "umbrella": ("umbrellas", "an umbrella"),
    "unicorn": ("unicorns", "a unicorn"), "hour": ("hours", "an hour"), "sofa": ("sofas", "a sofa"),
    "toy": ("toys", "a toy"), "battery": ("batteries", "a battery"), "bus": ("buses", "a bus"),
    "knife": ("knives", "a knife"), "dish": ("dishes", "a dish"), "radio": ("radios", "a radio"),
    "potato": ("potatoes", "a potato"),
}  # fmt: skip
CLUTTER = (
    "book", "cup", "bottle", "paper", "bag", "clothes", "shoe", "keyboard", "mouse", "cable", "small box",
)  # fmt: skip


def table_labels() -> list[str]:
    with open(LABEL_TABLE, newline="") as f:
        return [row["raw_category"] for row in csv.DictReader(f, delimiter="\t")]


# ----------------------------------------------------------------------------------------------- nouns


@pytest.mark.parametrize("label", sorted(ENGLISH))
def test_plural_article_and_singular_of_each_label(label):
    want_plural, want_article = ENGLISH[label]
    assert plural(label) == want_plural
    assert indefinite(label) == want_article
    assert singular(want_plural) == (label if not is_plural(label) else singular_phrase(label))
    assert plural(plural(label)) == want_plural  # a plural stays itself
    assert plural(label.replace(" ", "_")) == want_plural  # labels written ScanRefer-style read the same


def test_every_label_of_the_synthetic_table_and_the_clutter_is_covered_and_regular():
    labels = table_labels()
    assert set(CLUTTER) - set(ENGLISH) == set() and len(labels) >= 40
    for label in labels + list(CLUTTER):
        p = plural(label)
        assert not re.search(r"(s|x|ch|sh|f)s$", p) or p == label, (label, p)  # no boxs, shelfs, glasss
        assert singular_phrase(p) == singular_phrase(label), label
        assert indefinite(label).split()[0] in ("a", "an", "some")
    assert {label: ENGLISH[label] for label in labels if label in ENGLISH}  # the table names them


def test_articles_by_sound():
    cases = {
        "orange chair": "an", "ottoman": "an", "umbrella": "an", "unicorn": "a", "uniform": "a",
        "unique lamp": "a", "unimportant box": "an", "upholstered chair": "an", "urinal": "a",
        "european plug": "a", "one-seat couch": "a", "hour": "an", "honest answer": "an", "house": "a",
        "L-shaped desk": "an", "U-shaped couch": "a", "8-seat table": "an", "11 chairs": "an",
        "18 books": "an", "100 books": "a", "800 books": "an", "tv": "a", "x-ray": "an", "yellow cup": "a",
        "armchair": "an", "office chair": "an", "elephant": "an", "iron": "an", "kitchen": "a",
    }  # fmt: skip
    for phrase, article in cases.items():
        assert indefinite_article(phrase) == article, phrase


def test_agreement_of_plural_labels():
    forms = (be("clothes"), pronoun("clothes"), pronoun("clothes", "object"), pronoun("books", "possessive"))
    assert forms == ("are", "they", "them", "their")
    assert (be("chair"), pronoun("chair"), pronoun("mouse", "possessive")) == ("is", "it", "its")
    assert be("glass") == "is" and be("bus") == "is" and be("kitchen cabinets") == "are"


# --------------------------------------------------------------------------------------------- numbers


def test_number_words_both_ways():
    for n in range(100):
        assert parse_number(number_word(n)) == n
        assert parse_number(str(n)) == n
    assert [number_word(n) for n in (0, 7, 13, 20, 21, 23, 40, 99)] == [
        "zero", "seven", "thirteen", "twenty", "twenty-one", "twenty-three", "forty", "ninety-nine",
    ]  # fmt: skip
    assert number_word(100) == "100" and parse_number("twenty one") == 21
    assert parse_number("chair") is None and parse_number("twenty-ten") is None and parse_number("") is None
    assert parse_count("both") == 2 and parse_count("no") == 0 and parse_count("the") is None


def test_counts_and_lists():
    assert count_phrase(2, "box") == "two boxes" and count_phrase(1, "box") == "one box"
    assert count_phrase(0, "mouse") == "no mice" and count_phrase(3, "bookshelf") == "three bookshelves"
    assert count_phrase(2, "clothes") == "two sets of clothes"
    assert count_phrase(1, "clothes") == "some clothes"
    assert count_phrase(1, "kitchen cabinets") == "one kitchen cabinet"
    assert join_words([]) == "" and join_words(["a"]) == "a" and join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"]) == "a, b and c" and join_words(["a", "b"], "or") == "a or b"


def test_answer_normalisation_spells_numbers_with_core_text():
    from core.eval.answers import clean_answer

    assert clean_answer("2") == "two" and clean_answer("20") == "twenty"
    assert clean_answer("23") == "twenty-three"
    assert clean_answer("21") == "21"  # LEO's rules spell 0-20 and 23 only
    for n in range(100):  # a count written as an answer is what cleaning makes of the digits, and stays so
        assert answer_number(n) == clean_answer(str(n)) == clean_answer(answer_number(n))


# -------------------------------------------------------------------------------------------- tokens


def test_tokens_and_words():
    assert scanrefer_tokens("It's the L-shaped desk, 2 chairs.") == [
        "it", "'s", "the", "l-shaped", "desk", ",", "2", "chairs", ".",
    ]  # fmt: skip
    assert words("It's the L-shaped desk, 2 chairs and twenty-one books.") == [
        "it", "the", "l-shaped", "desk", "2", "chairs", "and", "twenty-one", "books",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ relations


def test_every_relation_has_english_that_reads_back():
    spoken = [p for p in PREDICATES if p not in ("color", "material", "shape", "texture")]
    assert set(spoken) <= set(RELATION_PHRASES)
    reader = relation_words()
    assert reader == READER_PHRASES  # the fact checker reads exactly this English
    for predicate, phrasings in RELATION_PHRASES.items():
        for variant in range(len(phrasings)):
            text = relation_phrase(predicate, ["the desk", "the bed"], subject="chair", variant=variant)
            assert "{" not in text and "  " not in text
            if predicate in ("largest", "smallest", "tallest", "shortest"):
                assert text == f"the {predicate} chair in the room"
                continue
            if predicate in ("closest to", "farthest from"):  # a ranking names the subject's class
                assert text == f"the chair {predicate} the desk"
                text = text.removeprefix("the chair ")
            tokens = words(text)
            lead = max((k for k in reader if tuple(tokens[: len(k)]) == k), key=len)
            assert reader[lead] == predicate, (predicate, text)
    assert relation_phrase("between", ["the desk", "the bed"]) == "between the desk and the bed"
    assert relation_phrase("left of", ["the bed"]) == "to the left of the bed"
    assert relation_phrase("far from", ["the couch"]) == "far from the couch"
    assert relation_phrase("closest to", ["the couch"]) == "closest to the couch"  # after a noun
    with pytest.raises(ValueError, match="needs 2"):
        relation_phrase("between", ["the desk"])
    with pytest.raises(ValueError, match="no English"):
        relation_phrase("beyond", ["the desk"])


# ----------------------------------------------------------------------------------------- attributes


def test_materials_and_shapes_are_real_english():
    for material in MATERIALS:
        said = attribute_predicate("material", material)
        assert said.startswith(("made of ", "covered in ")), said  # "made of mesh", never "It is mesh."
    assert attribute_predicate("material", "wooden") == "made of wood"
    assert attribute_adjective("material", "wooden") == "wooden"
    assert attribute_predicate("material", "velvet") == "made of velvet"
    assert [attribute_adjective("shape", s) for s in ("round", "drum", "globe", "landscape")] == [
        "round", "drum-shaped", "globe-shaped", "landscape-format",
    ]  # fmt: skip
    assert attribute_predicate("shape", "portrait") == "in portrait format"


def _box(label: str, size) -> ObjectInfo:
    return ObjectInfo(1, label, [2.0, 2.0, size[2] / 2, *size], None, {})


def test_size_and_shape_words_only_where_they_suit_the_class():
    door = _box("door", (1.2, 0.05, 2.1))
    assert shape_words(door) == [] and size_class(door) is None  # never a "long door" or a "large door"
    assert shape_words(_box("window", (1.5, 0.1, 0.4))) == []
    assert "long" in shape_words(_box("couch", (2.4, 0.9, 0.8)))
    assert shape_words(_box("picture", (1.5, 0.04, 0.5))) == []  # a wide picture is not "long"
    assert "tall" in shape_words(_box("bookshelf", (0.8, 0.3, 2.0)))
    assert size_class(_box("cup", (0.08, 0.08, 0.1))) is None  # every cup is small: no word
    assert size_class(_box("bed", (2.0, 1.6, 0.5))) is None  # every bed is large: no word
    assert size_class(_box("bed", (1.2, 0.8, 0.4))) == "small"
    assert size_class(_box("table", (2.4, 1.0, 0.75))) == "large"


# ------------------------------------------------------------------------------------------- sweep

BAD = [
    (re.compile(r"\b(boxs|shelfs|bookshelfs|glasss|couchs|dresss|mouses|clotheses|persons)\b"), "bad plural"),
    (re.compile(r"\bit is (mesh|wood|metal|fabric|plastic|leather|laminate|stone|granite|ceramic|cardboard|"
                r"paper|rubber|glass|drum|cone|globe|landscape|portrait)\b(?!-)"), "bare material or shape"),
    (re.compile(r"\b(long|tall|low|large|small) (doors?|windows?|walls?|floors?)\b"), "dimension of a wall"),
    (re.compile(r"\b([a-z]+) \1\b"), "doubled word"),
    (re.compile(r"\b(they|these) is\b|\b(it|this) are\b"), "agreement"),
]  # fmt: skip


def known_bad(text: str, labels: set[str]) -> list[str]:
    """The known-bad forms in one text: wrong plurals, articles, bare materials, doubled words, agreement."""
    low = text.lower()
    found = [f"{why}: {m.group(0)!r}" for pattern, why in BAD for m in pattern.finditer(low)]
    for m in re.finditer(r"\b(a|an) ([a-z0-9][\w-]*)", low):
        if m.group(1) != indefinite_article(m.group(2)):
            found.append(f"article: {m.group(0)!r}")
    for label in labels:
        if is_plural(label) and re.search(rf"\bthe ([a-z]+ )?{re.escape(label)} is\b", low):
            found.append(f"agreement: '{label} is'")
        if not is_plural(label) and re.search(rf"\b(a|an) {re.escape(plural(label))}\b", low):
            found.append(f"article before a plural: {plural(label)!r}")
    return found


def test_the_sweep_finds_each_known_bad_form():
    samples = [
        "There are two boxs.", "It is a orange chair.", "It is a umbrella.", "It is mesh.", "A long door.",
        "Look at the the bed.", "The clothes is on the bed.", "There is an unicorn.",
        "The largest clothes is on the bed.",
    ]  # fmt: skip
    for text in samples:
        assert known_bad(text, {"clothes", "chair"}), text
    good = "It is an orange chair made of metal, next to a unicorn and some clothes."
    assert known_bad(good, {"clothes"}) == []


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value] if " " in value.strip() else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.fixture(scope="module")
def pipeline_texts(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every text of the pipeline (grounded captions, per-view texts, frames, narrative) for one scene."""
    out = tmp_path_factory.mktemp("english")
    captioner, config = GroundedCaptioner(seed=3), AnnotateConfig(seed=3)
    result = annotate_scene(synth_root, "scene0000_00", out, captioner, config)
    document = getattr(result, "document", None) or result.doc
    doc = document.to_json() if hasattr(document, "to_json") else document
    texts = []
    for obj in doc["objects"]:
        texts += [obj.get("caption") or ""]
        texts += [v[k] for v in obj["views"] for k in ("isolated_text", "highlighted_text")]
    texts += [f["description"] for f in doc["frames"]] + [doc["narrative"]["text"]]
    return [t for t in texts if t]


def _labels(synth_root: Path) -> set[str]:
    names = set()
    for path in (synth_root / "synth").glob("scene*.json"):
        names |= {o["label"] for o in json.loads(path.read_text())["objects"]}
    return names


def test_pipeline_text_of_generated_scenes_has_no_known_bad_forms(pipeline_texts, synth_root):
    labels = _labels(synth_root)
    assert len(pipeline_texts) >= 20
    bad = {t: known_bad(t, labels) for t in pipeline_texts}
    assert {t: b for t, b in bad.items() if b} == {}


def test_benchmark_text_of_generated_scenes_has_no_known_bad_forms(synth_root):
    labels = _labels(synth_root)
    texts = []
    for path in sorted((synth_root / "annotations").glob("*.json")):
        texts += _strings(json.loads(path.read_text()))
    assert len(texts) >= 100
    bad = {t: known_bad(t, labels) for t in texts}
    assert {t: b for t, b in bad.items() if b} == {}
    # counting questions name the class by its plural (a class of the scene, or an absent one: zero)
    plurals = {plural(label) for label in [*labels, *OBJECT_CATEGORIES]}
    for text in texts:
        m = re.match(r"how many ([a-z ]+?) are (in|on|there)\b", text.lower())
        if m:
            assert m.group(1) in plurals, text
