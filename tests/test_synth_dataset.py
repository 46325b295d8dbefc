"""`python -m core synth`: deterministic for a seed, resumable after a crash, complete scenes only."""

from __future__ import annotations

import filecmp
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.scene.scannet import load_scene
from core.synth.dataset import (
    SynthConfig,
    assign_splits,
    dataset_splits,
    generate_dataset,
    planned_room_type,
    write_annotations,
)
from core.synth.layout import ROOM_TYPES

CONFIG = SynthConfig(num_frames=6)
REPO = Path(__file__).resolve().parents[1]


def tree_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.slow  # default-suite time; run with `pytest -m slow`
def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate_dataset(a, 1, seed=3, config=CONFIG, progress=False)
    generate_dataset(b, 1, seed=3, config=CONFIG, progress=False)
    files = tree_files(a)
    assert files == tree_files(b)
    assert "scans/scene0000_00/scene0000_00_vh_clean_2.ply" in files
    assert (
        "annotations/ScanRefer_filtered_train.json" in files
        or "annotations/ScanRefer_filtered_val.json" in files
    )
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors


@pytest.mark.slow  # default-suite time; run with `pytest -m slow`
def test_a_crashed_scene_is_rebuilt_and_finished_ones_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_dataset(out, 1, seed=5, config=CONFIG, progress=False)
    first_mesh = (out / "scans/scene0000_00/scene0000_00_vh_clean_2.ply").stat().st_mtime_ns
    # A run killed while writing scene 1 leaves only its hidden partial folder behind.
    partial = out / "scans" / ".scene0001_00.partial"
    partial.mkdir()
    (partial / "junk.txt").write_text("half written")
    reports = generate_dataset(out, 2, seed=5, config=CONFIG, progress=False)
    assert [r["skipped"] for r in reports] == [True, False]
    assert (out / "scans/scene0000_00/scene0000_00_vh_clean_2.ply").stat().st_mtime_ns == first_mesh
    assert not partial.exists()
    scene = load_scene(out, "scene0001_00")
    assert len(scene.frames) + len(scene.frames.skipped) == 6
    # Both scenes are in the benchmark files and the split files.
    splits = (out / "scannetv2_train.txt").read_text().split() + (
        out / "scannetv2_val.txt"
    ).read_text().split()
    assert sorted(splits) == ["scene0000_00", "scene0001_00"]
    # Matches an uninterrupted run.
    clean = tmp_path / "clean"
    generate_dataset(clean, 2, seed=5, config=CONFIG, progress=False)
    compared = [
        "scans/scene0001_00/scene0001_00.aggregation.json",
        "scans/scene0001_00/scene0001_00_vh_clean_2.ply",
        *(str(p.relative_to(clean)) for p in sorted((clean / "annotations").iterdir())),
    ]
    compared += ["scannetv2_train.txt", "scannetv2_val.txt", "synth/scene0000_00.json"]
    assert len(compared) > 4
    for name in compared:
        assert (clean / name).read_bytes() == (out / name).read_bytes(), name
    # two scenes: one of each split, though the first was written when it was alone (and in train)
    assert sorted(
        json.loads((out / "synth" / f"scene000{i}_00.json").read_text())["split"] for i in (0, 1)
    ) == [
        "train",
        "val",
    ]


