"""Scan2Cap and DenseScan caption runners.

Scan2Cap m@kIoU (k = 0.25, 0.5): every object ScanRefer describes is one sample. It takes the caption of
its best-overlapping proposal in the same scene when that IoU is strictly above k (first proposal on
ties), otherwise the empty caption `sos eos`; captions and references (the object's ScanRefer
`description`s) are put in Scan2Cap's form (`scan2cap_text`) and scored as one split per k. References
come from the description text, as Video-3D-LLM builds them, not from ScanRefer's `token` list cut at 30
words (Scan2Cap's own code): one normaliser for predictions and references alike. Some later repos
compare with >= k; Scan2Cap's strict comparison is kept here.

DenseScan: object / frame / scene captions are grouped by (level, scene_id, object_id); every record of a
group is a reference and the prediction gives one caption per group (`scan2cap_text` form, one split per
level). Scenario questions are scored like ScanQA (clean_answer EM, refined EM, caption metrics on the
cleaned answer). Records with status "rejected" are not ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.densescan import LEVELS, DenseScanRecord, read_densescan
from core.data.predictions import read_proposals, read_texts
from core.data.scan2cap import caption_targets
from core.data.scanrefer import read_scanrefer
from core.eval.answers import clean_answer, exact_match, refined_match
from core.eval.boxes import THRESHOLDS
from core.eval.captions import EMPTY_CAPTION, SPICE_NOTE, CaptionScorer, scan2cap_text
from core.eval.errors import EvalError
from core.eval.keys import check_known, missing_keys
from core.eval.report import EvalReport
from core.eval.scenes import ScanTruth
from core.scene.geometry import box_iou_matrix


def evaluate_scan2cap(
    gt_path: str | Path,
    pred_path: str | Path,
    truth: ScanTruth,
    scorer: CaptionScorer,
    thresholds: tuple[float, ...] = THRESHOLDS,
    progress: bool = False,
) -> EvalReport:
    items = read_scanrefer(gt_path)
    targets = caption_targets(items)
    truth.preload([t.scene_id for t in targets], progress)
    first_record = {}
    for i, r in enumerate(items):
        first_record.setdefault((r.scene_id, r.object_id), i)
    boxes = []
    for t in targets:
        object_id = truth.object_of(gt_path, first_record[(t.scene_id, t.object_id)], t.scene_id, t.object_id)
        boxes.append(truth.scene(t.scene_id).boxes[object_id])

    proposals = read_proposals(pred_path)
    scenes = {t.scene_id for t in targets}
    for i, p in enumerate(proposals):
        if p.scene_id not in scenes:
            raise EvalError(
                pred_path, f"scene {p.scene_id} has no described object in {Path(gt_path).name}", i
            )
    by_scene: dict[str, list[int]] = {}
    for i, p in enumerate(proposals):
        by_scene.setdefault(p.scene_id, []).append(i)

    best_iou, best_caption = [], []
    for t, box in zip(targets, boxes):
        ids = by_scene.get(t.scene_id, [])
        if not ids:
            best_iou.append(0.0)
            best_caption.append(None)
            continue
        ious = box_iou_matrix(np.array([proposals[i].box for i in ids]), box[None])[:, 0]
        j = int(np.argmax(ious))
        best_iou.append(float(ious[j]))
        best_caption.append(proposals[ids[j]].caption)

    references = {t.key: [scan2cap_text(d) for d in t.references] for t in targets}
    samples = [
        {
            "key": t.key,
            "scene_id": t.scene_id,
            "object_id": t.object_id,
            "object_name": t.object_name,
            "best_iou": iou,
            "caption": caption,
            "references": t.references,
            "missing": caption is None,
            "scores": {},
        }
        for t, iou, caption in zip(targets, best_iou, best_caption)
    ]
    metrics: dict[str, dict[str, float | int]] = {}
    for k in thresholds:
        hyps = {
            t.key: scan2cap_text(c) if c is not None and iou > k else EMPTY_CAPTION
            for t, iou, c in zip(targets, best_iou, best_caption)
        }
        scores = scorer.score(references, hyps)
        group = f"m@{k}IoU"
        matched = sum(h != EMPTY_CAPTION for h in hyps.values())
        metrics[group] = {**scores.corpus, "matched": matched, "count": len(targets)}
        for i, sample in enumerate(samples):
            sample["scores"][group] = scores.sample(i)
    missing = [t.key for t, c in zip(targets, best_caption) if c is None]
    notes = [
        "each object takes its best proposal's caption when IoU > k, else 'sos eos'; text in Scan2Cap form",
        "missing = objects in scenes without any proposal; matched = objects with a caption at that k",
        SPICE_NOTE,
    ]
    return EvalReport("scan2cap", metrics, samples, missing, notes)


def group_key(record: DenseScanRecord) -> str:
    """The prediction key of a DenseScan record's group (see `core.data.predictions`)."""
    if record.level == "scenario":
        return f"scenario|{record.scene_id}|{record.object_id}|{record.ann_id}"
    return f"{record.level}|{record.scene_id}|{record.object_id}"


