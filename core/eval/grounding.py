"""ScanRefer, Multi3DRefer and referring-segmentation runners, against ground truth from the scans.

Target boxes are measured from the aligned instance vertices of `--scans` (`ScanTruth`), the way the
benchmarks' preprocessing measures them; the segmentation target is every vertex of the object. The
unique / multiple split is ScanRefer's rule (`core.data.scanrefer.unique_multiple`), or a lookup file.
A sample without a prediction scores 0 (IoU 0, F1 0 even for a zero-target query) and is listed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.jsonio import check_unique_keys
from core.data.multi3drefer import EVAL_TYPES, read_multi3drefer
from core.data.predictions import read_box_sets, read_boxes, read_vertex_sets
from core.data.scanrefer import MULTIPLE, UNIQUE, ScanReferRecord, read_scanrefer, unique_multiple
from core.eval.boxes import THRESHOLDS, accuracy, grounding_iou, multi_f1
from core.eval.errors import EvalError
from core.eval.keys import check_known, missing_keys
from core.eval.masks import mask_accuracy, mean_iou, point_iou
from core.eval.report import EvalReport
from core.eval.scenes import ScanTruth
from core.scene.labels import LabelMap

SPLIT_NOTE = (
    "unique / multiple: ScanRefer's rule, over the objects this file describes per scene "
    "(ScanRefer classes from the label table {table})"
)


def _boxes(values: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in b] for b in np.reshape(values, (-1, 6))]


def _splits(
    items: list[ScanReferRecord],
    gt_path: str | Path,
    label_map: LabelMap | None,
    lookup: dict[tuple[str, str], str] | None,
) -> tuple[dict[str, str], str]:
    """Each sample's unique / multiple group, and a note saying where it came from."""
    if lookup is None:
        label_map = label_map or LabelMap.default()
        return unique_multiple(items, label_map), SPLIT_NOTE.format(table=label_map.path)
    out = {}
    for i, r in enumerate(items):
        if (r.scene_id, r.object_id) not in lookup:
            raise EvalError(gt_path, "object missing from the unique / multiple lookup file", i, "object_id")
        out[r.key] = lookup[(r.scene_id, r.object_id)]
    return out, "unique / multiple: from the lookup file given"


def _read_referring(
    gt_path: str | Path, truth: ScanTruth, progress: bool
) -> tuple[list[ScanReferRecord], list[int]]:
    """ScanRefer-format ground truth with every target object checked against the scans."""
    items = read_scanrefer(gt_path)
    check_unique_keys(gt_path, [r.key for r in items])
    truth.preload([r.scene_id for r in items], progress)
    object_ids = [truth.object_of(gt_path, i, r.scene_id, r.object_id) for i, r in enumerate(items)]
    return items, object_ids


def _split_metrics(samples: list[dict], summarise) -> dict[str, dict[str, float | int]]:
    out = {}
    for group in (UNIQUE, MULTIPLE, "overall"):
        chosen = [s for s in samples if group == "overall" or s["split"] == group]
        if chosen:
            out[group] = {**summarise(chosen), "count": len(chosen)}
    return out


def evaluate_scanrefer(
    gt_path: str | Path,
    pred_path: str | Path,
    truth: ScanTruth,
    label_map: LabelMap | None = None,
    lookup: dict[tuple[str, str], str] | None = None,
    progress: bool = False,
) -> EvalReport:
    """Acc@0.25 / Acc@0.5 (IoU >= k) of one predicted box per description."""
    items, object_ids = _read_referring(gt_path, truth, progress)
    splits, split_note = _splits(items, gt_path, label_map, lookup)
    preds = read_boxes(pred_path)
    keys = [r.key for r in items]
    check_known(pred_path, preds, keys, gt_path)

    samples = []
    for r, object_id in zip(items, object_ids):
        target = truth.scene(r.scene_id).boxes[object_id]
        pred = preds.get(r.key)
        iou = 0.0 if pred is None else grounding_iou(pred, target)
        samples.append(
            {
                "key": r.key,
                "scene_id": r.scene_id,
                "object_id": r.object_id,
                "object_name": r.object_name,
                "ann_id": r.ann_id,
                "split": splits[r.key],
                "description": r.description,
                "prediction": None if pred is None else _boxes(pred)[0],
                "target": _boxes(target)[0],
                "missing": pred is None,
                "iou": iou,
                "scores": {f"Acc@{k}": float(iou >= k) for k in THRESHOLDS},
            }
        )

    def summarise(chosen: list[dict]) -> dict[str, float]:
        return {f"Acc@{k}": accuracy([s["iou"] for s in chosen], k) for k in THRESHOLDS}

    notes = ["a query is correct when its box has IoU >= k with the target box", split_note]
    return EvalReport(
        "scanrefer", _split_metrics(samples, summarise), samples, missing_keys(keys, preds), notes
    )


