"""`python -m core baselines` on the generated dataset: numbers recomputed here independently, the command
line (table, JSON), and the clear error for an empty split."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.data.multi3drefer import read_multi3drefer
from core.data.scanqa import read_scanqa
from core.data.scanrefer import read_scanrefer
from core.data.sqa3d import read_sqa3d
from core.eval.answers import clean_answer
from core.eval.baselines import BaselineResult, compute_baselines, majority, scanqa_question_type
from core.scene.geometry import box_iou_matrix
from core.scene.scannet import load_scene

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val")


def both(root: Path, pattern: str, read) -> list:
    return [r for split in SPLITS for r in read(root / "annotations" / pattern.format(split=split))]


def most_common(answers: list[str]) -> str:
    """Independent of `majority`: highest count, then alphabetical."""
    counts = Counter(answers)
    best = max(counts.values())
    return sorted(a for a, c in counts.items() if c == best)[0]


def value(result: BaselineResult, task: str, baseline: str, group: str, metric: str) -> float:
    return result.details[task][baseline]["metrics"][group][metric]


@pytest.fixture(scope="module")
def result(synth_root: Path) -> BaselineResult:
    return compute_baselines(synth_root, "all", meteor=False)


def test_no_target_f1_is_the_share_of_zero_target_queries(synth_root: Path, result: BaselineResult) -> None:
    multi = both(synth_root, "multi3drefer_{split}.json", read_multi3drefer)
    zero = sum(not r.object_ids for r in multi)
    assert 0 < zero < len(multi)
    for k in ("F1@0.25", "F1@0.5"):
        assert value(result, "multi3drefer", "no target", "overall", k) == pytest.approx(zero / len(multi))
    assert result.details["multi3drefer"]["no target"]["metrics"]["overall"]["count"] == len(multi)


def test_majority_answer_em_is_its_count_over_n(synth_root: Path, result: BaselineResult) -> None:
    train_qa = read_scanqa(synth_root / "annotations" / "ScanQA_v1.0_train.json")
    assert train_qa, "the fixture's train split has ScanQA questions"
    top = most_common([r.answers[0] for r in train_qa])
    qa = both(synth_root, "ScanQA_v1.0_{split}.json", read_scanqa)
    baseline = f"majority answer (train): {top!r}"
    expected = sum(top in r.answers for r in qa) / len(qa)
    assert value(result, "scanqa", baseline, "all", "EM@1 raw") == pytest.approx(expected)
    assert expected > 0

    train_sqa = read_sqa3d(synth_root / "annotations" / "v1_balanced_questions_train_scannetv2.json")
    top = most_common([r.answers[0] for r in train_sqa])
    sqa = both(synth_root, "v1_balanced_questions_{split}_scannetv2.json", read_sqa3d)
    expected = sum(clean_answer(top) in [clean_answer(a) for a in r.answers] for r in sqa) / len(sqa)
    assert value(result, "sqa3d", f"majority answer (train): {top!r}", "all", "EM") == pytest.approx(expected)


def test_per_type_majority_is_at_least_the_overall_one_on_train(synth_root: Path) -> None:
    """Evaluated on the split it was counted on, the per-type majority can only gain over the overall one."""
    train = compute_baselines(synth_root, "train", meteor=False)
    for task, metric in (("scanqa", "EM@1 raw"), ("sqa3d", "EM")):
        details = train.details[task]
        runs = {name: d["metrics"]["all"][metric] for name, d in details.items() if "metrics" in d}
        overall = next(v for name, v in runs.items() if name.startswith("majority answer"))
        assert runs["majority per question type (train)"] >= overall


def test_largest_of_class_matches_boxes_measured_here(synth_root: Path, result: BaselineResult) -> None:
    refer = both(synth_root, "ScanRefer_filtered_{split}.json", read_scanrefer)
    scenes = {s: load_scene(synth_root, s, with_frames=False) for s in {r.scene_id for r in refer}}
    hits = []
    for r in refer:
        objects = scenes[r.scene_id].objects()
        target = next(o for o in objects if o.object_id == int(r.object_id))
        same = [o for o in objects if o.label.replace("_", " ") == r.object_name.replace("_", " ")]
        largest = max(same, key=lambda o: (float(np.prod(o.size)), -o.object_id))
        iou = box_iou_matrix(np.array([largest.box]), np.array([target.box]))[0, 0]
        hits.append(iou >= 0.5)
    acc = value(result, "scanrefer", "class oracle: largest of class", "overall", "Acc@0.5")
    assert acc == pytest.approx(np.mean(hits))
    seeded = result.details["scanrefer"]["class oracle: random of class (mean of 5 seeds)"]
    assert len(seeded["per_seed"]) == 5
    mean = np.mean([run["overall"]["Acc@0.5"] for run in seeded["per_seed"]])
    assert seeded["metrics"]["overall"]["Acc@0.5"] == pytest.approx(mean)
    random_instance = value(result, "scanrefer", "random instance (mean of 5 seeds)", "overall", "Acc@0.5")
    assert random_instance < seeded["metrics"]["overall"]["Acc@0.5"]


def test_refseg_empty_mask_and_random_superpoint(synth_root: Path, result: BaselineResult) -> None:
    refer = both(synth_root, "ScanRefer_filtered_{split}.json", read_scanrefer)
    empty = result.details["refseg"]["empty mask"]["metrics"]["overall"]
    assert empty["count"] == len(refer) > 0  # every ScanRefer sample has a target
    assert empty["mIoU"] == 0 and empty["Acc@0.25"] == 0 and empty["Acc@0.5"] == 0

    # seed 0 recomputed here: a uniform draw over the scene's sorted segs.json ids, in file order
    scenes = {s: load_scene(synth_root, s, with_frames=False) for s in {r.scene_id for r in refer}}
    rng = np.random.default_rng(0)
    ious = []
    for r in refer:
        scene = scenes[r.scene_id]
        ids = np.unique(scene.segments)
        pred = scene.segments == ids[int(rng.integers(len(ids)))]
        target = scene.vertex_instance == int(r.object_id)
        ious.append((pred & target).sum() / ((pred | target).sum() + 1e-6))
    seeded = result.details["refseg"]["random superpoint (mean of 5 seeds)"]
    assert len(seeded["per_seed"]) == 5
    assert seeded["per_seed"][0]["overall"]["mIoU"] == pytest.approx(np.mean(ious))
    mean = np.mean([run["overall"]["mIoU"] for run in seeded["per_seed"]])
    assert seeded["metrics"]["overall"]["mIoU"] == pytest.approx(mean)
    oracle = value(result, "refseg", "class oracle: largest of class", "overall", "mIoU")
    assert 0 < mean < oracle


def test_scan2cap_class_captions_match_every_object(synth_root: Path, result: BaselineResult) -> None:
    refer = both(synth_root, "ScanRefer_filtered_{split}.json", read_scanrefer)
    objects = {(r.scene_id, r.object_id) for r in refer}
    metrics = result.details["scan2cap"]["'a <class>.' at the GT box"]["metrics"]["m@0.5IoU"]
    assert metrics["matched"] == metrics["count"] == len(objects)
    assert metrics["CIDEr"] > 0


def test_majority_and_question_types() -> None:
    assert majority(["two", "one", "two", "one"]) == "one"  # ties: alphabetical
    assert majority([]) is None
    assert scanqa_question_type("How many chairs are there?") == "how many"
    assert scanqa_question_type("Where is the lamp?") == "where"
    assert scanqa_question_type("what color is the bed?") == "what color"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", "baselines", *args], cwd=REPO, capture_output=True, text=True
    )


def test_command_prints_the_table_and_writes_json(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "baselines.json"
    done = run_cli("--data", str(synth_root), "--split", "all", "--no-meteor", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["task", "baseline", "metric", "value", "n"]
    shown = ("no target", "class oracle: largest of class", "majority per question type (train)")
    for text in (*shown, "empty mask", "random superpoint (mean of 5 seeds)"):
        assert text in done.stdout
    document = json.loads(out.read_text())
    assert document["split"] == "all" and document["majority_split"] == "train"
    multi = both(synth_root, "multi3drefer_{split}.json", read_multi3drefer)
    row = next(r for r in document["rows"] if r["baseline"] == "no target" and r["metric"] == "F1@0.5")
    assert row["value"] == pytest.approx(np.mean([not r.object_ids for r in multi]))
    assert row["n"] == len(multi)
    assert f"{100 * row['value']:.2f}" in next(line for line in lines if "no target" in line)

    printed = run_cli("--data", str(synth_root), "--split", "all", "--no-meteor", "--json")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["rows"] == document["rows"]


def test_empty_split_is_a_one_line_error(synth_root: Path, tmp_path: Path) -> None:
    (tmp_path / "scannetv2_train.txt").write_text("scene0000_00\n")
    (tmp_path / "scannetv2_val.txt").write_text("\n")
    done = run_cli("--data", str(tmp_path), "--split", "val", "--no-meteor")
    assert done.returncode == 2 and done.stdout == ""
    message = done.stderr.strip()
    assert "\n" not in message and "split 'val' is empty" in message
    assert str(tmp_path / "scannetv2_val.txt") in message

    (tmp_path / "scannetv2_val.txt").unlink()
    done = run_cli("--data", str(tmp_path), "--split", "val", "--no-meteor")
    assert done.returncode == 2 and "scannetv2_val.txt: split file not found" in done.stderr
