"""A tiny Dense3D taught the answer template ("It is [SEG]." with a non-empty mask) on two ScanRefer training
queries of a generated dataset.

Why: the `predict dense3d` checkpoint, the Ask-the-scene checkpoints and the retrain test's base model are
this same model trained the same way; one function trains it for all three.
"""

from __future__ import annotations

from pathlib import Path

import torch
from dense3d_tiny import TINY

from core.data.datasets import RefSegDataset, SceneCache, SceneCacheConfig, load_samples
from core.data.datasets.refseg import RefSegSample
from core.models.common.pretrained import config_from_dict
from core.models.dense3d.configuration_dense3d import Dense3DConfig
from core.models.dense3d.modeling_dense3d import Dense3DModel
from core.train import dense3d as task


def train_tiny_dense3d(root: Path, cache_dir: Path) -> tuple[Dense3DModel, list[RefSegSample]]:
    """The model (seeded with 0) trained on the first two training queries that name a target, and those
    queries; scenes are voxelised into `cache_dir`."""
    torch.manual_seed(0)
    model = Dense3DModel(config_from_dict(Dense3DConfig, TINY))
    samples = [s for s in load_samples(root, "train") if s.target_ids][:2]
    cache = SceneCache(root, cache_dir, SceneCacheConfig(voxel_size=TINY["voxel_size"]))
    items = task.FramesDataset(RefSegDataset(samples, cache), model, root)
    inputs = task.collate_with_frames([items[i] for i in range(len(samples))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(40):  # until the LM has learned the answer template (about 10-20 steps)
        out = model(inputs)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        if out["loss_lm"] < 0.02:
            break
    return model, samples
