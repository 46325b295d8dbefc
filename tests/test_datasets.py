"""core.data.datasets: the scene cache (built once, reused, rebuilt when stale), referring samples from
ScanRefer / Multi3DRefer / DenseScan records, and the collate offsets, on the
session's generated scenes (copied without their frames wherever a test edits files)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.datasets import (
    RefSegDataset,
    SceneCache,
    SceneCacheConfig,
    SceneDataset,
    collate,
    load_samples,
    voxel_grid,
)
from core.data.datasets.refseg import ANSWER_MANY, ANSWER_NONE, ANSWER_ONE, RefSegSample
from core.data.densescan import DenseScanRecord, write_densescan
from core.data.errors import DataError
from core.scene.labels import LabelMap
from core.scene.scannet import load_scene

SCENES = ("scene0000_00", "scene0001_00")


def copy_geometry(synth_root: Path, dest: Path, scenes=SCENES) -> Path:
    """A dataset root with the scenes' mesh / segs / aggregation / meta (no frames), annotations, splits."""
    for scene_id in scenes:
        (dest / "scans" / scene_id).mkdir(parents=True)
        for path in (synth_root / "scans" / scene_id).iterdir():
            if path.is_file():
                shutil.copy2(path, dest / "scans" / scene_id / path.name)
    shutil.copytree(synth_root / "annotations", dest / "annotations")
    for path in synth_root.glob("*.t*"):  # split files and the label table
        shutil.copy2(path, dest / path.name)
    return dest


@pytest.fixture(scope="module")
def root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only copy shared by the tests that edit nothing."""
    return copy_geometry(synth_root, tmp_path_factory.mktemp("datasets") / "data")


@pytest.fixture(scope="module")
def cache(root: Path) -> SceneCache:
    return SceneCache(root, root.parent / "cache")


@pytest.fixture
def edit_root(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy of one scene that a test may edit."""
    return copy_geometry(synth_root, tmp_path / "data", scenes=SCENES[:1])


def split_of(root: Path, split: str) -> list[str]:
    return (root / f"scannetv2_{split}.txt").read_text().split()


# ------------------------------------------------------------------------------------------ scene cache


def test_cache_arrays_match_the_scene(root: Path, cache: SceneCache) -> None:
    cached = cache.get(SCENES[0])
    scene = load_scene(root, SCENES[0], label_map=LabelMap.from_tsv(root / "scannetv2-labels.combined.tsv"))
    np.testing.assert_array_equal(cached.xyz, scene.mesh.vertices.astype(np.float32))
    np.testing.assert_array_equal(cached.rgb, scene.mesh.colors)
    np.testing.assert_array_equal(cached.instance, scene.vertex_instance)
    np.testing.assert_array_equal(cached.semantic, scene.vertex_semantic())
    np.testing.assert_array_equal(cached.superpoint, scene.superpoints)
    assert sorted(cached.object_ids.tolist()) == sorted(i.object_id for i in scene.instances)
    annotated = cached.instance >= 0
    assert (cached.semantic[annotated] > 0).all() and (cached.semantic[~annotated] == 0).all()
    # every point lies inside its voxel's cube
    lower = (cached.voxel_coords[cached.point_to_voxel] + cached.voxel_origin) * cached.voxel_size
    assert (cached.xyz >= lower - 1e-6).all() and (cached.xyz < lower + cached.voxel_size + 1e-6).all()
    assert cached.voxel_coords.min() == 0 and len(np.unique(cached.voxel_coords, axis=0)) == cached.num_voxels


def test_voxel_grid_agrees_with_the_model_voxelizer(cache: SceneCache) -> None:
    from core.models.common.voxelize import voxelize

    cached = cache.get(SCENES[1])
    model = voxelize(torch.from_numpy(cached.xyz), torch.zeros(cached.num_points, 1), cached.voxel_size)
    np.testing.assert_array_equal(model.coords.numpy(), cached.voxel_coords)
    np.testing.assert_array_equal(model.point_to_voxel.numpy(), cached.point_to_voxel)


