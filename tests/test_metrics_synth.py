"""Every benchmark on a generated dataset: ground truth as prediction scores perfectly, and a known
perturbation lowers each score by exactly what it should. Runs the METEOR jar once (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data.multi3drefer import read_multi3drefer, write_multi3drefer
from core.data.predictions import (
    CaptionProposal,
    write_answers,
    write_box_sets,
    write_boxes,
    write_proposals,
    write_vertex_sets,
)
from core.data.scan2cap import caption_targets
from core.data.scanqa import read_scanqa, write_scanqa
from core.data.scanrefer import read_scanrefer, write_scanrefer
from core.data.sqa3d import read_sqa3d, write_sqa3d
from core.eval.captioning import evaluate_scan2cap
from core.eval.captions import CaptionScorer
from core.eval.grounding import evaluate_multi3drefer, evaluate_refseg, evaluate_scanrefer
from core.eval.qa import evaluate_scanqa, evaluate_sqa3d
from core.eval.scenes import ScanTruth

SPLITS = ("train", "val")


def merged(folder: Path, pattern: str, read) -> list:
    """Records of both splits (the generator puts each scene in one of them)."""
    items = []
    for split in SPLITS:
        path = folder / pattern.format(split=split)
        if path.is_file():
            items += read(path)
    return items


def test_ground_truth_scores_perfectly_and_perturbations_as_expected(
    synth_root: Path, tmp_path: Path
) -> None:
    ann = synth_root / "annotations"
    truth = ScanTruth(synth_root)

    refer = merged(ann, "ScanRefer_filtered_{split}.json", read_scanrefer)
    multi = merged(ann, "multi3drefer_{split}.json", read_multi3drefer)
    qa = merged(ann, "ScanQA_v1.0_{split}.json", read_scanqa)
    sqa = merged(ann, "v1_balanced_questions_{split}_scannetv2.json", read_sqa3d)
    assert len(refer) > 10 and len(multi) > 10 and len(qa) > 10 and len(sqa) > 5
    refer_gt = write_scanrefer(tmp_path / "scanrefer.json", refer)
    multi_gt = write_multi3drefer(tmp_path / "multi3drefer.json", multi)
    qa_gt = write_scanqa(tmp_path / "scanqa.json", qa)
    sqa_gt = write_sqa3d(tmp_path / "sqa3d.json", sqa)

    def box(scene_id: str, object_id) -> np.ndarray:
        return truth.scene(scene_id).boxes[int(object_id)].copy()

    even = np.arange(len(refer)) % 2 == 0
    share = float(even.mean())

    # ScanRefer: exact boxes; then every other box moved by its own width (touching: IoU 0).
    perfect = {r.key: box(r.scene_id, r.object_id) for r in refer}
    report = evaluate_scanrefer(refer_gt, write_boxes(tmp_path / "sr.json", perfect), truth)
    assert report.metrics["overall"] == {"Acc@0.25": 1.0, "Acc@0.5": 1.0, "count": len(refer)}
    moved = {k: b + [b[3], 0, 0, 0, 0, 0] if not e else b for (k, b), e in zip(perfect.items(), even)}
    report = evaluate_scanrefer(refer_gt, write_boxes(tmp_path / "sr2.json", moved), truth)
    assert report.metrics["overall"]["Acc@0.25"] == pytest.approx(share)
    assert report.metrics["unique"]["count"] + report.metrics["multiple"]["count"] == len(refer)

    # Referring segmentation: exact vertex sets; then every other prediction left out.
    vertices = {r.key: truth.scene(r.scene_id).vertices[int(r.object_id)] for r in refer}
    report = evaluate_refseg(refer_gt, write_vertex_sets(tmp_path / "seg.json", vertices), truth)
    assert report.metrics["overall"]["mIoU"] == pytest.approx(1.0, abs=1e-6)
    assert report.metrics["overall"]["Acc@0.5"] == 1.0
    half = {k: v for (k, v), e in zip(vertices.items(), even) if e}
    report = evaluate_refseg(refer_gt, write_vertex_sets(tmp_path / "seg2.npz", half), truth)
    assert report.metrics["overall"]["mIoU"] == pytest.approx(share, abs=1e-6)
    assert len(report.missing) == int((~even).sum())

    # Multi3DRefer: every target box; then no box anywhere (only zero-target queries stay right).
    boxes = {r.key: np.array([box(r.scene_id, o) for o in r.object_ids]).reshape(-1, 6) for r in multi}
    report = evaluate_multi3drefer(multi_gt, write_box_sets(tmp_path / "m3.json", boxes), truth)
    assert all(group["F1@0.5"] == 1.0 for group in report.metrics.values())
    nothing = {k: np.zeros((0, 6)) for k in boxes}
    report = evaluate_multi3drefer(multi_gt, write_box_sets(tmp_path / "m3b.json", nothing), truth)
    zero_target = np.mean([not r.object_ids for r in multi])
    assert report.metrics["overall"]["F1@0.25"] == pytest.approx(zero_target)

    # SQA3D: the answers; then every other question unanswered.
    answers = {r.question_id: r.answers for r in sqa}
    report = evaluate_sqa3d(sqa_gt, write_answers(tmp_path / "sqa.json", answers, top10=False))
    assert all(group["EM"] == 1.0 and group["EM refined"] == 1.0 for group in report.metrics.values())
    some = dict(list(answers.items())[::2])
    report = evaluate_sqa3d(sqa_gt, write_answers(tmp_path / "sqa2.json", some, top10=False))
    assert report.metrics["all"]["EM"] == pytest.approx(len(some) / len(sqa))

    with CaptionScorer(meteor=True) as scorer:  # one Java process for the caption tasks
        # ScanQA: the first answer of each question; then every other one replaced by a wrong word.
        top = {r.question_id: [r.answers[0]] for r in qa}
        report = evaluate_scanqa(qa_gt, write_answers(tmp_path / "qa.json", top), scorer)
        m = report.metrics["all"]
        assert m["EM@1 raw"] == 1.0 and m["EM@1 clean"] == 1.0
        assert m["BLEU-1"] == pytest.approx(1.0, abs=1e-6) and m["ROUGE-L"] == pytest.approx(1.0)
        assert m["METEOR"] > 0.95
        wrong = {k: v if i % 2 == 0 else ["zzz"] for i, (k, v) in enumerate(top.items())}
        report = evaluate_scanqa(qa_gt, write_answers(tmp_path / "qa2.json", wrong), scorer)
        assert report.metrics["all"]["EM@1 raw"] == pytest.approx(np.mean(np.arange(len(qa)) % 2 == 0))
        assert report.metrics["all"]["METEOR"] < m["METEOR"] and report.metrics["all"]["CIDEr"] < m["CIDEr"]

        # Scan2Cap: a proposal on each described object with its first description; then boxes moved by
        # half their width (IoU 1/3: matched at 0.25, not at 0.5).
        targets = caption_targets(refer)
        proposals = [
            CaptionProposal(t.scene_id, box(t.scene_id, t.object_id), t.references[0]) for t in targets
        ]
        report = evaluate_scan2cap(refer_gt, write_proposals(tmp_path / "cap.json", proposals), truth, scorer)
        for group in ("m@0.25IoU", "m@0.5IoU"):
            assert report.metrics[group]["matched"] == len(targets)
            assert report.metrics[group]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
        for p in proposals:
            p.box = p.box + [p.box[3] / 2, 0, 0, 0, 0, 0]
        report = evaluate_scan2cap(
            refer_gt, write_proposals(tmp_path / "cap2.json", proposals), truth, scorer
        )
        assert report.metrics["m@0.25IoU"]["matched"] == len(targets)
        assert report.metrics["m@0.5IoU"]["matched"] == 0
        assert report.metrics["m@0.5IoU"]["CIDEr"] < report.metrics["m@0.25IoU"]["CIDEr"]
