"""The 3D facts a caption may state: category, measured color, size class, shape words, relations.

They come from the scene itself (boxes from the mesh, colors from the object's pixels in the chosen views),
never from a dataset's hidden attributes, so the `grounded` captioner says only what the scan supports
and the fact checker tests captions against the same evidence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from core.scene.colors import color_votes
from core.scene.objects import ObjectInfo
from core.scene.relations import Relation, normalize_label, relations_of

# Relation predicates worth a caption, most telling first; view-dependent ones are added per view.
PREDICATE_ORDER = (
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


def sample_pixels(pixels: np.ndarray, count: int) -> np.ndarray:
    """At most `count` evenly strided rows of (N, 3) pixels: deterministic and cheap to vote with."""
    if len(pixels) <= count:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, count).astype(np.int64)]


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
    """Mean of the per-view votes, largest first (ties by word), plus each view's own winner."""
    total: Counter[str] = Counter()
    for votes in view_votes:
        total.update(votes)
    n = max(len(view_votes), 1)
    pooled = {w: round(v / n, 4) for w, v in sorted(total.items(), key=lambda item: (-item[1], item[0]))}
    per_view = [next(iter(v)) for v in view_votes if v]
    return ColorEvidence(pooled, per_view)


def relation_phrase(relation: Relation, names: dict[int, str], subject_label: str) -> str:
    """A relation as words after the subject: 'on the nightstand', 'the largest chair'."""
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


def scene_relations(subject: ObjectInfo, objects: list[ObjectInfo]) -> list[Relation]:
    """View-independent relations that clearly hold, ordered by `PREDICATE_ORDER` then anchor id."""
    found = [
        r for r in relations_of(subject, objects) if r.predicate in PREDICATE_ORDER and r.predicate != "color"
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
