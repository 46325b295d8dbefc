"""`python -m core synth`: deterministic for a seed, resumable after a crash, complete scenes only."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.scene.scannet import load_scene
from core.scene.synth.dataset import SynthConfig, generate_dataset

CONFIG = SynthConfig(num_frames=6)
REPO = Path(__file__).resolve().parents[1]


def tree_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


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
    assert len(compared) > 4
    for name in compared:
        assert (clean / name).read_bytes() == (out / name).read_bytes(), name


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