def test_voxel_grid_small_case() -> None:
    xyz = np.array([[0.01, 0.01, 0.01], [0.015, 0.0, 0.019], [-0.01, 0.05, 0.0], [0.03, 0.0, 0.0]])
    grid = voxel_grid(xyz, 0.02)
    # absolute indices: (0,0,0), (0,0,0), (-1,2,0), (1,0,0); origin (-1, 0, 0)
    assert grid.origin.tolist() == [-1, 0, 0]
    assert grid.coords.tolist() == [[0, 2, 0], [1, 0, 0], [2, 0, 0]]
    assert grid.point_to_voxel.tolist() == [1, 1, 0, 2]
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_grid(xyz, 0.0)


def test_cache_is_built_once_then_reused(edit_root: Path) -> None:
    cache_dir = edit_root.parent / "cache"
    first = SceneCache(edit_root, cache_dir)
    scene = first.get(SCENES[0])
    assert first.builds == 1
    path = first.path(SCENES[0])
    stamp = path.stat().st_mtime_ns
    assert first.get(SCENES[0]) is scene and first.builds == 1  # memory
    second = SceneCache(edit_root, cache_dir)  # a new process: read from disk, nothing rebuilt
    again = second.get(SCENES[0])
    assert second.builds == 0 and path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.superpoint, scene.superpoint)
    np.testing.assert_array_equal(again.voxel_coords, scene.voxel_coords)
    assert again.object_labels == scene.object_labels
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temp file left behind


def test_cache_rebuilt_for_another_voxel_size(edit_root: Path) -> None:
    cache_dir = edit_root.parent / "cache"
    fine = SceneCache(edit_root, cache_dir)
    coarse = SceneCache(edit_root, cache_dir, SceneCacheConfig(voxel_size=0.05))
    small, big = fine.get(SCENES[0]), coarse.get(SCENES[0])
    assert fine.builds == 1 and coarse.builds == 1
    assert fine.path(SCENES[0]) != coarse.path(SCENES[0]) and fine.path(SCENES[0]).is_file()
    assert big.voxel_size == 0.05 and big.num_voxels < small.num_voxels
    assert SceneCache(edit_root, cache_dir, SceneCacheConfig(voxel_size=0.05)).get(SCENES[0]).num_voxels == (
        big.num_voxels
    )


def test_cache_rebuilt_when_a_source_file_changes(edit_root: Path) -> None:
    cache = SceneCache(edit_root, edit_root.parent / "cache")
    before = cache.get(SCENES[0])
    aggregation = edit_root / "scans" / SCENES[0] / f"{SCENES[0]}.aggregation.json"
    data = json.loads(aggregation.read_text())
    data["segGroups"][0]["label"] = "renamed thing"
    aggregation.write_text(json.dumps(data))
    after = cache.get(SCENES[0])  # same object: its memory copy is stale too
    assert cache.builds == 2
    assert after.object_labels[0] == "renamed thing" != before.object_labels[0]
    reread = SceneCache(edit_root, edit_root.parent / "cache").get(SCENES[0])
    assert reread.object_labels[0] == "renamed thing"


