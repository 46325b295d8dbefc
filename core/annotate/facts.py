"""The 3D facts a caption may state: category, measured color, size class, shape words, relations.

They come from the scene itself (boxes from the mesh, colors from the object's pixels in the chosen views),
never from a dataset's hidden attributes, so the `grounded` captioner says only what the scan supports
and the fact checker tests captions against the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.scene.colors import color_votes, pooled_votes, sample_pixels
from core.scene.objects import ObjectInfo
from core.scene.relations import (
    STRUCTURAL_LABELS,
    Relation,
    head_noun,
    identifying_relation,
    is_unique,
    normalize_label,
    relations_of,
    same_class,
    singular_phrase,
)
from core.text import relation_phrase as english_relation

# Relation predicates worth a caption, most telling first; view-dependent ones are added per view.
PREDICATE_ORDER = (
    "in",
    "on",
    "under",
    "between",
    "next to",
    "above",
    "below",
    "against the wall",
    "in the corner",
    "in the middle of the room",
    "closest to",
    "largest",
    "smallest",
    "tallest",
    "shortest",
    "near",
)
VIEW_PREDICATES = ("left of", "right of", "in front of", "behind")


def label_text(label: str) -> str:
    return normalize_label(label)


# Typical longest side (metres) of common classes: a size word is said only when an object is clearly
# smaller or larger than others of its class ("a small bed" of 1.2 m, never "a small cup": every cup is).
TYPICAL_SIZE = {
    "chair": 0.9, "office chair": 1.0, "armchair": 0.9, "stool": 0.5, "table": 1.4, "coffee table": 1.0,
    "desk": 1.3, "bed": 2.0, "couch": 2.0, "sofa": 2.0, "cabinet": 1.0, "kitchen cabinet": 1.0,
    "kitchen counter": 2.0, "bookshelf": 1.8, "shelf": 1.0, "lamp": 0.8, "monitor": 0.6, "tv": 1.1,
    "keyboard": 0.45, "laptop": 0.35, "nightstand": 0.55, "dresser": 1.2, "toilet": 0.75, "sink": 0.6,
    "bathtub": 1.7, "mirror": 0.8, "towel": 0.6, "refrigerator": 1.8, "microwave": 0.5, "trash can": 0.45,
    "pillow": 0.5, "box": 0.4, "plant": 0.8, "picture": 0.7, "curtain": 2.0, "whiteboard": 1.5,
    "backpack": 0.45, "book": 0.22, "cup": 0.1, "bottle": 0.25, "paper": 0.3, "bag": 0.4, "clothes": 0.5,
    "shoe": 0.28, "mouse": 0.11, "cable": 1.0,
}  # fmt: skip
SIZE_RATIO = (0.7, 1.4)  # below / above these fractions of the typical size: small / large
# Classes whose box says nothing a reader would call their size or shape: the room's structure (a door is
# never "long", a window never "tall"), curtains (as large as their window) and cables (a length, no size).
NO_DIMENSION_WORDS = STRUCTURAL_LABELS | {"curtain", "blinds", "cable"}
# Shape words only for classes they suit: "long" of things lying along the floor or a surface, "tall" of
# things standing upright, "low" of furniture one sits at or lies on.
SHAPE_WORD_CLASSES = {
    "long": {"couch", "sofa", "table", "desk", "kitchen counter", "counter", "bench", "dresser", "cabinet",
             "kitchen cabinet", "shelf", "bookshelf", "bed", "bathtub", "radiator"},
    "tall": {"bookshelf", "shelf", "cabinet", "lamp", "plant", "refrigerator", "wardrobe", "closet",
             "dresser", "bottle", "stool", "trash can", "kitchen cabinet"},
    "low": {"table", "coffee table", "bed", "couch", "sofa", "stool", "shelf", "bookshelf", "cabinet",
            "dresser", "nightstand", "box"},
}  # fmt: skip


def _class_of(label: str, table: dict) -> str | None:
    """The key of `table` (a dict or set) that names the label: the label itself or its head noun."""
    name = singular_phrase(label)
    return name if name in table else head_noun(label) if head_noun(label) in table else None


def size_class(obj: ObjectInfo) -> str | None:
    """'small' or 'large' from the box's longest side against the class's typical size (`TYPICAL_SIZE`;
    an unknown class: below 0.35 m / above 1.6 m); None in between, and for classes a size word does not
    suit (`NO_DIMENSION_WORDS`): no claim."""
    if _class_of(obj.label, NO_DIMENSION_WORDS) is not None:
        return None
    longest = float(obj.size.max())
    typical = _class_of(obj.label, TYPICAL_SIZE)
    low, high = (0.35, 1.6) if typical is None else (TYPICAL_SIZE[typical] * r for r in SIZE_RATIO)
    if longest < low:
        return "small"
    if longest > high:
        return "large"
    return None


def shape_words(obj: ObjectInfo) -> list[str]:
    """Proportions of the box that read as words (tall, low, long), each only for classes it suits
    (`SHAPE_WORD_CLASSES`): never a "long door" or a "tall window"."""
    if _class_of(obj.label, NO_DIMENSION_WORDS) is not None:
        return []
    w, d, h = (float(v) for v in obj.size)
    footprint_long, footprint_short = max(w, d), min(w, d)
    words = []
    if h > 1.2 and h > 1.8 * footprint_long:
        words.append("tall")
    elif h < 0.5 and h < 0.3 * footprint_long and footprint_short > 0.1:
        words.append("low")
    if footprint_long > 1.0 and footprint_long > 2.5 * max(footprint_short, 1e-3):
        words.append("long")
    return [w for w in words if _class_of(obj.label, SHAPE_WORD_CLASSES[w]) is not None]


def view_color(pixels: np.ndarray, count: int) -> dict[str, float]:
    """Color word votes of one view's object pixels (rounded, so JSON stays small and stable)."""
    votes = color_votes(sample_pixels(pixels, count)) if len(pixels) else {}
    return {word: round(share, 4) for word, share in votes.items()}


