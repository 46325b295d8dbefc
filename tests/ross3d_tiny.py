"""The tiny Ross3D configuration the model tests share, and samples built from a generated scene.

32 px frames in 8 px patches (a 4x4 grid pooled 2x2 to 2x2 tokens per frame), a one-layer 32-wide LLM,
one-block denoisers on the 2x2 view grid and a 4x4 BEV grid, targets from the shipped VAE (8x: 32 px
views -> 4x4 latents -> 2x2 tokens; 64 px BEV -> 8x8 latents -> 4x4 tokens). Seconds per step on a CPU.

`PRESET` is the tiny `train ross3d` preset file (model, data, train) the command tests share: 28 px frames
in 7 px patches, 2 frames; seconds per run on one thread. A test that needs a variant overrides it on a copy.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from core.models.common.image_tokens import load_frames
from core.models.common.pretrained import config_from_dict
from core.models.ross3d.configuration_ross3d import Ross3DConfig
from core.models.ross3d.processor_ross3d import Ross3DSample
from core.models.ross3d.targets import SceneTargetCache
from core.models.ross3d.vae import to_unit_range
from core.scene.render import MeshRenderer


def denoiser(grid: list[int], **changes) -> dict:
    """A one-block 32-wide denoiser on `grid` (over the shipped VAE's 32-channel latent patches)."""
    return {
        "in_channels": 32,
        "grid": grid,
        "cond_dim": 32,
        "width": 32,
        "depth": 1,
        "heads": 2,
        "pool_heads": 2,
        "frequency_dim": 32,
        **changes,
    }


TINY = {
    "llm": {"hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1, "intermediate": 64},
    "image": {
        "vision": {"image_size": 32, "patch_size": 8, "hidden": 16, "layers": 1, "heads": 2, "pool": 2},
        "out_dim": 32,
        "mask_token": True,
        "num_frames": 8,
    },
    "recon": {"view": denoiser([2, 2]), "bev": denoiser([4, 4]), "view_repeats": 2},
    "targets": {"view_grid": [2, 2], "view_size": 32, "bev_size": 64, "bev_grid": [4, 4]},
    "grounding": {"dim": 32},
    "max_new_tokens": 8,
}

PRESET = {
    "model": {
        "llm": copy.deepcopy(TINY["llm"]),
        "image": {
            "vision": {"image_size": 28, "patch_size": 7, "hidden": 16, "layers": 1, "heads": 2, "pool": 2},
            "out_dim": 32,
            "num_frames": 2,
            "mask_token": True,
        },
        "recon": {"view": denoiser([2, 2]), "bev": denoiser([4, 4])},
        "targets": copy.deepcopy(TINY["targets"]),
        "grounding": {"dim": 32, "box_rule": "centre"},
        "view_every": 2,
        "max_new_tokens": 4,
    },
    "data": {"split": "train", "max_per_task": 3},
    "train": {
        "steps": 4,
        "batch_size": 2,
        "lr": 0.001,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "log_every": 1,
        "lr_multipliers": {"reconstruction.": 10.0},
    },
}


def tiny_config(**overrides) -> Ross3DConfig:
    data = {**TINY, **overrides}
    return config_from_dict(Ross3DConfig, data)


def make_samples(
    model, scene, task: str, question: str, answer: str | None, indices: list[int], **extra
) -> Ross3DSample:
    """One sample of `scene` with frames `indices`, its view/BEV targets through the model's VAE, and (for
    grounding / captioning) the scene's object boxes as proposals."""
    frames = load_frames(scene, indices, model.image.encoder)
    targets = SceneTargetCache(None, model.vae, model.config.targets).compute(scene, indices)
    objects = scene.objects()
    proposals = torch.from_numpy(np.stack([o.box for o in objects]).astype(np.float32))
    bev = MeshRenderer(scene.mesh).render_bev(image_size=model.config.targets.bev_size)
    bev_image = to_unit_range(torch.from_numpy(bev.color.copy())[None])[0]
    return Ross3DSample(
        scene_id=scene.scene_id,
        task=task,
        question=question,
        answer=answer,
        frames=frames,
        proposals=proposals,
        proposal_ids=[o.object_id for o in objects],
        view_targets=targets.views,
        bev_target=targets.bev,
        bev_mask=targets.bev_mask,
        bev_image=bev_image,
        **extra,
    )
