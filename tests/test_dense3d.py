"""Dense3D end to end on generated scenes, with a tiny config: losses, prediction, overfitting one query,
save / load, exact resume through `python -m core train`, and the errors a user meets first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dense3d_tiny import TINY
from safetensors.torch import load_file

from core.data.datasets import RefSegDataset, SceneCache, SceneCacheConfig, load_samples
from core.data.errors import DataError
from core.models.common.pretrained import config_from_dict
from core.models.dense3d.configuration_dense3d import Dense3DConfig
from core.models.dense3d.modeling_dense3d import Dense3DInputs, Dense3DModel
from core.models.errors import ModelError
from core.train import dense3d as task

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**changes) -> Dense3DModel:
    torch.manual_seed(0)
    return Dense3DModel(config_from_dict(Dense3DConfig, {**TINY, **changes}))


def _inputs(root: Path, model: Dense3DModel, tmp: Path, count: int = 2) -> Dense3DInputs:
    samples = [s for s in load_samples(root, "train") if s.target_ids][:count]
    items = task.FramesDataset(
        RefSegDataset(samples, SceneCache(root, tmp / "cache", SceneCacheConfig(voxel_size=0.1))), model, root
    )
    return task.collate_with_frames([items[i] for i in range(len(samples))])


def test_losses_gradients_and_prediction_shapes(synth_root, tmp_path):
    model = _model()
    inputs = _inputs(synth_root, model, tmp_path)
    out = model(inputs)
    assert {"loss", "loss_lm", "loss_bce", "loss_dice", "loss_score", "iou"} <= set(out)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    for part in (model.backbone, model.llm, model.image, model.seg_head, model.decoder, model.scene_proj):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    model.eval()
    predictions = model.predict(inputs)
    points = inputs.scene.point_offsets.diff().tolist()
    assert [p.point_mask.shape for p in predictions] == [(n,) for n in points]
    assert all(p.point_mask.dtype == np.bool_ for p in predictions)
    assert all(p.point_mask.sum() == 0 for p in predictions if not p.has_seg)  # no [SEG] -> empty mask


def test_overfits_one_query_and_reloads_identically(synth_root, tmp_path):
    model = _model()
    inputs = _inputs(synth_root, model, tmp_path, count=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(120):
        loss = model(inputs)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    prediction = model.predict(inputs)[0]
    truth = inputs.scene.point_mask.numpy()
    iou = (prediction.point_mask & truth).sum() / max((prediction.point_mask | truth).sum(), 1)
    assert prediction.has_seg and "[SEG]" in prediction.answer
    assert iou > 0.9, (iou, prediction.answer)

    folder = model.save_pretrained(tmp_path / "ckpt")
    again = Dense3DModel.from_pretrained(folder).predict(inputs)[0]
    assert again.answer == prediction.answer
    np.testing.assert_array_equal(again.point_mask, prediction.point_mask)
    np.testing.assert_allclose(again.superpoint_probs, prediction.superpoint_probs, atol=1e-6)


def test_bad_checkpoints_and_scenes_give_one_clear_error(synth_root, tmp_path):
    folder = _model().save_pretrained(tmp_path / "ckpt")
    broken = Path(shutil.copytree(folder, tmp_path / "no_weights"))
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors"):
        Dense3DModel.from_pretrained(broken)
    mismatched = Path(shutil.copytree(folder, tmp_path / "mismatch"))
    config = json.loads((mismatched / "config.json").read_text())
    config["unet"]["channels"] = [8, 24]
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="model.safetensors"):
        Dense3DModel.from_pretrained(mismatched)
    with pytest.raises(ModelError, match="no such checkpoint folder"):
        Dense3DModel.from_pretrained(tmp_path / "nowhere")

    scans = tmp_path / "root"
    shutil.copytree(synth_root, scans, ignore=shutil.ignore_patterns("*.jpg", "*.png", "color", "depth"))
    scene = sorted((scans / "scans").iterdir())[0]
    for segs in scene.glob("*segs.json"):
        segs.unlink()
    cache = SceneCache(scans, tmp_path / "cache2", SceneCacheConfig(voxel_size=0.1))
    with pytest.raises(DataError, match=scene.name):
        cache.get(scene.name)


def _preset(steps: int) -> dict:
    return {
        "model": TINY,
        "data": {"split": "train", "max_samples": 6},
        "pretrain": {"steps": 2, "batch_size": 1, "lr": 0.01, "warmup_steps": 0, "log_every": 1},
        "train": {
            "steps": steps,
            "batch_size": 2,
            "lr": 0.003,
            "warmup_steps": 1,
            "checkpoint_every": 2,
            "log_every": 1,
            "keep_checkpoints": 4,
        },
        "source": "test preset",
    }


def test_train_command_resumes_exactly(synth_root, tmp_path):
    whole = task.run(_preset(5), synth_root, tmp_path / "whole", None, False, None)
    assert task.run(_preset(5), synth_root, tmp_path / "split", None, False, 3) is None
    resumed = task.run(_preset(5), synth_root, tmp_path / "split", None, True, None)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    recipe = json.loads((resumed / "training.json").read_text())
    assert recipe["backbone"].endswith("backbone/model") and recipe["steps_done"] == 5
    trained_on = [json.loads(line) for line in (resumed / "training_set.jsonl").read_text().splitlines()]
    assert len(trained_on) == 6 and all(r["question"] for r in trained_on)
    assert Dense3DModel.load_config(resumed).recipe["stage"] == "dense3d"


def test_queries_about_one_scene_share_its_encoding(synth_root, tmp_path):
    model = _model().eval()
    samples = [s for s in load_samples(synth_root, "train") if s.target_ids]
    scene_id = samples[0].scene_id
    same = [s for s in samples if s.scene_id == scene_id][:2]
    cache = SceneCache(synth_root, tmp_path / "cache", SceneCacheConfig(voxel_size=0.1))
    items = RefSegDataset(same, cache)
    with torch.no_grad():
        together = model.encode_scene(task.collate_inputs([items[0], items[1]]).scene)
        alone = model.encode_scene(task.collate_inputs([items[0]]).scene)
    assert together.feats[0] is together.feats[1]  # one U-Net pass for both queries
    torch.testing.assert_close(together.feats[0], alone.feats[0])


def test_frozen_backbone_is_computed_once_per_scene_and_never_trained(synth_root, tmp_path):
    # descriptors on: the decoder then reads U-Net output + 9 descriptor channels
    decoder = {**TINY["decoder"], "in_channels": TINY["decoder"]["in_channels"] + 9, "positions": True}
    model = _model(freeze_backbone=True, sp_descriptors=True, decoder=decoder)
    free = _model(sp_descriptors=True, decoder=decoder)
    inputs = _inputs(synth_root, model, tmp_path)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert not model.backbone.training  # BatchNorm keeps the U-Net stage's statistics
    for _ in range(2):
        model(inputs)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    assert len(model._frozen_scenes) == len(set(inputs.scene.scene_ids))
    first = model.encode_scene(inputs.scene)
    assert first.feats[0] is model.encode_scene(inputs.scene).feats[0]  # reused, not recomputed
    # the same as computing it afresh with the U-Net in eval mode, descriptors included
    free.backbone.load_state_dict(model.backbone.state_dict())
    free.eval()
    with torch.no_grad():
        torch.testing.assert_close(free.encode_scene(inputs.scene).feats[0], first.feats[0])
    assert first.feats[0].shape[1] == decoder["in_channels"]
    model.load_state_dict(model.state_dict())
    assert not model._frozen_scenes  # loading weights drops the kept features