@dataclass
class ColorEvidence:
    """Color votes pooled over views, and what each view alone would call the color."""

    votes: dict[str, float]
    per_view: list[str]

    @property
    def dominant(self) -> str | None:
        return next(iter(self.votes), None)

    def share(self, word: str) -> float:
        return self.votes.get(word, 0.0)


def pool_colors(view_votes: list[dict[str, float]]) -> ColorEvidence:
    """Mean of the per-view votes, largest first (ties by word), plus each view's own winner: the
    object's color as the camera sees it (`core.scene.colors.pooled_votes`, shared with the synthetic
    ground truth)."""
    per_view = [next(iter(v)) for v in view_votes if v]
    return ColorEvidence(pooled_votes(view_votes), per_view)


class AnchorNames:
    """How a text names each object as an anchor, so the reader can find the one meant.

    An object unique in the room is "the <label>". One of two or more of its class is named with what
    singles it out (`relations.identifying_relation`): "the largest chair", "the nightstand nearest the
    bed", never by the sentence's subject. An object nothing singles out has no name and is never used
    as an anchor. Names depend on the subject (it may not be the reference), so they are cached per pair.
    """

    def __init__(self, objects: list[ObjectInfo]):
        self.objects = objects
        self.by_id = {o.object_id: o for o in objects}
        self._cache: dict[tuple[int, int | None], str | None] = {}
        self._unique: dict[int, bool] = {}  # per object: the same for every subject

    def name(self, object_id: int, subject_id: int | None = None) -> str | None:
        """The anchor's name (without "the") in a sentence about `subject_id`; None: it cannot be named."""
        key = (object_id, subject_id)
        if key not in self._cache:
            self._cache[key] = self._name(self.by_id[object_id], subject_id)
        return self._cache[key]

    def _name(self, obj: ObjectInfo, subject_id: int | None) -> str | None:
        label = label_text(obj.label)
        if obj.object_id == subject_id:
            return None  # a target is never its own anchor
        if obj.object_id not in self._unique:
            self._unique[obj.object_id] = is_unique(obj, self.objects)
        if self._unique[obj.object_id]:
            return label
        subject = self.by_id.get(subject_id) if subject_id is not None else None
        # "next to the shortest picture" said of a picture reads as a claim that it is the shortest one:
        # an anchor of the subject's own class is named by a reference only.
        sizes = subject is None or not same_class(subject.label, obj.label)
        exclude = () if subject is None else (subject.object_id,)
        found = identifying_relation(obj, self.objects, exclude, sizes)
        if found is None:
            return None
        if not found.object_ids:
            return f"{found.predicate} {label}"
        return f"{label} nearest the {label_text(self.by_id[found.object_ids[0]].label)}"

    def names_for(self, subject_id: int | None) -> dict[int, str]:
        """Every nameable object's name in a sentence about `subject_id`."""
        names = ((o.object_id, self.name(o.object_id, subject_id)) for o in self.objects)
        return {i: n for i, n in names if n is not None}

    def resolvable(self, relation: Relation) -> bool:
        """Every anchor of the relation can be named in a sentence about its subject, none is the subject.
        "between" takes names without a trailing "nearest the ..." only, so that its two anchors read
        apart ("between the nightstand nearest the desk and the chair" reads as three objects)."""
        names = [self.name(i, relation.subject_id) for i in relation.object_ids]
        if relation.predicate == "between" and any(n and " nearest the " in n for n in names):
            return False
        return all(n is not None for n in names)