def test_annotations_are_rewritten_from_saved_facts(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_dataset(out, 2, seed=1, config=CONFIG, progress=False)
    written = {p: p.read_bytes() for p in sorted((out / "annotations").iterdir())}
    written[out / "scannetv2_val.txt"] = (out / "scannetv2_val.txt").read_bytes()
    for path in written:
        path.unlink()
    run = subprocess.run(
        [sys.executable, "-m", "core.synth.dataset", "--out", str(out), "--seed", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote annotations of 2 scenes (1 val)" in run.stdout
    for path, content in written.items():
        assert path.read_bytes() == content, path
    (out / "synth" / "scene0000_00.json").unlink()
    with pytest.raises(FileNotFoundError, match="scene0000_00"):
        write_annotations(out, 2, seed=1)
    bad = subprocess.run(
        [sys.executable, "-m", "core.synth.dataset", "--out", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "no facts file" in bad.stderr


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_is_never_empty_and_stratified_by_room_type(seed: int) -> None:
    for n in [*range(2, 9), 12, 13, 30]:
        types = [planned_room_type(i, seed) for i in range(n)]
        splits = assign_splits(types, seed)
        assert splits == assign_splits(types, seed)  # deterministic
        val = [t for t, s in zip(types, splits) if s == "val"]
        assert 1 <= len(val) <= n - 1 and len(val) == min(n - 1, math.ceil(0.2 * n)), (n, splits)
        # round-robin over types: no type gives a second val scene before every type gave one
        counts = {t: val.count(t) for t in set(types)}
        assert max(counts.values()) - min(counts.values()) <= 1, (n, counts)
        for t in set(types):  # a type with two or more scenes keeps one in train
            if types.count(t) >= 2:
                assert counts[t] < types.count(t), (n, t)
    assert assign_splits(["office"], seed) == ["train"] and assign_splits([], seed) == []
    # a scene's split comes from the room types and N, not from the order scenes were written in
    uneven = ["kitchen"] * 6 + ["office"] * 2 + ["bathroom"] * 2
    splits = assign_splits(uneven, seed)
    assert [t for t, s in zip(uneven, splits) if s == "val"].count("kitchen") == 1
    assert set(ROOM_TYPES) >= set(uneven)


def test_a_grown_dataset_keeps_its_val_scenes_and_val_files(tmp_path: Path) -> None:
    small, grown = tmp_path / "small", tmp_path / "grown"
    generate_dataset(small, 2, seed=1, config=CONFIG, progress=False)
    shutil.copytree(small, grown)
    generate_dataset(grown, 3, seed=1, config=CONFIG, progress=False, val_from_first=2)
    val_files = [
        "scannetv2_val.txt",
        *(f"annotations/{p.name}" for p in (small / "annotations").glob("*val*")),
    ]
    assert len(val_files) >= 4
    for name in val_files:
        assert (grown / name).read_bytes() == (small / name).read_bytes(), name
    train = (grown / "scannetv2_train.txt").read_text().split()
    assert "scene0002_00" in train and len(train) == 2
    assert json.loads((grown / "synth/scene0002_00.json").read_text())["split"] == "train"
    # a later rewrite without the argument keeps the folder's choice
    expected = assign_splits([planned_room_type(i, 1) for i in range(2)], 1) + ["train"]
    assert write_annotations(grown, seed=1) == expected
    assert json.loads((grown / "synth/dataset.json").read_text())["val_from_first"] == 2
    assert (grown / "scannetv2_val.txt").read_bytes() == (small / "scannetv2_val.txt").read_bytes()


def test_dataset_splits_grow_train_only() -> None:
    types = [planned_room_type(i, 0) for i in range(96)]
    assert dataset_splits(types, 0, 0.2, 48) == assign_splits(types[:48], 0) + ["train"] * 48
    assert dataset_splits(types, 0) == assign_splits(types, 0) != dataset_splits(types, 0, 0.2, 48)
    assert dataset_splits(types[:10], 0, 0.2, 48) == assign_splits(types[:10], 0)
    with pytest.raises(ValueError, match="val_from_first"):
        dataset_splits(types, 0, 0.2, 0)


def test_synth_command_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "core", "synth", "--out", str(tmp_path), "--scenes", "1", "--frames", "4"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 1 scenes" in run.stdout
    facts = json.loads((tmp_path / "synth" / "scene0000_00.json").read_text())
    assert facts["room_type"] == "bedroom"
    assert not np.allclose(np.array(facts["axis_alignment"]), np.eye(4))
    bad = subprocess.run(
        [sys.executable, "-m", "core", "synth", "--out", str(tmp_path), "--scenes", "0"], cwd=REPO
    )
    assert bad.returncode == 2
