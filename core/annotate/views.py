"""Stage 1a, view selection: which frames show an object best, from different sides.

Frames are ranked by the depth-tested visibility table (`core.scene.visibility`): a frame's score mixes
how many of the object's vertices it sees (relative to the best frame) and which share of the object it
covers. The top-k are then taken greedily so that no two look at the object from directions closer than
`min_view_angle`; when too few differ that much, the best remaining frames fill up. Whether a chosen view
really shows the object is checked later on its rendered instance mask (`stage_images`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.annotate.config import AnnotateConfig
from core.scene.visibility import VisibilityTable


@dataclass
class Candidate:
    """A frame chosen for an object, before its rendered mask is checked."""

    frame_index: int
    score: float
    visible_vertices: int
    coverage: float


def frame_scores(table: VisibilityTable, column: int) -> np.ndarray:
    """(F,) score of every frame for one object: half relative visible count, half coverage."""
    counts = table.counts[:, column].astype(np.float64)
    best = max(float(counts.max()), 1.0) if len(counts) else 1.0
    coverage = table.fraction()[:, column]
    return 0.5 * counts / best + 0.5 * coverage


def viewing_directions(poses: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(F, 3) unit vectors from each camera centre to the target point."""
    d = target[None, :] - poses[:, :3, 3]
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)


def select_views(
    table: VisibilityTable, column: int, poses: np.ndarray, center: np.ndarray, config: AnnotateConfig
) -> list[Candidate]:
    """The top-k frames of one object, best first, spread over viewing directions."""
    counts = table.counts[:, column]
    scores = frame_scores(table, column)
    usable = np.flatnonzero(counts >= config.min_visible_vertices)
    order = usable[np.lexsort((usable, -scores[usable]))]  # best score first, ties by frame order
    if len(order) == 0:
        return []
    directions = viewing_directions(poses[order], center)
    cos_limit = np.cos(np.radians(config.min_view_angle))
    chosen: list[int] = []
    for i in range(len(order)):
        if len(chosen) == config.top_k:
            break
        if all(float(directions[i] @ directions[j]) < cos_limit for j in chosen):
            chosen.append(i)
    for i in range(len(order)):  # fill up with the best of the rest
        if len(chosen) == config.top_k:
            break
        if i not in chosen:
            chosen.append(i)
    chosen.sort(key=lambda i: (-scores[order[i]], order[i]))
    fraction = table.fraction()
    return [
        Candidate(
            int(order[i]),
            round(float(scores[order[i]]), 4),
            int(counts[order[i]]),
            round(float(fraction[order[i], column]), 4),
        )
        for i in chosen
    ]