def relation_phrase(relation: Relation, names: dict[int, str], subject_label: str) -> str:
    """A relation as words after the subject (`core.text.relation_phrase`): 'on the nightstand', 'the
    largest chair in the room'. `names` maps anchor ids to how the sentence names them
    (`AnchorNames.names_for`)."""
    anchors = [f"the {names[i]}" for i in relation.object_ids]
    return english_relation(relation.predicate, anchors, subject=subject_label)


def scene_relations(
    subject: ObjectInfo, objects: list[ObjectInfo], names: AnchorNames | None = None
) -> list[Relation]:
    """View-independent relations that clearly hold, ordered by `PREDICATE_ORDER` then anchor id; only
    those whose anchors `names` can name (default: names over `objects`)."""
    names = names or AnchorNames(objects)
    found = [
        r
        for r in relations_of(subject, objects, with_inside=True)
        if r.predicate in PREDICATE_ORDER and r.predicate != "color" and names.resolvable(r)
    ]
    rank = {p: i for i, p in enumerate(PREDICATE_ORDER)}
    floors = {o.object_id for o in objects if normalize_label(o.label) == "floor"}
    # "on the floor" is true of most things and says little: it goes last. "Next to the chair" said of a
    # chair names no particular one, so anchors of the subject's own class come after the others.
    label_of = {o.object_id: normalize_label(o.label) for o in objects}
    own = normalize_label(subject.label)

    def informativeness(r: Relation) -> tuple:
        same_class = any(label_of.get(i) == own for i in r.object_ids)
        return (bool(floors & set(r.object_ids)), same_class, rank[r.predicate], r.object_ids)

    return sorted(found, key=informativeness)


def pick_relations(relations: list[Relation], visible: set[int] | None, limit: int) -> list[Relation]:
    """At most `limit` relations, one per anchor, preferring anchors in view (all when `visible` is None)."""
    out: list[Relation] = []
    used: set[int] = set()
    for r in relations:
        if visible is not None and not set(r.object_ids) <= visible:
            continue
        if used & set(r.object_ids):
            continue
        out.append(r)
        used |= set(r.object_ids)
        if len(out) == limit:
            break
    return out