def evaluate_multi3drefer(
    gt_path: str | Path, pred_path: str | Path, truth: ScanTruth, progress: bool = False
) -> EvalReport:
    """F1@0.25 / F1@0.5 per query with Hungarian matching, averaged per eval_type and overall."""
    items = read_multi3drefer(gt_path)
    keys = [r.key for r in items]
    check_unique_keys(gt_path, keys)
    truth.preload([r.scene_id for r in items], progress)
    targets = []
    for i, r in enumerate(items):
        ids = [truth.object_of(gt_path, i, r.scene_id, oid) for oid in r.object_ids]
        targets.append(np.array([truth.scene(r.scene_id).boxes[o] for o in ids]).reshape(-1, 6))
    preds = read_box_sets(pred_path)
    check_known(pred_path, preds, keys, gt_path)

    samples = []
    for r, target in zip(items, targets):
        pred = preds.get(r.key)
        f1 = {k: 0.0 for k in THRESHOLDS} if pred is None else multi_f1(pred, target)
        samples.append(
            {
                "key": r.key,
                "scene_id": r.scene_id,
                "ann_id": r.ann_id,
                "object_name": r.object_name,
                "eval_type": r.eval_type,
                "description": r.description,
                "object_ids": r.object_ids,
                "prediction": None if pred is None else _boxes(pred),
                "target": _boxes(target),
                "missing": pred is None,
                "scores": {f"F1@{k}": f1[k] for k in THRESHOLDS},
            }
        )
    metrics = {}
    for group in (*EVAL_TYPES, "overall"):
        chosen = [s for s in samples if group == "overall" or s["eval_type"] == group]
        if chosen:
            means = {f"F1@{k}": float(np.mean([s["scores"][f"F1@{k}"] for s in chosen])) for k in THRESHOLDS}
            metrics[group] = {**means, "count": len(chosen)}
    notes = [
        "F1 = 2 TP / (|pred| + |gt|), TP = Hungarian-matched pairs with IoU >= k; zero-target: 1 iff no box",
        "a query without a prediction scores 0, zero-target queries included",
    ]
    return EvalReport("multi3drefer", metrics, samples, missing_keys(keys, preds), notes)


def evaluate_refseg(
    gt_path: str | Path,
    pred_path: str | Path,
    truth: ScanTruth,
    label_map: LabelMap | None = None,
    lookup: dict[tuple[str, str], str] | None = None,
    progress: bool = False,
) -> EvalReport:
    """Point IoU over all mesh vertices, mIoU and Acc@0.25 / Acc@0.5 (IoU > k)."""
    items, object_ids = _read_referring(gt_path, truth, progress)
    splits, split_note = _splits(items, gt_path, label_map, lookup)
    preds = read_vertex_sets(pred_path)
    keys = [r.key for r in items]
    check_known(pred_path, preds, keys, gt_path)

    samples = []
    for r, object_id in zip(items, object_ids):
        scene = truth.scene(r.scene_id)
        pred = preds.get(r.key)
        target_count = len(scene.vertices[object_id])
        iou = 0.0
        if pred is not None:
            if pred.mask_size is not None and pred.mask_size != scene.num_vertices:
                raise EvalError(
                    pred_path,
                    f"mask has {pred.mask_size} entries, the mesh {scene.num_vertices} vertices",
                    r.key,
                )
            if len(pred.indices) and pred.indices[-1] >= scene.num_vertices:
                raise EvalError(
                    pred_path,
                    f"vertex index {int(pred.indices[-1])} is past the mesh ({scene.num_vertices} vertices)",
                    r.key,
                )
            iou = point_iou(pred.indices, scene.mask(object_id), target_count)
        samples.append(
            {
                "key": r.key,
                "scene_id": r.scene_id,
                "object_id": r.object_id,
                "object_name": r.object_name,
                "ann_id": r.ann_id,
                "split": splits[r.key],
                "description": r.description,
                "predicted_vertices": None if pred is None else len(pred.indices),
                "target_vertices": target_count,
                "missing": pred is None,
                "iou": iou,
                "scores": {"IoU": iou, **{f"Acc@{k}": float(iou > k) for k in THRESHOLDS}},
            }
        )

    def summarise(chosen: list[dict]) -> dict[str, float]:
        ious = [s["iou"] for s in chosen]
        return {"mIoU": mean_iou(ious), **{f"Acc@{k}": mask_accuracy(ious, k) for k in THRESHOLDS}}

    notes = ["point IoU = inter / (union + 1e-6) over all mesh vertices; Acc@k counts IoU > k", split_note]
    return EvalReport("refseg", _split_metrics(samples, summarise), samples, missing_keys(keys, preds), notes)
