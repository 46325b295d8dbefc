"""Task runners and the `eval` command on a hand-made scan, with hand-computed results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.__main__ import main
from core.data.errors import DataError
from core.data.predictions import CaptionProposal, write_proposals, write_vertex_sets
from core.eval.captioning import evaluate_densescan, evaluate_scan2cap
from core.eval.captions import CaptionScorer
from core.eval.errors import EvalError
from core.eval.grounding import evaluate_multi3drefer, evaluate_refseg, evaluate_scanrefer
from core.eval.qa import evaluate_scanqa, evaluate_sqa3d
from core.eval.scenes import ScanTruth
from core.scene.mesh import Mesh
from core.scene.plyio import write_ply_mesh

SCENE = "scene0000_00"
# Three objects as the 8 corners of their boxes, plus 2 unannotated vertices: 26 vertices.
OBJECTS = {
    0: ("chair", (0, 0, 0), (1, 1, 1)),
    1: ("chair", (2, 0, 0), (3, 1, 1)),
    2: ("table", (0, 2, 0), (2, 3, 1)),
}


def box(lo, hi) -> list[float]:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return [float(v) for v in np.concatenate([(lo + hi) / 2, hi - lo])]


def corners(lo, hi) -> np.ndarray:
    return np.array([[(lo, hi)[(m >> k) & 1][k] for k in range(3)] for m in range(8)], dtype=np.float32)


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ScanNet-format scans folder with one scene (no meta file: identity alignment)."""
    root = tmp_path_factory.mktemp("scans")
    folder = root / SCENE
    folder.mkdir()
    vertices = np.concatenate([corners(lo, hi) for _, lo, hi in OBJECTS.values()] + [np.full((2, 3), 9.0)])
    faces = np.array([[0, 1, 2]])  # the reader refuses a mesh without faces; the metrics use vertices only
    write_ply_mesh(folder / f"{SCENE}_vh_clean_2.ply", Mesh(vertices, np.zeros_like(vertices), faces))
    segments = [oid for oid in OBJECTS for _ in range(8)] + [99, 99]
    (folder / f"{SCENE}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": segments}))
    groups = [
        {"id": oid, "objectId": oid, "segments": [oid], "label": label}
        for oid, (label, _, _) in OBJECTS.items()
    ]
    (folder / f"{SCENE}.aggregation.json").write_text(json.dumps({"sceneId": SCENE, "segGroups": groups}))
    return root


