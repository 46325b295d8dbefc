"""The ScanNet reader on generated scans: round trip, alignment, both frame layouts, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.scene.errors import SceneError
from core.scene.frames import POSED_IMAGES, SENSREADER
from core.scene.geometry import transform_points, visible_points
from core.scene.labels import LabelMap
from core.scene.plyio import read_ply_mesh
from core.scene.render import MeshRenderer
from core.scene.scannet import Scene, list_scenes, load_scene, scene_folder

SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def scene(synth_root: Path) -> Scene:
    return load_scene(synth_root, SCENE)


def copy_scene(synth_root: Path, dest: Path, frames: bool = False) -> Path:
    """A private copy of the first scene (optionally without its frames) to break on purpose."""
    ignore = None if frames else shutil.ignore_patterns("color", "depth", "pose", "intrinsic")
    target = dest / "scans" / SCENE
    shutil.copytree(synth_root / "scans" / SCENE, target, ignore=ignore)
    return target


def test_lists_scenes_and_validates_ids(synth_root: Path) -> None:
    assert list_scenes(synth_root) == ["scene0000_00", "scene0001_00"]
    assert list_scenes(synth_root / "scans", ["scene0001_00"]) == ["scene0001_00"]
    for bad in ["../scans", "..", "scene0000_00/../scene0001_00", "/etc", "nope_00"]:
        with pytest.raises(SceneError):
            scene_folder(synth_root, bad)


def test_round_trip_matches_what_synth_wrote(scene: Scene, synth_root: Path) -> None:
    facts = json.loads((synth_root / "synth" / f"{SCENE}.json").read_text())
    assert not np.allclose(scene.axis_alignment, np.eye(4)), "synth must write an unaligned mesh"
    assert scene.mesh.num_vertices >= 100_000
    by_id = {o.object_id: o for o in scene.objects()}
    assert sorted(by_id) == [o["object_id"] for o in facts["objects"]]
    for obj in facts["objects"]:
        got = by_id[obj["object_id"]]
        assert got.label == obj["label"]
        # Boxes measured on the aligned mesh read back equal those the generator measured (float32 I/O).
        np.testing.assert_allclose(got.box, obj["box"], atol=2e-4)
    # The aligned room sits at the origin: floor at z = 0 and walls inside the extent.
    lo, hi = scene.mesh.vertices.min(0), scene.mesh.vertices.max(0)
    assert (
        abs(lo[2]) < 0.05 and (lo[:2] > -0.3).all() and (hi[:2] < np.array(facts["extent"][:2]) + 0.3).all()
    )


def test_labels_mesh_agrees_with_aggregation(scene: Scene, synth_root: Path) -> None:
    label_map = LabelMap.from_tsv(synth_root / "scannetv2-labels.combined.tsv")
    _, labels = read_ply_mesh(scene.folder / f"{SCENE}_vh_clean_2.labels.ply", with_labels=True)
    scene.label_map = label_map
    np.testing.assert_array_equal(scene.vertex_semantic("nyu40"), labels)
    assert "chair" in scene.categories or "bed" in scene.categories


def test_superpoints_stay_inside_one_instance(scene: Scene) -> None:
    inst = scene.vertex_instance
    sp = scene.superpoints
    # Majority instance of each superpoint; count vertices that disagree with it.
    pairs = sp.astype(np.int64) * (inst.max() + 2) + (inst + 1)
    uniq, counts = np.unique(pairs, return_counts=True)
    sp_of, majority = uniq // (inst.max() + 2), np.zeros(sp.max() + 1, dtype=np.int64)
    np.maximum.at(majority, sp_of, counts)
    assert majority.sum() / len(sp) >= 0.99
    assert sp.max() + 1 == len(np.unique(scene.segments))


def test_frame_poses_project_aligned_vertices_onto_their_pixels(scene: Scene) -> None:
    frames = scene.frames
    assert frames.layout == SENSREADER
    assert frames.color_size == (1296, 968) and frames.depth_size == (640, 480)
    renderer = MeshRenderer(scene.mesh, scene.vertex_instance)
    inst = scene.vertex_instance
    checked = 0
    for frame in frames.frames[::8]:
        depth = frame.depth()
        vis = visible_points(scene.mesh.vertices, frame.pose, frames.depth_intrinsics, depth, tolerance=0.01)
        assert vis.visible.sum() > 1000, (  # a close-up of a wall shows ~1,600; wrong poses ~0
            f"frame {frame.frame_id} sees almost nothing: poses wrongly composed?"
        )
        # The stored depth at a visible vertex's pixel is its camera depth within 1 cm (mm PNG).
        uv = np.floor(vis.pixels[vis.visible] + 0.5).astype(int)
        assert np.abs(depth[uv[:, 1], uv[:, 0]] - vis.depth[vis.visible]).max() <= 0.01
        # The instance image rendered from the aggregation agrees with the vertices seen there.
        view = renderer.render(frame.pose, frames.depth_intrinsics, 640, 480, color=False)
        agree = view.instance[uv[:, 1], uv[:, 0]] == inst[vis.visible]
        assert agree.mean() > 0.97
        checked += 1
    assert checked >= 4


def test_color_frame_shows_the_mesh_colors(scene: Scene) -> None:
    frame = scene.frames.frames[3]
    color = frame.color()
    assert color.shape == (968, 1296, 3)
    view = MeshRenderer(scene.mesh).render(
        frame.pose, scene.frames.color_intrinsics, 1296, 968, instance=False
    )
    hit = view.depth > 0
    assert np.abs(color[hit].astype(int) - view.color[hit].astype(int)).mean() < 12  # JPEG noise only


def test_posed_images_layout_and_frames_option(scene: Scene, synth_root: Path, tmp_path: Path) -> None:
    """Export every 10th frame in the EmbodiedScan layout; both discovery routes find it."""
    dataset = tmp_path / "dataset"
    copy_scene(synth_root, dataset)
    out = dataset / "posed_images" / SCENE
    out.mkdir(parents=True)
    src = scene.frames
    for frame in src.frames[::10]:
        name = f"{int(frame.frame_id):05d}"
        shutil.copy(frame.color_path, out / f"{name}.jpg")
        shutil.copy(frame.depth_path, out / f"{name}.png")
        np.savetxt(out / f"{name}.txt", frame.pose_raw)
    np.savetxt(out / "intrinsic.txt", np.pad(src.color_intrinsics, (0, 1)))
    np.savetxt(out / "depth_intrinsic.txt", np.pad(src.depth_intrinsics, (0, 1)))

    beside = load_scene(dataset, SCENE)
    assert beside.frames.layout == POSED_IMAGES
    assert [f.frame_id for f in beside.frames.frames] == [f"{int(f.frame_id):05d}" for f in src.frames[::10]]
    np.testing.assert_allclose(beside.frames.frames[1].pose, src.frames[10].pose, atol=1e-9)
    np.testing.assert_allclose(beside.frames.depth_intrinsics, src.depth_intrinsics)

    elsewhere = tmp_path / "frames_elsewhere"
    shutil.move(dataset / "posed_images", elsewhere)
    assert load_scene(dataset, SCENE).frames is None
    given = load_scene(dataset, SCENE, frames_dir=elsewhere)
    assert given.frames.layout == POSED_IMAGES and len(given.frames) == len(beside.frames)


def test_non_finite_poses_are_skipped_and_counted(synth_root: Path, tmp_path: Path) -> None:
    folder = copy_scene(synth_root, tmp_path, frames=True)
    (folder / "pose" / "5.txt").write_text("nan " * 16)
    (folder / "pose" / "6.txt").write_text("-inf " * 16)
    (folder / "color" / "7.jpg").unlink()
    frames = Scene.load(folder).frames
    assert frames.skipped["5"] == "non-finite pose" and frames.skipped["6"] == "non-finite pose"
    assert frames.skipped["7"] == "color image missing"
    assert all(f.frame_id not in {"5", "6", "7"} for f in frames.frames)
    assert frames.skipped_reasons()["non-finite pose"] >= 2


def test_missing_optional_parts_are_reported_not_fatal(synth_root: Path, tmp_path: Path) -> None:
    folder = copy_scene(synth_root, tmp_path)
    (folder / f"{SCENE}.aggregation.json").unlink()
    (folder / f"{SCENE}.txt").write_text("sceneType = Office\n")
    scene = Scene.load(folder)
    assert scene.instances == [] and scene.frames is None
    assert np.allclose(scene.axis_alignment, np.eye(4))
    assert any("aggregation" in n for n in scene.notes) and any("frames" in n for n in scene.notes)
    # Superpoints are computed from the mesh when segs.json is absent too.
    next(folder.glob("*.segs.json")).unlink()
    scene = Scene.load(folder)
    assert scene.segments is None and scene.superpoints.max() > 50


def test_old_aggregation_file_name_is_read(synth_root: Path, tmp_path: Path) -> None:
    folder = copy_scene(synth_root, tmp_path)
    (folder / f"{SCENE}.aggregation.json").rename(folder / f"{SCENE}_vh_clean.aggregation.json")
    assert len(Scene.load(folder).instances) > 10


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("truncate_ply", "cannot read PLY"),
        ("missing_ply", "mesh file not found"),
        ("bad_json", "malformed JSON"),
        ("segs_count", "the mesh has"),
        ("bad_group", "segGroups[0]"),
        ("bad_alignment", "axisAlignment"),
    ],
)
def test_corrupted_files_give_one_clear_error(
    synth_root: Path, tmp_path: Path, breakage: str, message: str
) -> None:
    folder = copy_scene(synth_root, tmp_path)
    mesh = folder / f"{SCENE}_vh_clean_2.ply"
    segs = next(folder.glob("*.segs.json"))
    agg = folder / f"{SCENE}.aggregation.json"
    culprit = {"truncate_ply": mesh, "missing_ply": mesh, "bad_json": agg, "segs_count": segs}.get(breakage)
    if breakage == "truncate_ply":
        mesh.write_bytes(mesh.read_bytes()[: mesh.stat().st_size // 2])
    elif breakage == "missing_ply":
        mesh.unlink()
    elif breakage == "bad_json":
        agg.write_text(agg.read_text()[:-40])
    elif breakage == "segs_count":
        data = json.loads(segs.read_text())
        data["segIndices"] = data["segIndices"][:-3]
        segs.write_text(json.dumps(data))
    elif breakage == "bad_group":
        data = json.loads(agg.read_text())
        del data["segGroups"][0]["segments"]
        agg.write_text(json.dumps(data))
        culprit = agg
    elif breakage == "bad_alignment":
        (folder / f"{SCENE}.txt").write_text("axisAlignment = 1 0 0\n")
        culprit = folder / f"{SCENE}.txt"
    with pytest.raises(SceneError) as info:
        Scene.load(folder)
    assert info.value.path == culprit
    assert message in str(info.value)


def test_scenes_command_reports_each_scene(synth_root: Path, tmp_path: Path) -> None:
    # One healthy scene, one with a broken mesh: the command reports both and exits non-zero.
    root = tmp_path / "scans"
    shutil.copytree(synth_root / "scans", root, ignore=shutil.ignore_patterns("color", "depth"))
    (root / "scene0001_00" / "scene0001_00_vh_clean_2.ply").write_bytes(b"ply\nformat ascii 1.0\n")
    run = subprocess.run(
        [sys.executable, "-m", "core", "scenes", "--scans", str(root), "--json"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 1
    lines = [json.loads(x) for x in run.stdout.splitlines()]
    good, bad = lines
    assert good["scene_id"] == SCENE and good["objects"] > 10 and good["superpoints"] > 50
    assert good["frames"] == 0 and good["frames_skipped"] > 0  # images removed: every frame is skipped
    assert good["skip_reasons"]["color image missing"] >= good["frames_skipped"] - 2
    assert set(good["skip_reasons"]) <= {"color image missing", "non-finite pose"}
    assert bad["scene_id"] == "scene0001_00" and "cannot read PLY" in bad["error"]


def test_depth_images_are_uint16_millimetres(scene: Scene) -> None:
    frame = scene.frames.frames[0]
    with Image.open(frame.depth_path) as im:
        raw = np.asarray(im)
    assert raw.dtype == np.uint16 and raw.shape == (480, 640)
    np.testing.assert_allclose(frame.depth(), raw / 1000.0, atol=1e-6)


def test_raw_poses_are_in_the_unaligned_frame(scene: Scene) -> None:
    frame = scene.frames.frames[0]
    raw_vertices, _ = read_ply_mesh(scene.folder / f"{SCENE}_vh_clean_2.ply")
    # The same vertex, seen by the raw pose in the raw mesh and by the aligned pose in the aligned mesh.
    a = transform_points(np.linalg.inv(frame.pose_raw), raw_vertices.vertices[:100].astype(np.float64))
    b = transform_points(np.linalg.inv(frame.pose), scene.mesh.vertices[:100].astype(np.float64))
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_visibility_table_matches_the_per_frame_depth_test(scene: Scene) -> None:
    from core.scene.visibility import instance_visibility

    table = instance_visibility(scene, tolerance=0.05)
    assert table.counts.shape == (len(scene.frames), len(scene.instances))
    inst = scene.vertex_instance
    for f in (0, len(scene.frames) // 2, len(scene.frames) - 1):
        frame = scene.frames.frames[f]
        vis = visible_points(
            scene.mesh.vertices, frame.pose, scene.frames.depth_intrinsics, frame.depth(), 0.05
        )
        expected = [int((vis.visible & (inst == oid)).sum()) for oid in table.object_ids]
        # float32 vs float64 projection may move a vertex across a pixel border: allow a handful.
        np.testing.assert_allclose(table.counts[f], expected, atol=5)
    assert (table.counts.sum(0) > 0).sum() >= len(scene.instances) * 0.7  # most objects get seen
    assert (table.fraction() <= 1).all()
