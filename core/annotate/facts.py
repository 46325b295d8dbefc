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
    Relation,
    identifying_relation,
    is_unique,
    normalize_label,
    relations_of,
    same_class,
)

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


def size_class(obj: ObjectInfo) -> str | None:
    """'small' or 'large' from the longest side of the box; None in between (no claim)."""
    longest = float(obj.size.max())
    if longest < 0.35:
        return "small"
    if longest > 1.6:
        return "large"
    return None


def shape_words(obj: ObjectInfo) -> list[str]:
    """Proportions of the box that read as words: tall, low, long."""
    w, d, h = (float(v) for v in obj.size)
    footprint_long, footprint_short = max(w, d), min(w, d)
    words = []
    if h > 1.2 and h > 1.8 * footprint_long:
        words.append("tall")
    elif h < 0.5 and h < 0.3 * footprint_long and footprint_short > 0.1:
        words.append("low")
    if footprint_long > 1.0 and footprint_long > 2.5 * max(footprint_short, 1e-3):
        words.append("long")
    return words


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
    """A relation as words after the subject: 'on the nightstand', 'the largest chair in the room'.
    `names` maps anchor ids to how the sentence names them (`AnchorNames.names_for`)."""
    p = relation.predicate
    anchors = [f"the {names[i]}" for i in relation.object_ids]
    if p == "between":
        return f"between {anchors[0]} and {anchors[1]}"
    if p in ("largest", "smallest", "tallest", "shortest"):
        return f"the {p} {subject_label} in the room"
    if p in ("left of", "right of"):
        return f"to the {p} {anchors[0]}"
    if anchors:
        return f"{p} {anchors[0]}"
    return p


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
