"""Bad scene files give one clear error naming the file: the ScanNet reader, `core scenes`, `core annotate`.

Each case copies a generated scene, breaks one file the way the attack pass on issue 10 did, and checks
that the error names exactly that file (and, for the commands, that the other scenes are still handled).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.scene.checks import intrinsics_problem, rigid_problem
from core.scene.errors import SceneError
from core.scene.mesh import Mesh
from core.scene.plyio import read_ply_mesh, write_ply_mesh
from core.scene.scannet import Scene

SCENE = "scene0000_00"
REPO = Path(__file__).resolve().parents[1]
DEEP = "[" * 100_000 + "]" * 100_000  # json's recursive decoder gives up long before this depth


def copy_as(synth_root: Path, scans: Path, scene_id: str = SCENE, images: bool = False) -> Path:
    """Scene `SCENE` copied to `scans/<scene_id>` (files renamed to the new id); images only if asked."""
    ignore = None if images else shutil.ignore_patterns("color", "depth")
    target = scans / scene_id
    shutil.copytree(synth_root / "scans" / SCENE, target, ignore=ignore)
    for path in list(target.iterdir()):
        if path.name.startswith(SCENE):
            path.rename(target / path.name.replace(SCENE, scene_id))
    return target


def segs_of(folder: Path) -> Path:
    return next(folder.glob("*.segs.json"))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def write_empty_mesh(folder: Path, keep_vertices: bool) -> None:
    mesh_path = folder / f"{folder.name}_vh_clean_2.ply"
    mesh, _ = read_ply_mesh(mesh_path)
    n = mesh.num_vertices if keep_vertices else 0
    write_ply_mesh(mesh_path, Mesh(mesh.vertices[:n], mesh.colors[:n], np.zeros((0, 3), dtype=np.int32)))


# Each breakage: (file it breaks, relative to the scene folder; how; text the error must hold).
def _break(folder: Path, breakage: str) -> Path:
    sid = folder.name
    meta, agg, segs = folder / f"{sid}.txt", folder / f"{sid}.aggregation.json", segs_of(folder)
    color_k, depth_k = (
        folder / "intrinsic" / "intrinsic_color.txt",
        folder / "intrinsic" / "intrinsic_depth.txt",
    )
    if breakage == "nan_intrinsics":
        color_k.write_text("nan " * 16)
        return color_k
    if breakage == "zero_intrinsics":
        depth_k.write_text("0 " * 16)
        return depth_k
    if breakage == "negative_focal":
        K = np.loadtxt(color_k)
        K[1, 1] = -K[1, 1]
        np.savetxt(color_k, K)
        return color_k
    if breakage in ("zero_alignment", "scaled_alignment", "mirrored_alignment"):
        M = {"zero_alignment": np.zeros((4, 4)), "scaled_alignment": np.diag([2.0, 2.0, 2.0, 1.0])}.get(
            breakage, np.diag([-1.0, 1.0, 1.0, 1.0])
        )
        meta.write_text(
            "sceneType = Bedroom\naxisAlignment = " + " ".join(f"{v:g}" for v in M.ravel()) + "\n"
        )
        return meta
    if breakage == "segs_not_object":
        segs.write_text("42")
        return segs
    if breakage == "agg_not_object":
        agg.write_text("[1, 2]")
        return agg
    if breakage == "segs_deep":
        segs.write_text(DEEP)
        return segs
    if breakage == "agg_deep":
        agg.write_text('{"segGroups": ' + DEEP + "}")
        return agg
    if breakage == "segs_float":
        edit_json(segs, lambda d: d["segIndices"].__setitem__(5, d["segIndices"][5] + 0.5))
        return segs
    if breakage == "segs_bool":
        edit_json(segs, lambda d: d["segIndices"].__setitem__(0, True))
        return segs
    if breakage == "duplicate_object_id":
        edit_json(agg, lambda d: d["segGroups"][3].__setitem__("objectId", d["segGroups"][1]["objectId"]))
        return agg
    if breakage == "float_object_id":
        edit_json(agg, lambda d: d["segGroups"][2].__setitem__("objectId", 2.7))
        return agg
    if breakage == "bool_segment":
        edit_json(agg, lambda d: d["segGroups"][0].__setitem__("segments", [True]))
        return agg
    if breakage == "numeric_label":
        edit_json(agg, lambda d: d["segGroups"][0].__setitem__("label", 5))
        return agg
    if breakage in ("no_faces", "no_vertices"):
        write_empty_mesh(folder, keep_vertices=breakage == "no_faces")
        return folder / f"{sid}_vh_clean_2.ply"
    raise AssertionError(breakage)


CASES = [
    ("nan_intrinsics", "non-finite"),
    ("zero_intrinsics", "focal lengths must be > 0"),
    ("negative_focal", "focal lengths must be > 0"),
    ("zero_alignment", "axisAlignment is not a rigid transform: rotation part is singular"),
    ("scaled_alignment", "not orthonormal"),
    ("mirrored_alignment", "mirror"),
    ("segs_not_object", "expected a JSON object at the top level, found integer"),
    ("agg_not_object", "expected a JSON object at the top level, found list"),
    ("segs_deep", "nested too deeply"),
    ("agg_deep", "nested too deeply"),
    ("segs_float", "segIndices[5] must be an integer, found number"),
    ("segs_bool", "segIndices[0] must be an integer, found boolean"),
    ("duplicate_object_id", "already given by segGroups[1]"),
    ("float_object_id", "segGroups[2].objectId must be a non-negative integer, found number 2.7"),
    ("bool_segment", "segGroups[0].segments[0] must be an integer, found boolean"),
    ("numeric_label", "segGroups[0].label must be a non-empty string"),
    ("no_faces", "empty mesh"),
    ("no_vertices", "empty mesh (0 vertices"),
]


@pytest.mark.parametrize("breakage, message", CASES)
def test_bad_file_is_one_error_naming_it(
    synth_root: Path, tmp_path: Path, breakage: str, message: str
) -> None:
    folder = copy_as(synth_root, tmp_path / "scans")
    culprit = _break(folder, breakage)
    with pytest.raises(SceneError) as info:
        Scene.load(folder)
    assert info.value.path == culprit
    assert message in str(info.value)


def test_matrix_checks_accept_what_scannet_writes() -> None:
    # ScanNet's files carry 6 decimals: a rotation rounded to them is still rigid, a 1% scale is not.
    angle = 0.3
    R = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, (-2.2, -0.9, 0.05)
    assert rigid_problem(np.round(M, 6)) is None
    scaled = M.copy()
    scaled[:3, :3] *= 1.01
    assert "orthonormal" in rigid_problem(scaled)
    assert "non-finite" in rigid_problem(np.full((4, 4), -np.inf))
    assert intrinsics_problem(np.array([[577.87, 0, 319.5], [0, 577.87, 239.5], [0, 0, 1]])) is None
    assert "form" in intrinsics_problem(np.array([[577.87, 0, 319.5], [0, 577.87, 239.5], [0, 0, 0]]))


def test_non_rigid_poses_are_dropped_with_a_reason(synth_root: Path, tmp_path: Path) -> None:
    """A bad pose drops its frame (as ScanNet's -inf poses already do); a rounded rigid pose is kept."""
    folder = copy_as(synth_root, tmp_path / "scans", images=True)
    (folder / "pose" / "4.txt").write_text("0 " * 16)  # singular
    pose = np.loadtxt(folder / "pose" / "5.txt")
    pose[:3, :3] *= 1.5  # scaled camera
    np.savetxt(folder / "pose" / "5.txt", pose)
    rounded = np.loadtxt(folder / "pose" / "6.txt")
    np.savetxt(folder / "pose" / "6.txt", rounded, fmt="%.6f")
    frames = Scene.load(folder).frames
    assert frames.skipped["4"] == "non-rigid pose" and frames.skipped["5"] == "non-rigid pose"
    kept = {f.frame_id for f in frames.frames}
    assert "6" in kept and not kept & {"4", "5"}
    assert frames.skipped_reasons() == {"non-rigid pose": 2}


def test_scenes_command_lists_every_scene_when_some_are_broken(synth_root: Path, tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    broken = {
        "scene0100_00": "segs_not_object",
        "scene0101_00": "agg_not_object",
        "scene0102_00": "agg_deep",
        "scene0103_00": "zero_alignment",
        "scene0104_00": "no_faces",
        "scene0105_00": "segs_bool",
    }
    culprits = {sid: _break(copy_as(synth_root, scans, sid), how) for sid, how in broken.items()}
    copy_as(synth_root, scans, "scene0200_00")  # healthy, listed after every broken one
    run = subprocess.run(
        [sys.executable, "-m", "core", "scenes", "--scans", str(scans), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = {d["scene_id"]: d for d in map(json.loads, run.stdout.splitlines())}
    assert sorted(lines) == sorted([*broken, "scene0200_00"])
    for sid, culprit in culprits.items():
        assert lines[sid]["error"].startswith(f"{culprit}: "), lines[sid]
    assert lines["scene0200_00"]["objects"] > 10 and "error" not in lines["scene0200_00"]
    assert f"{len(broken)} of {len(broken) + 1} scenes failed" in run.stderr


def test_scenes_command_survives_an_unexpected_reader_error(
    synth_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A reader gap (an exception that is not a SceneError) still becomes one line naming the scene."""
    import core.scene.scannet as scannet
    from core.scene.cli import run_scenes

    real = scannet.load_scene

    def flaky(root, scene_id, *args, **kwargs):
        if scene_id == SCENE:
            raise KeyError("surprise")
        return real(root, scene_id, *args, with_frames=False)

    monkeypatch.setattr(scannet, "load_scene", flaky)
    args = argparse.Namespace(scans=synth_root, frames=None, labels=None, scenes=None, json=False)
    assert run_scenes(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{SCENE}  ERROR {synth_root / 'scans' / SCENE}: unexpected KeyError: 'surprise'"
    assert out[1].startswith("scene0001_00  vertices ")


def test_annotate_records_failures_naming_the_file(synth_root: Path, tmp_path: Path) -> None:
    scans, out = tmp_path / "scans", tmp_path / "out"
    truncated = copy_as(synth_root, scans, "scene0300_00", images=True)
    for jpg in (truncated / "color").glob("*.jpg"):
        jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    culprits = {
        "scene0301_00": _break(copy_as(synth_root, scans, "scene0301_00"), "segs_bool"),
        "scene0302_00": _break(copy_as(synth_root, scans, "scene0302_00"), "agg_deep"),
        "scene0303_00": _break(copy_as(synth_root, scans, "scene0303_00"), "nan_intrinsics"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "core", "annotate", "--scans", str(scans), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 4, run.stdout + run.stderr  # exit status: the number of failed scenes
    for sid, culprit in culprits.items():
        error = json.loads((out / "failed" / f"{sid}.json").read_text())["error"]
        assert error.startswith(f"SceneError: {culprit}: "), error
    error = json.loads((out / "failed" / "scene0300_00.json").read_text())["error"]
    first_line = error.splitlines()[0]
    assert (
        first_line.startswith(f"SceneError: {truncated / 'color'}/")
        and ".jpg: cannot read color image" in first_line
    )


def test_truncated_color_frame_names_the_file(synth_root: Path, tmp_path: Path) -> None:
    from core.annotate.images import load_color

    jpg = tmp_path / "0.jpg"
    data = (synth_root / "scans" / SCENE / "color" / "0.jpg").read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneError) as info:
        load_color(jpg, (324, 242))
    assert info.value.path == jpg and "truncated" in str(info.value)
    jpg.write_bytes(b"not a jpeg at all")
    with pytest.raises(SceneError, match="cannot read color image"):
        load_color(jpg, (324, 242))


@pytest.mark.parametrize("K", [np.full((3, 3), np.nan), np.zeros((3, 3))], ids=["nan", "zero"])
def test_renderer_refuses_unusable_intrinsics(K: np.ndarray) -> None:
    """The last guard before the ray cast: no silent empty image, no NaN rays handed to open3d."""
    from core.scene.render import MeshRenderer

    mesh = Mesh(np.array([[0, 0, 2], [1, 0, 2], [0, 1, 2]], float), np.zeros((3, 3)), np.array([[0, 1, 2]]))
    renderer = MeshRenderer(mesh)
    good = np.array([[4.0, 0, 4], [0, 4.0, 3], [0, 0, 1]])
    assert renderer.render(np.eye(4), good, 8, 6).depth.max() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="non-finite|focal lengths"):
        renderer.render(np.eye(4), K, 8, 6)
