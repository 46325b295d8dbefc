"""Referring segmentation metrics (3D-STMN, Reason3D, MDIN): point IoU, mIoU and Acc@k.

The target is every mesh vertex of the object (no cropping); a sample's IoU is inter / (union + 1e-6)
over vertices; mIoU is the mean over samples, and Acc@k the fraction of samples with IoU strictly above
k (k = 0.25, 0.5), as those evaluators compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-6
THRESHOLDS = (0.25, 0.5)


def point_iou(pred_indices: np.ndarray, target: np.ndarray, target_count: int | None = None) -> float:
    """IoU of predicted vertices (unique indices) with the target (a boolean vertex mask)."""
    pred_indices = np.asarray(pred_indices, dtype=np.int64)
    count = int(target.sum()) if target_count is None else target_count
    inter = int(np.count_nonzero(target[pred_indices]))
    union = len(pred_indices) + count - inter
    return inter / (union + EPS)


def mask_accuracy(ious: Sequence[float] | np.ndarray, k: float) -> float:
    """Fraction of samples with IoU > k (0 for no samples)."""
    ious = np.asarray(ious, dtype=np.float64)
    return float((ious > k).mean()) if ious.size else 0.0


def mean_iou(ious: Sequence[float] | np.ndarray) -> float:
    ious = np.asarray(ious, dtype=np.float64)
    return float(ious.mean()) if ious.size else 0.0
