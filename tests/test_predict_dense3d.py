"""`python -m core predict dense3d` with a tiny checkpoint on generated scenes: the files it writes are read
and scored by `python -m core eval`, a mask's connected parts become the right boxes, and bad input is one
clear line with exit status 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from dense3d_trained import train_tiny_dense3d

from core.__main__ import main
from core.data.predictions import read_box_sets, read_boxes, read_vertex_sets
from core.eval.predict_dense3d import component_boxes, mask_components, points_box
from core.scene.geometry import box_iou_matrix
from core.scene.scannet import load_scene

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Dense3D trained a few steps on two queries: enough to answer "It is [SEG]." (a mask)."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("ckpt")
    model, _ = train_tiny_dense3d(synth_root, tmp / "cache")
    return model.save_pretrained(tmp / "model")


def _subset(source: Path, out: Path, count: int, keep=lambda r: True) -> Path:
    records = [r for r in json.loads(source.read_text()) if keep(r)][:count]
    out.write_text(json.dumps(records))
    return out


@pytest.fixture(scope="module")
def queries(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A few ScanRefer queries, and Multi3DRefer ones with a zero-target query among them."""
    tmp = tmp_path_factory.mktemp("queries")
    annotations = synth_root / "annotations"
    multi = json.loads((annotations / "multi3drefer_train.json").read_text())
    chosen = [r for r in multi if not r["object_ids"]][:1] + [r for r in multi if r["object_ids"]][:3]
    (tmp / "multi.json").write_text(json.dumps(chosen))
    return {
        "scanrefer": _subset(annotations / "ScanRefer_filtered_train.json", tmp / "scanrefer.json", 5),
        "multi3drefer": tmp / "multi.json",
    }


def _predict(checkpoint: Path, root: Path, queries: Path, out: Path, *extra: str) -> int:
    args = ["predict", "dense3d", "--checkpoint", str(checkpoint), "--scans", str(root)]
    return main([*args, "--queries", str(queries), "--out", str(out), "--no-progress", *extra])


def test_refseg_and_scanrefer_files_are_scored_by_eval(checkpoint, queries, synth_root, tmp_path):
    refseg, boxes, details = tmp_path / "refseg.json", tmp_path / "boxes.json", tmp_path / "details.json"
    assert _predict(checkpoint, synth_root, queries["scanrefer"], refseg, "--details", str(details)) == 0
    assert _predict(checkpoint, synth_root, queries["scanrefer"], boxes, "--task", "scanrefer") == 0
    records = json.loads(queries["scanrefer"].read_text())
    keys = [f"{r['scene_id']}|{r['object_id']}|{r['ann_id']}" for r in records]

    vertices = read_vertex_sets(refseg)
    extras = json.loads(details.read_text())
    assert sorted(vertices) == sorted(extras) == sorted(keys)
    assert all(e["has_seg"] for e in extras.values()), extras  # the trained checkpoint answers with [SEG]
    assert all(e["points"] == len(vertices[k].indices) for k, e in extras.items())
    assert {"answer", "score", "components", "question"} <= set(extras[keys[0]])
    assert any(len(v.indices) for v in vertices.values())

    report = tmp_path / "refseg-eval.json"
    gt = str(queries["scanrefer"])
    assert (
        main(
            [
                "eval",
                "refseg",
                "--gt",
                gt,
                "--pred",
                str(refseg),
                "--scans",
                str(synth_root),
                "--out",
                str(report),
            ]
        )
        == 0
    )
    scored = {s["key"]: s for s in json.loads(report.read_text())["samples"]}
    scenes = {r["scene_id"]: load_scene(synth_root, r["scene_id"], with_frames=False) for r in records}
    for r, key in zip(records, keys):
        scene = scenes[r["scene_id"]]
        target = scene.vertex_instance == int(r["object_id"])
        pred = np.zeros(scene.mesh.num_vertices, dtype=bool)
        pred[vertices[key].indices] = True
        iou = (pred & target).sum() / ((pred | target).sum() + 1e-6)
        assert scored[key]["iou"] == pytest.approx(iou) and not scored[key]["missing"]

    predicted = read_boxes(boxes)
    report = tmp_path / "scanrefer-eval.json"
    assert (
        main(
            [
                "eval",
                "scanrefer",
                "--gt",
                gt,
                "--pred",
                str(boxes),
                "--scans",
                str(synth_root),
                "--out",
                str(report),
            ]
        )
        == 0
    )
    scored = {s["key"]: s for s in json.loads(report.read_text())["samples"]}
    for r, key in zip(records, keys):
        scene = scenes[r["scene_id"]]
        if not len(vertices[key].indices):
            assert key not in predicted and scored[key]["missing"]
            continue
        xyz = scene.mesh.vertices[vertices[key].indices]
        lo, hi = predicted[key][:3] - predicted[key][3:] / 2, predicted[key][:3] + predicted[key][3:] / 2
        assert (lo >= xyz.min(0) - 1e-5).all() and (hi <= xyz.max(0) + 1e-5).all()  # a part of the mask
        target = next(o.box for o in scene.objects() if o.object_id == int(r["object_id"]))
        iou = box_iou_matrix(predicted[key][None], np.asarray(target)[None])[0, 0]
        assert scored[key]["iou"] == pytest.approx(iou)


