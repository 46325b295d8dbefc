"""bench/dense3d_no_target.py on a real Multi3DRefer report of generated scenes: the threshold it picks,
the F1 it predicts for it (checked against the real evaluator by the script itself), the blind rows, and
one clear error for details that do not belong to the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import dense3d_no_target as script
from core.__main__ import main
from core.data.predictions import write_box_sets
from core.eval.scenes import ScanTruth


@pytest.fixture(scope="module")
def scored(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three zero-target queries answered with a wrong box (scores 0.2, 0.3, 0.3), four queries answered
    with their exact target boxes (score 0.9) and one more, also exact, scored 0.1; evaluated for real."""
    tmp = tmp_path_factory.mktemp("no-target")
    records = json.loads((synth_root / "annotations" / "multi3drefer_train.json").read_text())
    zero = [r for r in records if not r["object_ids"]][:3]
    found = [r for r in records if r["object_ids"]][:5]
    assert len(zero) == 3 and len(found) == 5
    truth = ScanTruth(synth_root)
    preds, details = {}, {}
    for r, score in zip(zero, (0.2, 0.3, 0.3)):
        scene = truth.scene(r["scene_id"])
        preds[f"{r['scene_id']}|{r['ann_id']}"] = np.array([next(iter(scene.boxes.values()))])
        details[f"{r['scene_id']}|{r['ann_id']}"] = {"score": score}
    for r, score in zip(found, (0.9, 0.9, 0.9, 0.9, 0.1)):
        scene = truth.scene(r["scene_id"])
        preds[f"{r['scene_id']}|{r['ann_id']}"] = np.array([scene.boxes[int(o)] for o in r["object_ids"]])
        details[f"{r['scene_id']}|{r['ann_id']}"] = {"score": score}
    gt = tmp / "gt.json"
    gt.write_text(json.dumps(zero + found))
    pred = write_box_sets(tmp / "pred.json", preds)
    (tmp / "details.json").write_text(json.dumps(details))
    args = ["eval", "multi3drefer", "--gt", str(gt), "--pred", str(pred), "--scans", str(synth_root)]
    assert main([*args, "--out", str(tmp / "eval.json")]) == 0
    return {"report": tmp / "eval.json", "details": tmp / "details.json"}


def test_threshold_is_picked_and_rescored_by_the_evaluator(scored, tmp_path, capsys):
    split = script.load_split(scored["report"], scored["details"])
    assert split.zero.sum() == 3 and split.f1["F1@0.5"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    # never abstain: 5/8; at 0.2 the exact answer scored 0.1 is lost: 4/8; at 0.9 every zero-target query
    # is right and only that one is lost: 7/8, the best
    assert script.with_threshold(split, 0.0)["F1@0.5"].mean() == pytest.approx(5 / 8)
    assert script.with_threshold(split, 0.2)["F1@0.5"].mean() == pytest.approx(4 / 8)
    assert script.best_threshold(split) == pytest.approx(0.9)

    out = tmp_path / "no-target.json"
    pair = [str(scored["report"]), str(scored["details"])]
    assert script.main(["--calibrate", *pair, "--test", *pair, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--empty-below 0.9000" in printed
    document = json.loads(out.read_text())
    numbers = document["splits"]["eval"]
    assert document["threshold"] == pytest.approx(0.9)
    assert numbers["as_predicted"]["F1@0.5 overall"] == pytest.approx(5 / 8)
    assert numbers["with_threshold"]["F1@0.5 overall"] == pytest.approx(7 / 8)
    assert numbers["with_threshold"]["F1@0.5 zero-target"] == 1.0
    assert numbers["with_threshold"]["no_target_share"] == pytest.approx(4 / 8)
    assert numbers["no_target_for_all"]["F1@0.5 overall"] == pytest.approx(3 / 8)
    assert "| eval (calibration) | --empty-below 0.900 | 87.5 | 87.5 | 100.0 | 80.0 | 50% |" in printed


def test_details_of_another_run_are_one_clear_error(scored, tmp_path, capsys):
    details = json.loads(scored["details"].read_text())
    details.pop(next(iter(details)))
    other = tmp_path / "other-details.json"
    other.write_text(json.dumps(details))
    assert script.main(["--calibrate", str(scored["report"]), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {other}: no details for 1 of the report's queries") and "\n" not in err

    not_multi = tmp_path / "refseg.json"
    not_multi.write_text(json.dumps({"task": "refseg", "samples": []}))
    assert script.main(["--calibrate", str(not_multi), str(scored["details"])]) == 2
    assert "not a `python -m core eval multi3drefer` report" in capsys.readouterr().err


def test_a_report_that_does_not_match_its_prediction_file_is_caught(scored, tmp_path, capsys):
    """The cross-check is real: a report whose per-query scores are not those of the prediction file it
    names (here a query the threshold keeps, answered exactly, now has no box) is refused, not reported."""
    report = json.loads(scored["report"].read_text())
    preds = json.loads(Path(report["inputs"]["pred"]).read_text())
    kept = next(s for s in report["samples"] if s["object_ids"])  # scored 0.9: kept at the threshold
    preds[kept["key"]] = []
    other = tmp_path / "other-pred.json"
    other.write_text(json.dumps(preds))
    report["inputs"]["pred"] = str(other)
    moved = tmp_path / "eval.json"
    moved.write_text(json.dumps(report))
    assert script.main(["--calibrate", str(moved), str(scored["details"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "from the evaluator" in err and "do not belong to this report" in err and "\n" not in err