def test_touching_a_source_file_rebuilds(edit_root: Path) -> None:
    cache = SceneCache(edit_root, edit_root.parent / "cache")
    cache.get(SCENES[0])
    mesh = edit_root / "scans" / SCENES[0] / f"{SCENES[0]}_vh_clean_2.ply"
    stat = mesh.stat()
    os.utime(mesh, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    fresh = SceneCache(edit_root, edit_root.parent / "cache")
    fresh.get(SCENES[0])
    assert fresh.builds == 1


def test_a_truncated_cache_file_is_rebuilt(edit_root: Path) -> None:
    cache = SceneCache(edit_root, edit_root.parent / "cache")
    cache.get(SCENES[0])
    path = cache.path(SCENES[0])
    path.write_bytes(path.read_bytes()[:1000])
    fresh = SceneCache(edit_root, edit_root.parent / "cache")
    assert fresh.get(SCENES[0]).num_points > 0 and fresh.builds == 1


def test_missing_superpoints_is_an_error_naming_the_scene(edit_root: Path) -> None:
    for segs in (edit_root / "scans" / SCENES[0]).glob("*.segs.json"):
        segs.unlink()
    cache = SceneCache(edit_root, edit_root.parent / "cache")
    with pytest.raises(DataError, match=rf"scene {SCENES[0]}: no superpoints .*segs\.json missing"):
        cache.get(SCENES[0])
    assert cache.builds == 0 and not cache.path(SCENES[0]).exists()
    # computing them is allowed on request (instances cannot be mapped without segs.json: not required here)
    config = SceneCacheConfig(compute_superpoints=True, require_instances=False)
    computed = SceneCache(edit_root, edit_root.parent / "cache", config).get(SCENES[0])
    assert computed.num_superpoints > 10 and (computed.instance == -1).all()


def test_missing_instances_is_an_error_naming_the_scene(edit_root: Path) -> None:
    (edit_root / "scans" / SCENES[0] / f"{SCENES[0]}.aggregation.json").unlink()
    with pytest.raises(DataError, match=rf"scene {SCENES[0]}: no instance labels \(no aggregation.json\)"):
        SceneCache(edit_root, edit_root.parent / "cache").get(SCENES[0])


def test_a_broken_scene_file_is_a_data_error_naming_the_scene(edit_root: Path) -> None:
    segs = next((edit_root / "scans" / SCENES[0]).glob("*.segs.json"))
    data = json.loads(segs.read_text())
    data["segIndices"] = data["segIndices"][:-5]
    segs.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"segs.json: scene {SCENES[0]}: segIndices has"):
        SceneCache(edit_root, edit_root.parent / "cache").get(SCENES[0])


# ---------------------------------------------------------------------------------------------- samples


def test_scanrefer_and_multi3drefer_samples(root: Path, cache: SceneCache) -> None:
    for split in ("train", "val"):
        samples = load_samples(root, split)
        scenes = set(split_of(root, split))
        refer = json.loads((root / "annotations" / f"ScanRefer_filtered_{split}.json").read_text())
        multi = json.loads((root / "annotations" / f"multi3drefer_{split}.json").read_text())
        assert {s.scene_id for s in samples} <= scenes
        by_key = {(s.kind, s.key): s for s in samples}
        assert len(by_key) == len(samples) == len(refer) + len(multi)
        for r in refer:
            s = by_key[("scanrefer", f"{r['scene_id']}|{r['object_id']}|{r['ann_id']}")]
            assert s.target_ids == (int(r["object_id"]),) and s.answer == ANSWER_ONE
            assert s.question == r["description"] and s.subset in ("unique", "multiple")
        for r in multi:
            s = by_key[("multi3drefer", f"{r['scene_id']}|{r['ann_id']}")]
            assert s.target_ids == tuple(sorted(r["object_ids"]))
            assert s.answer == {0: ANSWER_NONE, 1: ANSWER_ONE}.get(len(r["object_ids"]), ANSWER_MANY)
            assert s.subset == ("unique" if r["eval_type"].endswith("wo_d") else "multiple")
    assert load_samples(root, "train") == load_samples(root, "train")  # a fixed order


def test_multi_target_mask_is_the_union_and_zero_target_is_empty(root: Path, cache: SceneCache) -> None:
    samples = load_samples(root, "train") + load_samples(root, "val")
    many = next(s for s in samples if s.kind == "multi3drefer" and len(s.target_ids) > 1)
    zero = next(s for s in samples if s.kind == "multi3drefer" and not s.target_ids)
    batch = collate([RefSegDataset([many, zero], cache)[i] for i in range(2)])
    first = batch.point_mask[batch.point_batch == 0].numpy()
    instance = cache.get(many.scene_id).instance
    union = np.zeros(len(instance), dtype=bool)
    for object_id in many.target_ids:
        assert (instance == object_id).any()
        union |= instance == object_id
    np.testing.assert_array_equal(first, union)
    assert first.sum() > max((instance == i).sum() for i in many.target_ids)
    assert not batch.point_mask[batch.point_batch == 1].any()
    assert not batch.superpoint_mask[batch.superpoint_batch == 1].any()
    assert zero.answer == ANSWER_NONE and "[SEG]" not in zero.answer


