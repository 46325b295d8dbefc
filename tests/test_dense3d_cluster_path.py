"""The `cluster-7b` preset's code path, smoke-tested on the CPU: local LLM and vision folders, LoRA,
gradient checkpointing, a frozen vision tower, gradient accumulation, both training stages, save, reload.

The preset is the shipped `cluster-7b.json`, changed only where it sets a size (and dtype: float32 on the
CPU); its paths point at a tiny Qwen2ForCausalLM and a tiny SiglipVisionModel saved here as local HF
folders. The LLM's tokenizer is the project's own without [SEG] / <ground> / <coord>, as a real Qwen2-7B
folder lacks [SEG]: building the model adds the token and grows the embeddings, like on a cluster.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_dense3d_distributed import _launch_two

from core.data.datasets import RefSegDataset, SceneCache, SceneCacheConfig, load_samples
from core.models.common.tokenizer import DEFAULT_OUT
from core.models.dense3d.modeling_dense3d import Dense3DModel
from core.train import dense3d as task
from core.train import loop
from core.train.cli import load_preset

pytestmark = pytest.mark.usefixtures("one_thread")

LLM_HIDDEN = 64
# every size the cluster-7b preset sets, shrunk; nothing else of the preset changes (asserted below)
SHRINK = {
    ("model", "voxel_size"): 0.1,
    ("model", "unet", "channels"): [8, 16],
    ("model", "unet", "blocks_per_level"): 1,
    ("model", "llm", "lora_r"): 4,
    ("model", "llm", "lora_alpha"): 8,
    ("model", "llm", "dtype"): "float32",  # bf16 weights are for the GPU
    ("model", "decoder", "in_channels"): 17,  # 8 U-Net channels + 9 superpoint descriptors
    ("model", "decoder", "d_model"): 32,
    ("model", "decoder", "num_heads"): 2,
    ("model", "decoder", "num_layers"): 1,
    ("model", "decoder", "ffn_dim"): 64,
    ("model", "image", "out_dim"): LLM_HIDDEN,
    ("model", "image", "num_frames"): 2,
    ("model", "scene_tokens"): 16,
    ("pretrain", "steps"): 1,
    ("pretrain", "batch_size"): 1,
    ("pretrain", "warmup_steps"): 0,
    ("pretrain", "checkpoint_every"): 1,
    ("pretrain", "log_every"): 1,
    ("train", "steps"): 2,
    ("train", "batch_size"): 1,
    ("train", "grad_accum"): 2,
    ("train", "warmup_steps"): 1,
    ("train", "checkpoint_every"): 2,
    ("train", "log_every"): 1,
    ("train", "num_workers"): 0,
}


def _base_llm(folder: Path) -> Path:
    """A tiny Qwen2 causal LM saved as a local HF folder, with a tokenizer that lacks the task tokens."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    folder.mkdir()
    data = json.loads((DEFAULT_OUT / "tokenizer.json").read_text())
    data["added_tokens"] = [
        t for t in data["added_tokens"] if t["content"] not in ("[SEG]", "<ground>", "<coord>")
    ]
    (folder / "tokenizer.json").write_text(json.dumps(data))
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(DEFAULT_OUT / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert "[SEG]" not in tokenizer.get_vocab()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=LLM_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(1)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


def _vision_tower(folder: Path) -> Path:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(2)
    config = SiglipVisionConfig(
        image_size=56, patch_size=14, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2,
    )  # fmt: skip
    SiglipVisionModel(config).save_pretrained(folder)
    return folder


def _derive(preset: dict, llm: Path, vision: Path) -> dict:
    out = copy.deepcopy(preset)
    for path, value in SHRINK.items():
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        assert path[-1] in parent, f"cluster-7b.json no longer sets {'.'.join(path)}: update SHRINK"
        parent[path[-1]] = value
    out["model"]["llm"]["path"] = str(llm)
    out["model"]["image"]["vision"]["path"] = str(vision)
    out["data"]["max_samples"] = 4
    return out


def _changed(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set(a) | set(b)
    out = set()
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= _changed(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.add(f"{prefix}{k}")
    return out


def _frozen_by_design(name: str) -> bool:
    """The LLM's base weights (everything but LoRA and the embed/lm_head copies) and the vision tower."""
    if name.startswith("llm."):
        return "lora_" not in name and "modules_to_save" not in name
    return name.startswith("image.encoder.")


def _check_saved(final: Path, llm: Path, vision: Path) -> None:
    """Frozen means unchanged: the checkpoint holds the base weights exactly as the local folders had
    them, and LoRA learned (its B matrices start at zero)."""
    saved = load_file(str(final / "model.safetensors"))
    base = load_file(str(llm / "model.safetensors"))
    for key in ("model.layers.0.mlp.down_proj.weight", "model.norm.weight"):
        torch.testing.assert_close(saved[f"llm.base_model.model.{key}"], base[key], rtol=0, atol=0)
    embed = saved["llm.base_model.model.model.embed_tokens.original_module.weight"]  # grown by [SEG]
    torch.testing.assert_close(
        embed[: len(base["model.embed_tokens.weight"])], base["model.embed_tokens.weight"]
    )
    q = "model.layers.1.self_attn.q_proj"
    torch.testing.assert_close(saved[f"llm.base_model.model.{q}.base_layer.weight"], base[f"{q}.weight"])
    lora_b = [k for k in saved if "lora_B" in k]
    assert lora_b and all(saved[k].abs().max() > 0 for k in lora_b)
    tower = load_file(str(vision / "model.safetensors"))
    (key,) = [k for k in tower if k.endswith("encoder.layers.0.mlp.fc1.weight")]
    (mine,) = [k for k in saved if k.startswith("image.encoder.") and k.endswith(key)]
    torch.testing.assert_close(saved[mine], tower[key], rtol=0, atol=0)


def _local_folders_and_preset(tmp_path: Path) -> tuple[Path, Path, dict]:
    shipped = load_preset("dense3d", "cluster-7b")
    llm, vision = _base_llm(tmp_path / "qwen2-tiny"), _vision_tower(tmp_path / "siglip-tiny")
    preset = _derive(shipped, llm, vision)
    paths = {"model.llm.path", "model.image.vision.path", "data.max_samples"}
    assert _changed(shipped, preset) == {".".join(p) for p in SHRINK} | paths
    assert preset["model"]["llm"]["lora_r"] > 0 and preset["model"]["llm"]["gradient_checkpointing"]
    return llm, vision, preset


@pytest.mark.slow
def test_cluster_preset_trains_saves_and_reloads_without_base_weights(synth_root, tmp_path, monkeypatch):
    llm, vision, preset = _local_folders_and_preset(tmp_path)
    jobs = []

    def spy(job, **kwargs):  # keep the trained model of stage 2
        jobs.append(job)
        return real_train(job, **kwargs)

    real_train = task.train
    monkeypatch.setattr(task, "train", spy)  # stage 2
    monkeypatch.setattr(loop, "train", spy)  # stage 1 runs through loop.pretrain_stage
    final = task.run(preset, synth_root, tmp_path / "out", None, False, None)
    assert final is not None and len(jobs) == 2
    model: Dense3DModel = jobs[1].model

    # what trained: LoRA, the [SEG]-grown embeddings and lm_head, and every non-LLM part but the vision tower
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and frozen
    assert {n for n in trainable if _frozen_by_design(n)} == set()
    assert {n for n in frozen if not _frozen_by_design(n)} == set()
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    llm_full = {
        n.split(".modules_to_save.")[0] for n in trainable if n.startswith("llm.") and "lora_" not in n
    }
    assert {n.rsplit(".", 1)[-1] for n in llm_full} == {"embed_tokens", "lm_head"}
    for part in ("backbone.", "scene_proj.", "image.projector.", "seg_head.", "decoder."):
        assert any(n.startswith(part) for n in trainable), part
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert all(layer.gradient_checkpointing for layer in model.llm.get_base_model().model.layers)
    seg = model.tokenizer.convert_tokens_to_ids("[SEG]")
    assert seg == model.llm.get_input_embeddings().weight.shape[0] - 1  # the grown row
    _check_saved(final, llm, vision)

    # predictions before and after reload, with the base weights gone (reload must not read them)
    samples = [s for s in load_samples(synth_root, "train") if s.target_ids][:2]
    items = task.FramesDataset(
        RefSegDataset(samples, SceneCache(synth_root, tmp_path / "cache", SceneCacheConfig(voxel_size=0.1))),
        model,
        synth_root,
    )
    inputs = task.collate_with_frames([items[i] for i in range(len(samples))])
    model.eval()
    before = model.predict(inputs)
    (llm / "model.safetensors").unlink()
    (vision / "model.safetensors").unlink()
    again = Dense3DModel.from_pretrained(final)
    after = again.predict(inputs)
    for x, y in zip(before, after):
        assert x.answer == y.answer and x.has_seg == y.has_seg
        np.testing.assert_array_equal(x.point_mask, y.point_mask)
        np.testing.assert_allclose(x.superpoint_probs, y.superpoint_probs, atol=1e-6)
    assert sum(p.numel() for p in again.parameters() if p.requires_grad) == n_trainable


@pytest.mark.slow
def test_cluster_preset_under_two_processes(synth_root, tmp_path):
    """The same preset under DDP (gloo): LoRA, gradient checkpointing, a frozen tower and gradient
    accumulation (no_sync) across two processes; frozen weights stay put, the result reloads."""
    llm, vision, preset = _local_folders_and_preset(tmp_path)
    preset.pop("source")
    path = tmp_path / "cluster-tiny.json"
    path.write_text(json.dumps(preset))
    _launch_two(path, synth_root, tmp_path / "out")
    assert [json.loads(r)["step"] for r in (tmp_path / "out/metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
    ]
    _check_saved(tmp_path / "out" / "model", llm, vision)
    (llm / "model.safetensors").unlink()
    assert Dense3DModel.from_pretrained(tmp_path / "out" / "model").config.llm.lora_r == 4