def dump(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def refer(obj: int, ann: int, text: str = "a thing.") -> dict:
    name = OBJECTS[obj][0]
    return {
        "scene_id": SCENE,
        "object_id": str(obj),
        "object_name": name,
        "ann_id": str(ann),
        "description": text,
        "token": text.split(),
    }


@pytest.fixture
def scanrefer_gt(tmp_path: Path) -> Path:
    # ann_id "0" repeats across objects: samples are keyed by (scene, object, ann).
    rows = [refer(0, 0, "the left chair."), refer(0, 1, "a chair, near the table."), refer(1, 0), refer(2, 0)]
    return dump(tmp_path / "ScanRefer_filtered_val.json", rows)


def key(obj: int, ann: int) -> str:
    return f"{SCENE}|{obj}|{ann}"


# ----------------------------------------------------------------------------------------------- ScanRefer


def test_scanrefer_accuracy_by_hand(scans: Path, scanrefer_gt: Path, tmp_path: Path) -> None:
    preds = {
        key(0, 0): box((0, 0, 0), (1, 1, 1)),  # exact: IoU 1
        key(0, 1): box((0.5, 0, 0), (1.5, 1, 1)),  # IoU 1/3
        key(2, 0): box((0, 2, 0), (1, 3, 1)),  # half the table: IoU exactly 0.5, counts at 0.5 (>=)
    }  # key(1, 0) is missing: wrong
    report = evaluate_scanrefer(scanrefer_gt, dump(tmp_path / "pred.json", preds), ScanTruth(scans))
    m = report.metrics
    assert m["unique"] == {"Acc@0.25": 1.0, "Acc@0.5": 1.0, "count": 1}  # the only table
    assert m["multiple"]["Acc@0.25"] == pytest.approx(2 / 3) and m["multiple"]["Acc@0.5"] == pytest.approx(
        1 / 3
    )
    assert m["overall"] == {"Acc@0.25": 0.75, "Acc@0.5": 0.5, "count": 4}
    assert report.missing == [key(1, 0)]
    assert [s["iou"] for s in report.samples] == pytest.approx([1.0, 1 / 3, 0.0, 0.5])
    assert report.samples[2]["missing"] and report.samples[2]["prediction"] is None
    assert report.samples[3]["target"] == box((0, 2, 0), (2, 3, 1))


def test_scanrefer_errors(scans: Path, scanrefer_gt: Path, tmp_path: Path) -> None:
    truth = ScanTruth(scans)
    with pytest.raises(EvalError, match="unknown keys") as err:
        evaluate_scanrefer(
            scanrefer_gt, dump(tmp_path / "p.json", {f"{SCENE}|7|0": box((0, 0, 0), (1, 1, 1))}), truth
        )
    assert err.value.index == f"{SCENE}|7|0" and "p.json" in str(err.value)
    bad_gt = dump(tmp_path / "gt.json", [refer(0, 0), refer(1, 0), refer(0, 0, "the same key again.")])
    with pytest.raises(DataError, match="duplicate"):
        evaluate_scanrefer(bad_gt, dump(tmp_path / "p.json", {}), truth)
    bad_gt = dump(tmp_path / "gt.json", [{**refer(0, 0), "object_id": "5"}])
    with pytest.raises(EvalError, match="no object 5") as err:
        evaluate_scanrefer(bad_gt, dump(tmp_path / "p.json", {}), truth)
    assert err.value.index == 0 and err.value.field == "object_id"
    bad_gt = dump(tmp_path / "gt.json", [{**refer(0, 0), "scene_id": "scene0999_00"}])
    with pytest.raises(EvalError, match="scene0999_00"):
        evaluate_scanrefer(bad_gt, dump(tmp_path / "p.json", {}), truth)


# ------------------------------------------------------------------------------------------ Multi3DRefer


def test_multi3drefer_f1_per_eval_type(scans: Path, tmp_path: Path) -> None:
    def query(ann, ids, eval_type):
        return {
            "scene_id": SCENE,
            "object_name": "chair",
            "ann_id": ann,
            "description": "x",
            "object_ids": ids,
            "eval_type": eval_type,
        }

    gt = dump(
        tmp_path / "multi3drefer_val.json",
        [
            query(0, [], "zt_w_d"),
            query(1, [], "zt_wo_d"),
            query(2, [0], "st_w_d"),
            query(3, [0, 1], "mt"),
            query(4, [0, 1], "mt"),
            query(5, [], "zt_w_d"),
            query(6, [2], "st_wo_d"),
        ],
    )
    a, b, t = box((0, 0, 0), (1, 1, 1)), box((2, 0, 0), (3, 1, 1)), box((0, 2, 0), (2, 3, 1))
    preds = {
        f"{SCENE}|0": [],  # zero target, nothing predicted: 1
        f"{SCENE}|1": [a],  # zero target, a box: 0
        f"{SCENE}|2": [a, b],  # 1 TP of 2 predictions, 1 target: 2/3
        f"{SCENE}|3": [b, box((0.5, 0, 0), (1.5, 1, 1))],  # TPs 2 at 0.25 (F1 1), 1 at 0.5 (F1 1/2)
        f"{SCENE}|6": [t, t],  # a duplicate ties for the table: one TP, 2/3
    }  # 4 (mt) and 5 (zero target!) are missing: 0
    report = evaluate_multi3drefer(gt, dump(tmp_path / "pred.json", preds), ScanTruth(scans))
    m = report.metrics
    assert m["zt_w_d"]["F1@0.25"] == 0.5 and m["zt_wo_d"]["F1@0.5"] == 0.0
    assert m["st_w_d"]["F1@0.5"] == pytest.approx(2 / 3) and m["st_wo_d"]["F1@0.25"] == pytest.approx(2 / 3)
    assert m["mt"] == {"F1@0.25": 0.5, "F1@0.5": 0.25, "count": 2}
    assert m["overall"]["F1@0.25"] == pytest.approx(10 / 21) and m["overall"]["F1@0.5"] == pytest.approx(
        17 / 42
    )
    assert report.missing == [f"{SCENE}|4", f"{SCENE}|5"]


# --------------------------------------------------------------------------------- referring segmentation


def test_refseg_point_iou_by_hand(scans: Path, scanrefer_gt: Path, tmp_path: Path) -> None:
    preds = {
        key(0, 0): list(range(8)),  # exact
        key(0, 1): [0, 1, 2, 3, 8, 9],  # 4 of 8 target vertices + 2 of the other chair: 4 / 10
        key(1, 0): [],  # empty prediction: 0
        key(2, 0): [16, 17, 18, 19],  # half the table: 4 / 8, not above 0.5
    }
    report = evaluate_refseg(scanrefer_gt, dump(tmp_path / "pred.json", preds), ScanTruth(scans))
    ious = [8 / (8 + 1e-6), 4 / (10 + 1e-6), 0.0, 4 / (8 + 1e-6)]
    assert [s["iou"] for s in report.samples] == pytest.approx(ious, rel=1e-12)
    m = report.metrics
    assert m["overall"]["mIoU"] == pytest.approx(np.mean(ious))
    assert m["overall"]["Acc@0.25"] == 0.75 and m["overall"]["Acc@0.5"] == 0.25
    assert m["unique"] == {"mIoU": pytest.approx(ious[3]), "Acc@0.25": 1.0, "Acc@0.5": 0.0, "count": 1}
    assert report.missing == []
    # The same as boolean masks in an .npz.
    masks = {}
    for k, indices in preds.items():
        masks[k] = np.zeros(26, dtype=bool)
        masks[k][indices] = True
    npz = write_vertex_sets(tmp_path / "pred.npz", masks)
    assert [s["iou"] for s in evaluate_refseg(scanrefer_gt, npz, ScanTruth(scans)).samples] == pytest.approx(
        ious
    )


def test_refseg_rejects_vertices_past_the_mesh(scans: Path, scanrefer_gt: Path, tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="past the mesh") as err:
        evaluate_refseg(scanrefer_gt, dump(tmp_path / "p.json", {key(0, 0): [3, 26]}), ScanTruth(scans))
    assert err.value.index == key(0, 0)
    npz = write_vertex_sets(tmp_path / "p.npz", {key(0, 0): np.ones(30, dtype=bool)})
    with pytest.raises(EvalError, match="30 entries"):
        evaluate_refseg(scanrefer_gt, npz, ScanTruth(scans))


# ------------------------------------------------------------------------------------------------ Scan2Cap


def test_scan2cap_m_at_k_iou(scans: Path, scanrefer_gt: Path, tmp_path: Path) -> None:
    proposals = [
        CaptionProposal(SCENE, np.array(box((0, 0, 0), (1, 1, 1))), "A chair."),  # object 0, IoU 1
        CaptionProposal(SCENE, np.array(box((2.5, 0, 0), (3.5, 1, 1))), "Another chair"),  # object 1, IoU 1/3
        CaptionProposal(SCENE, np.array(box((0, 2, 0), (1, 3, 1))), "a table"),  # object 2, IoU 0.5
    ]
    pred = write_proposals(tmp_path / "cap.json", proposals)
    scorer = CaptionScorer(meteor=False)
    report = evaluate_scan2cap(scanrefer_gt, pred, ScanTruth(scans), scorer)
    assert [s["key"] for s in report.samples] == [f"{SCENE}|0", f"{SCENE}|1", f"{SCENE}|2"]
    assert [s["best_iou"] for s in report.samples] == pytest.approx([1.0, 1 / 3, 0.5])
    # IoU must be strictly above k: the table's 0.5 is matched at 0.25 only.
    refs = {
        f"{SCENE}|0": ["sos the left chair . eos", "sos a chair , near the table . eos"],
        f"{SCENE}|1": ["sos a thing . eos"],
        f"{SCENE}|2": ["sos a thing . eos"],
    }
    at25 = {
        f"{SCENE}|0": "sos a chair . eos",
        f"{SCENE}|1": "sos another chair eos",
        f"{SCENE}|2": "sos a table eos",
    }
    at50 = {f"{SCENE}|0": "sos a chair . eos", f"{SCENE}|1": "sos eos", f"{SCENE}|2": "sos eos"}
    for group, hyps in (("m@0.25IoU", at25), ("m@0.5IoU", at50)):
        expected = scorer.score(refs, hyps).corpus
        assert {k: report.metrics[group][k] for k in expected} == pytest.approx(expected)
    assert report.metrics["m@0.25IoU"]["matched"] == 3 and report.metrics["m@0.5IoU"]["matched"] == 1
    assert report.missing == []
    # A scene without proposals: its objects are missing and score the empty caption.
    empty = evaluate_scan2cap(
        scanrefer_gt, write_proposals(tmp_path / "none.json", []), ScanTruth(scans), scorer
    )
    assert len(empty.missing) == 3 and empty.metrics["m@0.5IoU"]["matched"] == 0
    with pytest.raises(EvalError, match="scene0999_00"):
        bad = [CaptionProposal("scene0999_00", np.array(box((0, 0, 0), (1, 1, 1))), "x")]
        evaluate_scan2cap(scanrefer_gt, write_proposals(tmp_path / "bad.json", bad), ScanTruth(scans), scorer)


# ---------------------------------------------------------------------------------------------------- QA


def test_scanqa_em_raw_and_clean(tmp_path: Path) -> None:
    def q(i, answers):
        return {"question_id": f"val-scene0000-{i}", "scene_id": SCENE, "question": "?", "answers": answers}

    gt = dump(
        tmp_path / "ScanQA_v1.0_val.json",
        [q(0, ["two", "2 chairs"]), q(1, ["the brown chair"]), q(2, ["table"])],
    )
    preds = [
        {"question_id": "val-scene0000-0", "answer_top10": ["2", "two"]},  # raw miss, clean "two" hits
        {"question_id": "val-scene0000-1", "answer_top10": ["Brown chair."]},  # clean: "brown chair"
    ]  # question 2 is missing
    report = evaluate_scanqa(gt, dump(tmp_path / "pred.json", preds), CaptionScorer(meteor=False))
    m = report.metrics["all"]
    assert m["EM@1 raw"] == 0.0 and m["EM@1 clean"] == pytest.approx(2 / 3)
    assert m["EM@1 refined clean"] == pytest.approx(2 / 3) and m["count"] == 3
    assert report.missing == ["val-scene0000-2"]
    # BLEU-1 cleaned: hypotheses "two", "brown chair", "" (3 words, all correct); closest reference
    # lengths 1, 2, 1 (the empty hypothesis is nearest the 1-word "table"): BP = exp(1 - 4/3).
    ratio = (3 + 1e-15) / (4 + 1e-9)
    assert m["BLEU-1 cleaned"] == pytest.approx((3 + 1e-15) / (3 + 1e-9) * np.exp(1 - 1 / ratio), rel=1e-12)
    # BLEU-1 as given (the headline): "2", "Brown chair" (period stripped, case kept), "": 2 of 3 words in a
    # reference ("2" in "2 chairs", "chair"); closest reference lengths 1 ("two"), 3, 1: BP = exp(1 - 5/3).
    ratio = (3 + 1e-15) / (5 + 1e-9)
    assert m["BLEU-1"] == pytest.approx((2 + 1e-15) / (3 + 1e-9) * np.exp(1 - 1 / ratio), rel=1e-12)
    assert any("as given" in n for n in report.notes) and any("cleaned" in n for n in report.notes)
    with pytest.raises(DataError, match="no answers"):
        evaluate_scanqa(
            dump(tmp_path / "test.json", [q(0, [])]), dump(tmp_path / "p.json", []), CaptionScorer(False)
        )


def test_scanqa_caption_metrics_as_given_and_cleaned_differ(tmp_path: Path) -> None:
    """One question, answer "the brown chair", prediction "The brown chair." (computed by hand).

    As given (only the trailing period stripped): "The brown chair" vs "the brown chair": "The" differs by
    case, so unigram precision 2/3, recall 2/3, LCS 2 ("brown chair"): ROUGE-L = 2/3, EM@1 raw = 0.
    Cleaned: both sides "brown chair", identical: ROUGE-L = 1, EM@1 clean = 1."""
    question = {"question_id": "val-scene0000-0", "scene_id": SCENE, "question": "?"}
    gt = dump(tmp_path / "ScanQA_v1.0_val.json", [{**question, "answers": ["the brown chair"]}])
    pred = dump(tmp_path / "pred.json", [{"question_id": "val-scene0000-0", "answer": "The brown chair."}])
    m = evaluate_scanqa(gt, pred, CaptionScorer(meteor=False)).metrics["all"]
    assert m["EM@1 raw"] == 0.0 and m["EM@1 clean"] == 1.0
    assert m["ROUGE-L"] == pytest.approx(2 / 3) and m["ROUGE-L cleaned"] == pytest.approx(1.0)
    # BLEU-1 as given: 2 of 3 words; same length as the reference (pycocoevalcap's guards leave a brevity
    # penalty of exp(1 - 1/ratio) ~ 1 - 3e-10).
    ratio = (3 + 1e-15) / (3 + 1e-9)
    assert m["BLEU-1"] == pytest.approx((2 + 1e-15) / (3 + 1e-9) * np.exp(1 - 1 / ratio), rel=1e-12)
    assert m["BLEU-1 cleaned"] == pytest.approx(1.0, rel=1e-9)


def test_sqa3d_em_and_refined_per_type(tmp_path: Path) -> None:
    def q(i, question, answer):
        return {
            "question_id": i,
            "scene_id": SCENE,
            "situation": "I stand.",
            "question": question,
            "answers": [answer],
        }

    gt = dump(
        tmp_path / "sqa.json",
        [
            q(1, "What is on my left?", "chair"),
            q(2, "Is the door open?", "yes"),
            q(3, "How many chairs are there?", "2"),
            q(4, "Which way is the door?", "left"),
            q(5, "Where is the lamp?", "on the desk"),
        ],
    )
    preds = [
        {"question_id": 1, "answer": "a chair"},  # cleaned to "chair": EM
        {"question_id": 2, "answer": ""},  # empty: wrong, also for refined EM
        {"question_id": 3, "answer": "two chairs"},  # "2" cleans to "two": refined only
        {"question_id": 5, "answer": "desk"},  # inside "on desk": refined only
    ]  # question 4 missing
    report = evaluate_sqa3d(gt, dump(tmp_path / "pred.json", preds))
    m = report.metrics
    assert m["what"] == {"EM": 1.0, "EM refined": 1.0, "count": 1}
    assert m["is"]["EM refined"] == 0.0 and m["how"] == {"EM": 0.0, "EM refined": 1.0, "count": 1}
    assert m["which"]["EM refined"] == 0.0 and m["other"]["EM refined"] == 1.0 and "can" not in m
    assert m["all"] == {"EM": pytest.approx(0.2), "EM refined": pytest.approx(0.6), "count": 5}
    assert report.missing == ["4"]


# ------------------------------------------------------------------------------------------------ DenseScan


def test_densescan_levels(tmp_path: Path) -> None:
    def rec(obj, ann, level, text, status="accepted", **extra):
        return {
            "scene_id": SCENE,
            "object_id": obj,
            "object_name": "chair",
            "ann_id": ann,
            "description": text,
            "token": text.split(),
            "level": level,
            "status": status,
            **extra,
        }

    gt = dump(
        tmp_path / "densescan.json",
        [
            rec("0", "0", "object", "a brown chair."),
            rec("0", "1", "object", "a wooden chair."),
            rec("1", "0", "object", "a red chair.", status="rejected"),  # not ground truth
            rec("-1", "0", "scene", "a small bedroom."),
            rec(
                "-1",
                "1",
                "scenario",
                "where can I sit?",
                question="where can I sit?",
                answer="on the chair",
                answer_object_ids=["0"],
            ),
        ],
    )
    preds = {
        f"object|{SCENE}|0": "A brown chair.",
        f"scenario|{SCENE}|-1|1": "the chair",
    }  # the scene caption is missing
    report = evaluate_densescan(gt, dump(tmp_path / "pred.json", preds), CaptionScorer(meteor=False))
    assert list(report.metrics) == ["object", "scene", "scenario"]
    assert report.metrics["object"]["count"] == 1 and report.metrics["object"]["BLEU-1"] == pytest.approx(1.0)
    assert report.metrics["scenario"]["EM"] == 0.0 and report.metrics["scenario"]["EM refined"] == 1.0
    assert report.missing == [f"scene|{SCENE}|-1"]
    with pytest.raises(EvalError, match="unknown"):
        evaluate_densescan(gt, dump(tmp_path / "bad.json", {f"object|{SCENE}|1": "x"}), CaptionScorer(False))


# -------------------------------------------------------------------------------------------------- command


def test_eval_command_prints_and_writes_json(
    scans: Path, scanrefer_gt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pred = dump(tmp_path / "pred.json", {key(0, 0): box((0, 0, 0), (1, 1, 1))})
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "eval",
                "scanrefer",
                "--gt",
                str(scanrefer_gt),
                "--pred",
                str(pred),
                "--scans",
                str(scans),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Acc@0.25" in printed and "unique" in printed and "3 without a prediction" in printed
    report = json.loads(out.read_text())
    assert report["metrics"]["overall"]["Acc@0.5"] == 0.25 and report["num_missing"] == 3
    assert len(report["samples"]) == 4 and report["samples"][0]["scores"] == {"Acc@0.25": 1.0, "Acc@0.5": 1.0}
    # Default report path: beside the predictions.
    assert (
        main(["eval", "scanrefer", "--gt", str(scanrefer_gt), "--pred", str(pred), "--scans", str(scans)])
        == 0
    )
    assert (tmp_path / "pred.scanrefer-eval.json").is_file()
    # Bad input: a clear error and exit status 2.
    unknown = dump(tmp_path / "unknown.json", {f"{SCENE}|9|9": box((0, 0, 0), (1, 1, 1))})
    assert (
        main(["eval", "scanrefer", "--gt", str(scanrefer_gt), "--pred", str(unknown), "--scans", str(scans)])
        == 2
    )
    assert "unknown.json" in capsys.readouterr().err
    assert main(["eval", "refseg", "--gt", str(scanrefer_gt), "--pred", str(pred)]) == 2
    assert "--scans" in capsys.readouterr().err