def evaluate_densescan(gt_path: str | Path, pred_path: str | Path, scorer: CaptionScorer) -> EvalReport:
    records = [r for r in read_densescan(gt_path) if r.status != "rejected"]
    groups: dict[str, list[DenseScanRecord]] = {}
    for r in records:
        groups.setdefault(group_key(r), []).append(r)
    preds = read_texts(pred_path)
    check_known(pred_path, preds, groups, gt_path)

    samples, metrics = [], {}
    for level in LEVELS:
        keys = [k for k, rs in groups.items() if rs[0].level == level]
        if not keys:
            continue
        if level == "scenario":
            level_samples, level_metrics = _scenario(gt_path, keys, groups, preds, scorer)
        else:
            references = {k: [scan2cap_text(r.description) for r in groups[k]] for k in keys}
            hyps = {k: scan2cap_text(preds[k]) if k in preds else EMPTY_CAPTION for k in keys}
            scores = scorer.score(references, hyps)
            level_metrics = {**scores.corpus, "count": len(keys)}
            level_samples = [
                {
                    "key": k,
                    "level": level,
                    "scene_id": groups[k][0].scene_id,
                    "object_id": groups[k][0].object_id,
                    "object_name": groups[k][0].object_name,
                    "ann_ids": [r.ann_id for r in groups[k]],
                    "prediction": preds.get(k),
                    "references": [r.description for r in groups[k]],
                    "missing": k not in preds,
                    "scores": scores.sample(i),
                }
                for i, k in enumerate(keys)
            ]
        samples += level_samples
        metrics[level] = level_metrics
    notes = [
        "object / frame / scene: one caption per (level, scene, object) vs all its records, sos/eos form",
        "scenario: clean_answer EM and refined EM; caption metrics on cleaned answers",
        "records with status 'rejected' are not ground truth",
        SPICE_NOTE,
    ]
    return EvalReport("densescan", metrics, samples, missing_keys(list(groups), preds), notes)


def _scenario(
    gt_path: str | Path,
    keys: list[str],
    groups: dict[str, list[DenseScanRecord]],
    preds: dict[str, str],
    scorer: CaptionScorer,
) -> tuple[list[dict], dict[str, float | int]]:
    samples, refs, hyps = [], {}, {}
    for k in keys:
        record = groups[k][0]
        answers = [r.answer for r in groups[k] if r.answer]
        if not answers:
            raise EvalError(gt_path, "scenario record without an answer", record.key, "answer")
        pred = clean_answer(preds.get(k, ""))
        refs[k], hyps[k] = [clean_answer(a) for a in answers], pred
        samples.append(
            {
                "key": k,
                "level": "scenario",
                "scene_id": record.scene_id,
                "object_id": record.object_id,
                "object_name": record.object_name,
                "ann_ids": [record.ann_id],
                "question": record.question or record.description,
                "prediction": preds.get(k),
                "answers": answers,
                "missing": k not in preds,
                "scores": {
                    "EM": float(exact_match(pred, refs[k])),
                    "EM refined": float(refined_match(pred, refs[k])),
                },
            }
        )
    scores = scorer.score(refs, hyps)
    for i, sample in enumerate(samples):
        sample["scores"].update(scores.sample(i))
    metrics: dict[str, float | int] = {
        name: float(np.mean([s["scores"][name] for s in samples])) for name in ("EM", "EM refined")
    }
    return samples, {**metrics, **scores.corpus, "count": len(samples)}
