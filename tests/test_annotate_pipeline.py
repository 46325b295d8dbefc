"""The DenseScan pipeline on a synthetic scene with the offline `grounded` captioner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.config import AnnotateConfig
from core.annotate.scene_runner import annotate_scene
from core.scene.geometry import scale_intrinsics
from core.scene.render import MeshRenderer
from core.scene.scannet import load_scene

SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def annotated(synth_root: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("annotate") / SCENE
    result = annotate_scene(synth_root, SCENE, out, GroundedCaptioner(seed=3), AnnotateConfig(seed=3))
    return result, out


def _truth(synth_root: Path) -> dict[int, dict]:
    data = json.loads((synth_root / "synth" / f"{SCENE}.json").read_text())
    return {o["object_id"]: o for o in data["objects"]}


def test_every_visible_object_gets_a_caption(annotated):
    result, _ = annotated
    objects = result.doc["objects"]
    assert objects, "the scene has objects to caption"
    for obj in objects:
        if obj["views"]:
            assert obj["caption"] and obj["label"].split()[-1] in obj["caption"].lower()
            assert obj["verification"]["status"] in ("accepted", "flagged", "rejected")
            assert 0.0 <= obj["verification"]["confidence"] <= 1.0
        else:
            assert obj["reason"], "an object without views says why"
    assert sum(bool(o["views"]) for o in objects) >= 0.8 * len(objects)


def test_captions_name_the_true_color_mostly(annotated, synth_root):
    result, _ = annotated
    truth = _truth(synth_root)
    captioned = [o for o in result.doc["objects"] if o.get("caption")]
    right = [o for o in captioned if truth[o["object_id"]]["color_name"] in o["caption"].lower()]
    assert len(right) >= 0.7 * len(captioned), [(o["label"], o["caption"]) for o in captioned]
    # grounded captions state what the scene supports: nothing they say is contradicted by the fact check
    contradicted = [
        c for o in captioned for c in o["verification"]["claims"] if c["verdict"] == "contradicted"
    ]
    assert len(contradicted) <= 0.1 * len(captioned)


def test_chosen_views_show_the_object(annotated, synth_root):
    result, out = annotated
    scene = load_scene(synth_root, SCENE)
    config = AnnotateConfig()
    width, height = scene.frames.color_size
    size = (round(width * config.work_scale), round(height * config.work_scale))
    K = scale_intrinsics(scene.frames.color_intrinsics, size[0] / width, size[1] / height)
    renderer = MeshRenderer(scene.mesh, scene.vertex_instance)
    frames = {f.frame_id: f for f in scene.frames.frames}
    checked = 0
    for obj in result.doc["objects"][::3]:
        for view in obj["views"][:2]:
            instance = renderer.render(frames[view["frame_id"]].pose, K, *size, color=False).instance
            x0, y0, x1, y1 = view["bbox"]
            inside = instance[y0:y1, x0:x1] == obj["object_id"]
            assert inside.sum() >= config.min_pixels and inside.sum() == view["pixels"]
            assert (out / view["highlight"]).is_file() and all((out / c).is_file() for c in view["crops"])
            checked += 1
    assert checked >= 5


def test_views_differ_and_stay_within_top_k(annotated):
    result, _ = annotated
    for obj in result.doc["objects"]:
        ids = [v["frame_id"] for v in obj["views"]]
        assert len(ids) == len(set(ids)) and len(ids) <= 8
        scores = [v["score"] for v in obj["views"]]
        assert scores == sorted(scores, reverse=True)


def test_isolated_crop_suppresses_background(annotated):
    result, out = annotated
    view = next(o for o in result.doc["objects"] if o["views"])["views"][0]
    crop = np.asarray(Image.open(out / view["crops"][-1]))
    gray = np.all(np.abs(crop.astype(int) - 128) <= 6, axis=-1)
    assert 0.05 < gray.mean() < 0.95  # background masked, object kept


def test_scene_level_outputs(annotated):
    result, _ = annotated
    doc = result.doc
    assert doc["narrative"]["room_type_guess"] == "bedroom"
    assert doc["narrative"]["text"].lower().startswith(("this is", "the scan", "the room"))
    assert 1 <= len(doc["frames"]) <= 6
    assert len({f["object_id"] for f in doc["frames"]}) == len(doc["frames"])
    by_id = {o["object_id"]: o for o in doc["objects"]}
    assert doc["scenarios"]
    for item in doc["scenarios"]:
        assert item["question"].endswith("?") and item["answer_object_ids"]
        assert all(by_id[i]["views"] for i in item["answer_object_ids"])
    sleep = next(s for s in doc["scenarios"] if s["need"] == "sleep")
    assert [by_id[i]["label"] for i in sleep["answer_object_ids"]] == ["bed"]


def test_deterministic_for_a_seed(annotated, synth_root, tmp_path):
    result, _ = annotated
    again = annotate_scene(synth_root, SCENE, tmp_path, GroundedCaptioner(seed=3), AnnotateConfig(seed=3))
    assert again.doc == result.doc
    assert again.records == result.records
