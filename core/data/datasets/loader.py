"""Torch datasets and the collate function: samples joined with their cached scenes, batched for a model.

`RefSegDataset` gives one item per referring sample (the scene's arrays and that sample's target masks);
`SceneDataset` one item per scene (the U-Net pretraining stage on instance and semantic labels). Both
collate with `collate` into a `SceneBatch`: points of all items concatenated, with per-item offsets
applied to voxel, superpoint and point indices so that index tensors address the concatenated arrays
(REFERENCE §4: superpoint ids are offset per batch item). An item shares nothing with another item of the
same scene: each query gets its own copy of the scene, as the relatives batch it.

Point features follow the common backbone (REFERENCE §4): `rgb` is scaled to [-1, 1]; `voxel_feats` are
the voxel means of [rgb, xyz - scene centre] (6 channels), the centre being the mean of the item's points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from core.data.datasets.refseg import RefSegSample
from core.data.datasets.scene_cache import CachedScene, SceneCache
from core.data.errors import DataError


@dataclass
class SceneItem:
    scene: CachedScene
    sample: RefSegSample | None = None  # None: a scene without a query (pretraining)


class SceneDataset(Dataset):
    """One item per scene, in the given order."""

    def __init__(self, scene_ids: Sequence[str], cache: SceneCache):
        self.scene_ids = list(scene_ids)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> SceneItem:
        return SceneItem(self.cache.get(self.scene_ids[index]))

    def prepare(self, progress: bool = False) -> None:
        """Build every scene's cache now (clear errors up front, no build racing in loader workers)."""
        for scene_id in tqdm(self.scene_ids, desc="scene cache", unit="scene", disable=not progress):
            self.cache.get(scene_id)


class RefSegDataset(Dataset):
    """One item per referring sample; a target missing from its scene is a `DataError` naming both."""

    def __init__(self, samples: Sequence[RefSegSample], cache: SceneCache):
        self.samples = list(samples)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> SceneItem:
        sample = self.samples[index]
        scene = self.cache.get(sample.scene_id)
        check_targets(sample, scene)
        return SceneItem(scene, sample)

    def prepare(self, progress: bool = False) -> None:
        """Build every scene's cache and check every sample's targets against its scene, now."""
        scene_ids = sorted({s.scene_id for s in self.samples})
        for scene_id in tqdm(scene_ids, desc="scene cache", unit="scene", disable=not progress):
            self.cache.get(scene_id)
        for sample in self.samples:
            check_targets(sample, self.cache.get(sample.scene_id))


def check_targets(sample: RefSegSample, scene: CachedScene) -> None:
    """Every target id of `sample` must be an annotated object (with points) of its scene."""
    missing = sorted(set(sample.target_ids) - {int(i) for i in scene.object_ids})
    if missing:
        where = sample.provenance.get("file")
        raise DataError(
            where,
            f"sample {sample.key!r} ({sample.kind}) targets object(s) {missing} that scene {scene.scene_id} "
            "does not have (the annotations do not match the scene's labels)",
            index=sample.provenance.get("record"),
        )