def _densescan_records(root: Path) -> tuple[list[DenseScanRecord], dict[str, int]]:
    """Records of a train scene covering every exclusion rule; returns them and named object ids."""
    scene_id = split_of(root, "train")[0]
    refer = [r for r in json.loads((root / "annotations" / "ScanRefer_filtered_train.json").read_text())]
    objects = {}
    for r in refer:
        if r["scene_id"] == scene_id:
            objects.setdefault(r["object_name"], int(r["object_id"]))
    names = sorted(objects)[:4]
    ids = {n: objects[n] for n in names}

    def record(name: str, ann: str, **fields) -> DenseScanRecord:
        text = fields.pop("description", f"the {name} in the room.")
        return DenseScanRecord(scene_id, str(ids[name]), name, ann, text, text.split(), **fields)

    a, b, c, d = names
    records = [
        record(a, "0", level="object", status="accepted"),
        record(b, "0", level="object", status="rejected"),  # the pipeline rejected it: out
        record(c, "0", level="object", status="flagged"),  # flagged is kept by default
        record(d, "0", level="object", status="rejected", review_status="approved", reviewer="ann"),
        record(a, "1", level="object", status="accepted", review_status="rejected", reviewer="bob"),
        record(
            b, "1", level="object", status="accepted", review_status="approved", revision=3, reviewer="cy",
            edited=True, description="the corrected description.", pipeline_description="a wrong one.",
        ),  # fmt: skip
        record(
            a, "2", level="scenario", status="accepted", question="where can I sit?", answer="here",
            answer_object_ids=[ids[c], ids[a]],
        ),  # fmt: skip
        DenseScanRecord(scene_id, "-1", "scene", "0", "a bedroom.", ["a", "bedroom", "."], level="scene"),
        record(c, "0", level="frame", status="accepted", description="this view shows a thing."),
    ]
    return records, ids


def test_densescan_samples_exclude_rejected_and_use_corrected_text(root: Path, cache: SceneCache) -> None:
    records, ids = _densescan_records(root)
    path = write_densescan(root.parent / "reviewed.json", records)
    samples = load_samples(root, "train", sources=(), densescan=[path])
    by_key = {s.key: s for s in samples}
    a, b, c, d = sorted(ids)
    scene_id = records[0].scene_id
    assert sorted(by_key) == sorted(
        [
            f"{scene_id}|{ids[a]}|0",
            f"{scene_id}|{ids[c]}|0",
            f"{scene_id}|{ids[d]}|0",  # approved by a person over the pipeline's rejection
            f"{scene_id}|{ids[b]}|1",
            f"scenario|{scene_id}|{ids[a]}|2",
        ]
    )
    corrected = by_key[f"{scene_id}|{ids[b]}|1"]
    assert corrected.question == "the corrected description." and corrected.target_ids == (ids[b],)
    assert corrected.provenance == {
        "file": str(path), "record": 5, "ann_id": "1", "level": "object", "status": "accepted",
        "source": None, "review_status": "approved", "revision": 3, "reviewer": "cy", "edited": True,
    }  # fmt: skip
    scenario = by_key[f"scenario|{scene_id}|{ids[a]}|2"]
    assert scenario.question == "where can I sit?" and scenario.target_ids == tuple(sorted((ids[a], ids[c])))
    assert scenario.answer == ANSWER_MANY and scenario.subset == "multiple"
    assert all(s.kind == "densescan" for s in samples)
    assert all("wrong" not in s.question for s in samples)
    # stricter pipeline filter: flagged records out as well; frames on request
    strict = load_samples(root, "train", sources=(), densescan=[path], skip_statuses=("rejected", "flagged"))
    assert f"{scene_id}|{ids[c]}|0" not in {s.key for s in strict}
    frames = load_samples(root, "train", sources=(), densescan=[path], levels=("frame",))
    assert [s.key for s in frames] == [f"frame|{scene_id}|{ids[c]}|0"]
    # the val split holds none of them
    assert load_samples(root, "val", sources=(), densescan=[path]) == []
    # and every target is a real object of the scene: the dataset joins without error
    batch = collate([RefSegDataset(samples, cache)[i] for i in range(len(samples))])
    assert all(batch.point_mask[batch.point_batch == i].any() for i in range(len(samples)))