def test_multi3drefer_box_sets_are_scored_by_eval(checkpoint, queries, synth_root, tmp_path):
    out, details = tmp_path / "multi.json", tmp_path / "details.json"
    assert _predict(checkpoint, synth_root, queries["multi3drefer"], out, "--details", str(details)) == 0
    boxes, extras = read_box_sets(out), json.loads(details.read_text())
    records = json.loads(queries["multi3drefer"].read_text())
    assert sorted(boxes) == sorted(f"{r['scene_id']}|{r['ann_id']}" for r in records)
    for key, found in boxes.items():
        assert len(found) == extras[key]["components"]
        if not extras[key]["has_seg"] or not extras[key]["points"]:
            assert len(found) == 0
    report = tmp_path / "eval.json"
    args = ["eval", "multi3drefer", "--gt", str(queries["multi3drefer"]), "--pred", str(out)]
    assert main([*args, "--scans", str(synth_root), "--out", str(report)]) == 0
    document = json.loads(report.read_text())
    assert document["num_missing"] == 0
    for sample in document["samples"]:
        if not sample["object_ids"]:  # zero-target query: right exactly when no box is predicted
            assert sample["scores"]["F1@0.5"] == float(len(boxes[sample["key"]]) == 0)

    # --empty-below: a query whose score is below it answers "no target"; the others are untouched
    scores = sorted(e["score"] for e in extras.values())
    cut = (scores[0] + scores[-1]) / 2 if scores[0] < scores[-1] else scores[0] + 1e-6
    cut_out, cut_details = tmp_path / "cut.json", tmp_path / "cut-details.json"
    extra = ("--details", str(cut_details), "--empty-below", str(cut))
    assert _predict(checkpoint, synth_root, queries["multi3drefer"], cut_out, *extra) == 0
    cut_boxes, cut_extras = read_box_sets(cut_out), json.loads(cut_details.read_text())
    assert any(e["abstained"] for e in cut_extras.values())
    for key, found in cut_boxes.items():
        below = extras[key]["score"] < cut
        assert cut_extras[key]["abstained"] == below and cut_extras[key]["score"] == extras[key]["score"]
        assert (len(found) == 0) if below else np.array_equal(found, boxes[key])


def test_two_separated_blobs_give_two_boxes():
    grid = np.stack(np.meshgrid(*[np.arange(0, 0.21, 0.02)] * 3, indexing="ij"), -1).reshape(-1, 3)
    small = np.array([[3.0, 3.0, 3.0], [3.02, 3.0, 3.0], [3.0, 3.02, 3.0]])
    a = grid  # 0..0.2 in x, y, z
    b = grid[grid[:, 2] <= 0.1] * [2.0, 1.0, 1.0] + [1.0, 0.5, 0.0]  # 1.0..1.4 x 0.5..0.7 x 0..0.1
    xyz = np.concatenate([a, b, small, [[0.6, 0.1, 0.1]]]).astype(np.float32)
    mask = np.ones(len(xyz), dtype=bool)
    mask[-1] = False  # a point between the blobs, not predicted: it must not join them
    parts = mask_components(xyz, mask, voxel_size=0.05, min_points=5)
    assert [len(p) for p in parts] == [len(a), len(b)]
    boxes = component_boxes(xyz, mask, voxel_size=0.05, min_points=5)
    np.testing.assert_allclose(boxes[0], [0.1, 0.1, 0.1, 0.2, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(boxes[1], [1.2, 0.6, 0.05, 0.4, 0.2, 0.1], atol=1e-6)
    assert len(component_boxes(xyz, mask, voxel_size=0.05, min_points=1)) == 3  # the 3-point blob too
    assert component_boxes(xyz, np.zeros(len(xyz), dtype=bool)).shape == (0, 6)
    np.testing.assert_allclose(points_box(small), [3.01, 3.01, 3.0, 0.02, 0.02, 0.0], atol=1e-6)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_checkpoint_is_one_line_from_the_command(queries, synth_root, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "core", "predict", "dense3d", "--checkpoint", str(tmp_path / "nowhere")]
        + [
            "--scans",
            str(synth_root),
            "--queries",
            str(queries["scanrefer"]),
            "--out",
            str(tmp_path / "p.json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    line = _one_error_line(done.stderr)
    assert "no such checkpoint folder" in line and str(tmp_path / "nowhere") in line
    assert not (tmp_path / "p.json").exists()


def test_mismatched_config_missing_scene_and_wrong_task(checkpoint, queries, synth_root, tmp_path, capsys):
    mismatched = Path(shutil.copytree(checkpoint, tmp_path / "mismatch"))
    config = json.loads((mismatched / "config.json").read_text())
    config["unet"]["channels"] = [8, 24]
    (mismatched / "config.json").write_text(json.dumps(config))
    assert _predict(mismatched, synth_root, queries["scanrefer"], tmp_path / "p.json") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "does not match the weights" in line and "model.safetensors" in line

    records = json.loads(queries["scanrefer"].read_text())
    records[1]["scene_id"] = "scene0042_00"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(records))
    assert _predict(checkpoint, synth_root, moved, tmp_path / "p.json") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "scene0042_00" in line and str(moved) in line and "1 scene(s)" in line

    assert (
        _predict(checkpoint, synth_root, queries["multi3drefer"], tmp_path / "p.json", "--task", "refseg")
        == 2
    )
    assert "--task multi3drefer" in _one_error_line(capsys.readouterr().err)
    cut = ("--empty-below", "0.5")
    assert _predict(checkpoint, synth_root, queries["scanrefer"], tmp_path / "p.json", *cut) == 2
    assert "--empty-below applies to the multi3drefer task only" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "p.json").exists()