@dataclass
class SceneBatch:
    batch_size: int
    xyz: torch.Tensor  # (N, 3) float32 metres, axis-aligned
    rgb: torch.Tensor  # (N, 3) float32 in [-1, 1]
    point_batch: torch.Tensor  # (N,) long, item of each point
    point_offsets: torch.Tensor  # (B + 1,) long: item b's points are [offsets[b], offsets[b + 1])
    voxel_coords: torch.Tensor  # (V, 4) int32 (item, x, y, z)
    voxel_feats: torch.Tensor  # (V, 6) float32 mean of [rgb, xyz - centre] per voxel
    voxel_offsets: torch.Tensor  # (B + 1,) long
    point_to_voxel: torch.Tensor  # (N,) long, into the concatenated voxels
    superpoint_ids: torch.Tensor  # (N,) long, into the concatenated superpoints
    superpoint_offsets: torch.Tensor  # (B + 1,) long
    superpoint_batch: torch.Tensor  # (S,) long, item of each superpoint
    instance: torch.Tensor  # (N,) long objectId, -1 unannotated
    semantic: torch.Tensor  # (N,) long NYU40 id, 0 unannotated
    scene_ids: list[str]
    voxel_size: float
    # Referring samples (None for scene-only batches): per item, over its own points and superpoints.
    point_mask: torch.Tensor | None = None  # (N,) bool union of the item's targets
    superpoint_mask: torch.Tensor | None = None  # (S,) bool superpoint mean of point_mask > 0.5
    samples: list[RefSegSample] | None = None
    # per item: objectId -> raw label of the scene's annotated objects (the classes a sentence names)
    object_labels: list[dict[int, str]] | None = None

    @property
    def num_superpoints(self) -> list[int]:
        return self.superpoint_offsets.diff().tolist()

    @property
    def questions(self) -> list[str]:
        return [s.question for s in self.samples or []]

    @property
    def answers(self) -> list[str]:
        return [s.answer for s in self.samples or []]

    def to(self, device: torch.device | str) -> SceneBatch:
        """The batch with every tensor on `device` (lists and numbers unchanged)."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            if torch.is_tensor(getattr(self, f.name))
            else getattr(self, f.name)
            for f in fields(self)
        }
        return SceneBatch(**moved)


def _offsets(counts: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _voxel_means(point_to_voxel: np.ndarray, feats: np.ndarray, num_voxels: int) -> np.ndarray:
    """(V, C) mean of `feats` (N, C) over the points of each voxel."""
    count = np.maximum(np.bincount(point_to_voxel, minlength=num_voxels), 1)
    columns = [
        np.bincount(point_to_voxel, weights=feats[:, c], minlength=num_voxels) for c in range(feats.shape[1])
    ]
    return (np.stack(columns, axis=1) / count[:, None]).astype(np.float32)


def collate(items: Sequence[SceneItem]) -> SceneBatch:
    """Concatenate items (see the module docstring); referring targets when every item has a sample.

    The work is done in numpy (single-threaded, predictable on a busy CPU) and turned into tensors once."""
    if not items:
        raise ValueError("collate needs at least one item")
    scenes = [item.scene for item in items]
    sizes = {s.voxel_size for s in scenes}
    if len(sizes) != 1:
        raise DataError(None, f"scenes cached at different voxel sizes {sorted(sizes)} in one batch")
    items_index = np.arange(len(scenes))
    point_offsets = _offsets([s.num_points for s in scenes])
    voxel_offsets = _offsets([s.num_voxels for s in scenes])
    superpoint_offsets = _offsets([s.num_superpoints for s in scenes])
    point_batch = np.repeat(items_index, [s.num_points for s in scenes])
    xyz = np.concatenate([s.xyz for s in scenes]).astype(np.float32)
    rgb = np.concatenate([s.rgb for s in scenes]).astype(np.float32) / 127.5 - 1.0
    point_to_voxel = np.concatenate([s.point_to_voxel + voxel_offsets[b] for b, s in enumerate(scenes)])
    superpoint_ids = np.concatenate([s.superpoint + superpoint_offsets[b] for b, s in enumerate(scenes)])
    voxel_batch = np.repeat(items_index, [s.num_voxels for s in scenes]).astype(np.int32)
    voxel_coords = np.concatenate([voxel_batch[:, None], np.concatenate([s.voxel_coords for s in scenes])], 1)
    centres = np.stack([s.xyz.mean(axis=0, dtype=np.float64) for s in scenes])
    point_feats = np.concatenate([rgb, xyz - centres[point_batch]], axis=1)
    t = torch.from_numpy
    batch = SceneBatch(
        batch_size=len(scenes),
        xyz=t(xyz),
        rgb=t(rgb),
        point_batch=t(point_batch.astype(np.int64)),
        point_offsets=t(point_offsets),
        voxel_coords=t(voxel_coords.astype(np.int32)),
        voxel_feats=t(_voxel_means(point_to_voxel, point_feats, int(voxel_offsets[-1]))),
        voxel_offsets=t(voxel_offsets),
        point_to_voxel=t(point_to_voxel.astype(np.int64)),
        superpoint_ids=t(superpoint_ids.astype(np.int64)),
        superpoint_offsets=t(superpoint_offsets),
        superpoint_batch=t(np.repeat(items_index, [s.num_superpoints for s in scenes]).astype(np.int64)),
        instance=t(np.concatenate([s.instance for s in scenes]).astype(np.int64)),
        semantic=t(np.concatenate([s.semantic for s in scenes]).astype(np.int64)),
        scene_ids=[s.scene_id for s in scenes],
        voxel_size=sizes.pop(),
        object_labels=[dict(zip(s.object_ids.tolist(), s.object_labels)) for s in scenes],
    )
    if all(item.sample is not None for item in items):
        point_masks = [s.point_mask(item.sample.target_ids) for s, item in zip(scenes, items)]
        batch.point_mask = torch.from_numpy(np.concatenate(point_masks))
        batch.superpoint_mask = torch.from_numpy(
            np.concatenate([s.superpoint_mask(m) for s, m in zip(scenes, point_masks)])
        )
        batch.samples = [item.sample for item in items]
    return batch
