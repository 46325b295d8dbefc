"""bench/refseg_failure_modes.py: the label / instance outcomes of a refseg prediction, on generated rooms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import refseg_failure_modes as script
from core.__main__ import main as core_main
from core.data.predictions import write_vertex_sets
from core.eval.scenes import ScanTruth
from core.scene.labels import normalize_label


def _scored(root: Path, tmp_path: Path, name: str, pick) -> tuple[Path, Path]:
    """Predictions made by `pick(scene truth, target id)` for every val query, scored by `core eval`."""
    gt = root / "annotations" / "ScanRefer_filtered_val.json"
    truth = ScanTruth(root)
    records = json.loads(gt.read_text())
    preds = {}
    for r in records:
        scene = truth.scene(r["scene_id"])
        chosen = pick(scene, int(r["object_id"]))
        key = f"{r['scene_id']}|{r['object_id']}|{r['ann_id']}"
        preds[key] = scene.vertices[chosen] if chosen is not None else np.zeros(0, dtype=np.int64)
    pred, report = tmp_path / f"{name}.json", tmp_path / f"{name}-eval.json"
    write_vertex_sets(pred, preds)
    args = [
        "eval",
        "refseg",
        "--gt",
        str(gt),
        "--pred",
        str(pred),
        "--scans",
        str(root),
        "--out",
        str(report),
    ]
    assert core_main(args) == 0
    return report, pred


def _modes(script, root: Path, report: Path, pred: Path, out: Path) -> dict:
    """The script's command line, numbers read back from its --json file."""
    args = ["--report", str(report), "--pred", str(pred), "--scans", str(root), "--json", str(out)]
    assert script.main(args) == 0
    return json.loads(out.read_text())


def _class(scene, object_id: int) -> str:
    return normalize_label(scene.labels[object_id])


def _another_of_the_class(scene, target: int) -> int:
    """Another object of the target's ScanRefer class when there is one (the target itself otherwise)."""
    others = [o for o in scene.vertices if o != target and _class(scene, o) == _class(scene, target)]
    return min(others) if others else target


def test_outcomes_of_perfect_distractor_and_empty_predictions(
    synth_root: Path, tmp_path: Path, capsys
) -> None:
    truth = ScanTruth(synth_root)

    report, pred = _scored(synth_root, tmp_path, "perfect", lambda scene, target: target)
    perfect = _modes(script, synth_root, report, pred, tmp_path / "perfect-modes.json")
    assert perfect["overall"]["right_object"] == 1.0 and perfect["overall"]["right_class"] == 1.0
    assert "| multiple |" in capsys.readouterr().out

    # every answer on another object of the same class: the class always right, the object never (where a
    # same-label distractor exists), and the chance is the mean of 1 / (objects of that class)
    report, pred = _scored(synth_root, tmp_path, "distractor", _another_of_the_class)
    modes = _modes(script, synth_root, report, pred, tmp_path / "distractor-modes.json")
    samples = json.loads(report.read_text())["samples"]
    multiple = [s for s in samples if s["split"] == "multiple"]
    assert multiple, "the generated rooms have same-class distractors"
    counts = []
    for s in multiple:
        scene = truth.scene(s["scene_id"])
        cls = _class(scene, int(s["object_id"]))
        counts.append(sum(1 for o in scene.vertices if _class(scene, o) == cls))
    assert max(counts) > 1, "some targets have an object of their own class beside them"
    assert modes["multiple"]["right_class"] == 1.0
    assert modes["multiple"]["right_object"] == pytest.approx(float(np.mean([k == 1 for k in counts])))
    assert modes["multiple"]["chance_given_class"] == pytest.approx(float(np.mean([1 / k for k in counts])))

    report, pred = _scored(synth_root, tmp_path, "empty", lambda scene, target: None)
    assert (
        _modes(script, synth_root, report, pred, tmp_path / "empty-modes.json")["overall"]["no_object"] == 1.0
    )


def test_a_report_of_another_task_is_one_clear_error(tmp_path: Path, capsys) -> None:
    report = tmp_path / "qa-eval.json"
    report.write_text(json.dumps({"task": "scanqa", "samples": []}))
    code = script.main(["--report", str(report), "--pred", str(report), "--scans", str(tmp_path)])
    assert code == 2 and "not a refseg report" in capsys.readouterr().err


def test_details_give_how_often_the_named_class_was_read(synth_root: Path, tmp_path: Path, capsys) -> None:
    """A details file whose `named_class` is the target's class for every other query (in the predict
    file's spelling, underscores and case) and a wrong class for the rest: read right half the time."""
    truth = ScanTruth(synth_root)
    report, pred = _scored(synth_root, tmp_path, "perfect", lambda scene, target: target)
    samples = json.loads(report.read_text())["samples"]
    details, right = {}, 0
    for i, s in enumerate(samples):
        cls = _class(truth.scene(s["scene_id"]), int(s["object_id"]))
        named = cls.upper().replace(" ", "_") if i % 2 == 0 else "no such class"
        details[s["key"]] = {"named_class": named}
        right += i % 2 == 0
    path = tmp_path / "details.json"
    path.write_text(json.dumps(details))
    out = tmp_path / "modes.json"
    args = ["--report", str(report), "--pred", str(pred), "--scans", str(synth_root), "--json", str(out)]
    assert script.main([*args, "--details", str(path)]) == 0
    assert json.loads(out.read_text())["overall"]["class_read"] == pytest.approx(right / len(samples))
    assert "class read from the sentence" in capsys.readouterr().out
    # without details the column is absent, and so it is with details of a model that names no class
    assert script.main(args) == 0
    assert "class_read" not in json.loads(out.read_text())["overall"]
    path.write_text(json.dumps({key: {"score": 0.5} for key in details}))
    assert script.main([*args, "--details", str(path)]) == 0
    assert "class_read" not in json.loads(out.read_text())["overall"]
