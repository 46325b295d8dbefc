"""Box grounding metrics: ScanRefer accuracy at an IoU and Multi3DRefer F1 with Hungarian matching.

IoU is the axis-aligned 3D IoU of `core.scene.geometry.box_iou` (inter / (V1 + V2 - inter)), in float64
(the reference evaluators use float32: an IoU within ~1e-7 of a threshold may be judged differently).

- ScanRefer Acc@k: a query is correct when IoU >= k (k = 0.25, 0.5), as ScanRefer's and M3DRef-CLIP's
  evaluators compare.
- Multi3DRefer F1@k (M3DRef-CLIP's evaluator): the pred x gt IoU matrix, zero-padded to a square, is
  matched by `scipy.optimize.linear_sum_assignment` on -IoU (the padding keeps the reference's choice
  among equal-total matchings); TP = matched pairs with IoU >= k; F1 = 2 TP / (|pred| + |gt|). A
  zero-target query scores 1 when nothing is predicted, else 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from core.scene.geometry import box_iou, box_iou_matrix

THRESHOLDS = (0.25, 0.5)


def grounding_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one predicted box and the target's box."""
    return float(box_iou(np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)))


def accuracy(ious: Sequence[float] | np.ndarray, k: float) -> float:
    """Fraction of queries with IoU >= k (0 for no queries)."""
    ious = np.asarray(ious, dtype=np.float64)
    return float((ious >= k).mean()) if ious.size else 0.0


def matched_ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoUs of the Hungarian matching of predicted to target boxes (one per matched pair)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 6)
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros(0)
    size = max(len(pred), len(gt))
    square = np.zeros((size, size))
    square[: len(pred), : len(gt)] = box_iou_matrix(pred, gt)
    rows, cols = linear_sum_assignment(-square)
    keep = (rows < len(pred)) & (cols < len(gt))
    return square[rows[keep], cols[keep]]


def multi_f1(
    pred: np.ndarray, gt: np.ndarray, thresholds: Sequence[float] = THRESHOLDS
) -> dict[float, float]:
    """Multi3DRefer F1 at each threshold for one query (see the module docstring)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 6)
    if len(gt) == 0:
        return {k: float(len(pred) == 0) for k in thresholds}
    ious = matched_ious(pred, gt)
    return {k: 2 * int((ious >= k).sum()) / (len(pred) + len(gt)) for k in thresholds}