def test_target_missing_from_the_scene_is_an_error(root: Path, cache: SceneCache) -> None:
    bad = RefSegSample("x|999|0", "scanrefer", SCENES[0], "a ghost.", ANSWER_ONE, (999,), "ghost", "unique",
                       {"file": "ScanRefer_filtered_train.json", "record": 4})  # fmt: skip
    match = rf"record 4: .*object\(s\) \[999\] that scene {SCENES[0]} does not have"
    with pytest.raises(DataError, match=match):
        RefSegDataset([bad], cache)[0]


def test_missing_split_file_is_an_error(root: Path) -> None:
    with pytest.raises(DataError, match=r"scannetv2_test.txt: split file not found"):
        load_samples(root, "test")


# ---------------------------------------------------------------------------------------------- collate


def test_collate_offsets_superpoints_voxels_and_points(cache: SceneCache) -> None:
    first, second = cache.get(SCENES[0]), cache.get(SCENES[1])
    dataset = SceneDataset(SCENES, cache)
    batch = collate([dataset[0], dataset[1]])
    n1, s1, v1 = first.num_points, first.num_superpoints, first.num_voxels
    assert batch.batch_size == 2 and batch.point_mask is None and batch.samples is None
    assert batch.point_offsets.tolist() == [0, n1, n1 + second.num_points]
    assert batch.superpoint_offsets.tolist() == [0, s1, s1 + second.num_superpoints]
    # item 2's superpoint ids start right after item 1's
    assert int(batch.superpoint_ids[:n1].max()) == s1 - 1 and int(batch.superpoint_ids[n1:].min()) == s1
    np.testing.assert_array_equal(batch.superpoint_ids[n1:].numpy() - s1, second.superpoint)
    assert batch.superpoint_batch.tolist() == [0] * s1 + [1] * second.num_superpoints
    # voxels: batch column, per-item coords, point -> voxel into the stacked voxels of the same item
    assert batch.voxel_coords.dtype == torch.int32 and batch.voxel_coords.shape == (v1 + second.num_voxels, 4)
    np.testing.assert_array_equal(batch.voxel_coords[v1:, 1:].numpy(), second.voxel_coords)
    assert (batch.voxel_coords[batch.point_to_voxel, 0] == batch.point_batch.int()).all()
    np.testing.assert_array_equal(batch.point_to_voxel[n1:].numpy() - v1, second.point_to_voxel)
    # voxel features: mean of (rgb / 127.5 - 1, xyz - item centre) over the voxel's points
    voxel = int(batch.point_to_voxel[n1 + 10])
    members = np.flatnonzero(second.point_to_voxel == voxel - v1)
    expected = np.concatenate(
        [second.rgb[members] / 127.5 - 1, second.xyz[members] - second.xyz.mean(0, dtype=np.float64)], 1
    ).mean(0)
    np.testing.assert_allclose(batch.voxel_feats[voxel].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(batch.instance[n1:].numpy(), second.instance)


def test_collate_target_masks_per_item(root: Path, cache: SceneCache) -> None:
    samples = [s for s in load_samples(root, "train") if s.kind == "scanrefer"][:3]
    batch = collate([RefSegDataset(samples, cache)[i] for i in range(3)])
    assert batch.questions == [s.question for s in samples] and batch.answers == [ANSWER_ONE] * 3
    for i, sample in enumerate(samples):
        scene = cache.get(sample.scene_id)
        points = batch.point_mask[batch.point_batch == i].numpy()
        np.testing.assert_array_equal(points, scene.instance == sample.target_ids[0])
        superpoints = batch.superpoint_mask[batch.superpoint_batch == i].numpy()
        ratio = np.bincount(scene.superpoint, weights=points, minlength=scene.num_superpoints) / np.bincount(
            scene.superpoint, minlength=scene.num_superpoints
        )
        np.testing.assert_array_equal(superpoints, ratio > 0.5)
        assert superpoints.any()
