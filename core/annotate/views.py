"""Stage 1a, view selection: which frames show an object best, from genuinely different places.

Frames are ranked by the depth-tested visibility table (`core.scene.visibility`): a frame's score mixes
how many of the object's vertices it sees (relative to the best frame) and which share of the object it
covers. The top-k are then taken greedily, best score first, and a frame is taken only when it is
distinct from every frame already chosen (`distinct_views`):

- at least `min_frame_gap` frames apart in the capture, and
- looking at the object from a direction at least `min_view_angle` degrees away, or from a camera
  centre at least `min_view_distance` metres away.

There is no filling up with near-duplicates: a scene that cannot give k distinct views gives fewer, and
the object's entry (and its DenseScan record) says how many it got against how many were asked for.
Whether a chosen view really shows the object is checked later on its rendered instance mask.
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


Pair = tuple[np.ndarray, np.ndarray]


def distinct_views(frames: tuple[int, int], directions: Pair, centres: Pair, config: AnnotateConfig) -> bool:
    """Are two views of one object distinct: far enough apart in the capture, and seen from another
    direction or another place (see the module docstring)?"""
    if abs(frames[0] - frames[1]) < config.min_frame_gap:
        return False
    cos = float(np.clip(directions[0] @ directions[1], -1.0, 1.0))
    if np.degrees(np.arccos(cos)) >= config.min_view_angle:
        return True
    return float(np.linalg.norm(centres[0] - centres[1])) >= config.min_view_distance


def select_views(
    table: VisibilityTable, column: int, poses: np.ndarray, center: np.ndarray, config: AnnotateConfig
) -> list[Candidate]:
    """Up to top-k frames of one object, best first, each distinct from the others (fewer when the
    capture offers fewer distinct ones)."""
    counts = table.counts[:, column]
    scores = frame_scores(table, column)
    usable = np.flatnonzero(counts >= config.min_visible_vertices)
    order = usable[np.lexsort((usable, -scores[usable]))]  # best score first, ties by frame order
    if len(order) == 0:
        return []
    directions = viewing_directions(poses[order], center)
    centres = poses[order, :3, 3]
    chosen: list[int] = []
    for i in range(len(order)):
        if len(chosen) == config.top_k:
            break
        frames = [(int(order[i]), int(order[j])) for j in chosen]
        if all(
            distinct_views(f, (directions[i], directions[j]), (centres[i], centres[j]), config)
            for f, j in zip(frames, chosen)
        ):
            chosen.append(i)
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
