"""What a prediction got right and wrong, point by point and box by box: true positive / false positive /
false negative, for the failure analysis view.

For a mask (refseg), the predicted vertices split into TP (in the target) and FP (not), and the target's
unpredicted vertices are FN, so IoU = TP / (TP + FP + FN), the evaluator's point IoU. For boxes
(scanrefer, multi3drefer), predicted and target boxes are matched as Multi3DRefer's evaluator matches
them (Hungarian on IoU, a pair counts at IoU >= k): matched predicted boxes are TP, the others FP,
unmatched targets FN; the points get the same three colours from where they lie (target vertices inside
some predicted box: TP, outside: FN; other vertices inside a predicted box: FP). Other tasks predict no
geometry: they have no outcome.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from core.data.errors import DataError
from core.data.predictions import VertexPrediction, read_vertex_sets
from core.eval.samples import SampleTable, resolve_input, target_objects
from core.scene.geometry import box_iou_matrix

MATCH_IOU = 0.5  # a predicted box counts as found at this IoU (ScanRefer Acc@0.5, Multi3DRefer F1@0.5)
BoxKind = tuple[list[float], str, float | None]  # box, "TP" / "FP" / "FN", IoU of its match


@dataclass
class Outcome:
    """Vertex indices of each kind; for box tasks each box with its kind and the IoU of its match."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    pred_boxes: list[BoxKind] = field(default_factory=list)
    target_boxes: list[BoxKind] = field(default_factory=list)

    @property
    def point_iou(self) -> float:
        union = len(self.tp) + len(self.fp) + len(self.fn)
        return len(self.tp) / union if union else 0.0

    def counts(self) -> dict[str, int]:
        return {"TP": len(self.tp), "FP": len(self.fp), "FN": len(self.fn)}


def mask_outcome(pred_indices: np.ndarray, target: np.ndarray) -> Outcome:
    """TP / FP / FN vertices of a predicted vertex set against a boolean target mask."""
    pred = np.unique(np.asarray(pred_indices, dtype=np.int64))
    hit = target[pred]
    predicted = np.zeros(len(target), dtype=bool)
    predicted[pred] = True
    return Outcome(pred[hit], pred[~hit], np.flatnonzero(target & ~predicted))


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) whether each point lies in any of the (K, 6) axis-aligned boxes (faces included)."""
    inside = np.zeros(len(points), dtype=bool)
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 6):
        lo, hi = box[:3] - box[3:] / 2, box[:3] + box[3:] / 2
        inside |= np.all((points >= lo) & (points <= hi), axis=1)
    return inside


def match_boxes(pred: np.ndarray, target: np.ndarray, k: float) -> tuple[dict[int, tuple[int, float]], int]:
    """{pred index: (target index, IoU)} of the Hungarian pairs with IoU >= k, as Multi3DRefer's evaluator
    matches (the IoU matrix zero-padded to a square); and the number of pairs."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 6)
    if not len(pred) or not len(target):
        return {}, 0
    size = max(len(pred), len(target))
    square = np.zeros((size, size))
    square[: len(pred), : len(target)] = box_iou_matrix(pred, target)
    rows, cols = linear_sum_assignment(-square)
    pairs = {
        int(r): (int(c), float(square[r, c]))
        for r, c in zip(rows, cols)
        if r < len(pred) and c < len(target) and square[r, c] >= k
    }
    return pairs, len(pairs)


def box_outcome(
    points: np.ndarray, target_mask: np.ndarray, pred: np.ndarray, target: np.ndarray, k: float
) -> Outcome:
    """Boxes matched at IoU >= k, and the points coloured by where they lie (module docstring)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 6)
    pairs, _ = match_boxes(pred, target, k)
    matched_targets = {c: (r, iou) for r, (c, iou) in pairs.items()}
    inside = points_in_boxes(points, pred)
    outcome = Outcome(
        np.flatnonzero(target_mask & inside),
        np.flatnonzero(~target_mask & inside),
        np.flatnonzero(target_mask & ~inside),
    )
    outcome.pred_boxes = [
        ([float(v) for v in b], "TP" if i in pairs else "FP", pairs[i][1] if i in pairs else None)
        for i, b in enumerate(pred)
    ]
    outcome.target_boxes = [
        ([float(v) for v in b], "TP" if j in matched_targets else "FN", matched_targets.get(j, (0, None))[1])
        for j, b in enumerate(target)
    ]
    return outcome


class PredictionFiles:
    """Vertex-set prediction files, read once each (keyed by path and modification time)."""

    def __init__(self) -> None:
        self._files: dict[tuple[Path, int], dict[str, VertexPrediction]] = {}
        self._lock = threading.Lock()

    def vertex_sets(self, path: Path) -> dict[str, VertexPrediction]:
        stamp = (path.resolve(), path.stat().st_mtime_ns)
        with self._lock:
            if stamp not in self._files:
                self._files = {stamp: read_vertex_sets(path)}  # one file at a time: they can be large
            return self._files[stamp]


def sample_outcome(
    table: SampleTable,
    key: str,
    vertices: np.ndarray,
    vertex_instance: np.ndarray,
    files: PredictionFiles | None = None,
    k: float = MATCH_IOU,
) -> Outcome | None:
    """The TP / FP / FN outcome of one sample over its scene's mesh (`vertices`, the object id of each
    vertex); None for tasks without predicted geometry. A `DataError` names a missing prediction file."""
    sample = table.sample(key)
    objects = target_objects(table.task, sample)
    target_mask = np.isin(vertex_instance, objects) if objects else np.zeros(len(vertices), dtype=bool)
    if table.task == "refseg":
        pred = np.zeros(0, dtype=np.int64)
        if not sample.get("missing"):
            path = resolve_input(table.path, table.inputs.get("pred"))
            if path is None:
                raise DataError(table.path, "the prediction file it names is not found", field="inputs.pred")
            found = (files or PredictionFiles()).vertex_sets(path).get(key)
            if found is not None:
                if len(found.indices) and found.indices[-1] >= len(vertices):
                    raise DataError(path, f"vertex index past the mesh ({len(vertices)} vertices)", index=key)
                pred = found.indices
        return mask_outcome(pred, target_mask)
    if table.task in ("scanrefer", "multi3drefer"):
        pred = sample.get("prediction") or []
        pred = [pred] if table.task == "scanrefer" and pred else pred
        target = sample.get("target") or []
        target = [target] if table.task == "scanrefer" and target else target
        return box_outcome(vertices, target_mask, np.array(pred, dtype=np.float64), np.array(target), k)
    return None
