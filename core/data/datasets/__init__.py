"""Torch datasets and collate functions that turn scenes and annotation records into training batches.

`scene_cache` (scene -> cached arrays), `voxels` (the voxel grid, numpy), `refseg` (referring samples from
ScanRefer, Multi3DRefer and DenseScan records), `loader` (datasets and collate).
"""

from core.data.datasets.loader import RefSegDataset, SceneBatch, SceneDataset, SceneItem, collate
from core.data.datasets.refseg import RefSegSample, load_samples, read_split
from core.data.datasets.scene_cache import CachedScene, SceneCache, SceneCacheConfig
from core.data.datasets.voxels import VoxelGrid, voxel_grid

__all__ = [
    "CachedScene",
    "RefSegDataset",
    "RefSegSample",
    "SceneBatch",
    "SceneCache",
    "SceneCacheConfig",
    "SceneDataset",
    "SceneItem",
    "VoxelGrid",
    "collate",
    "load_samples",
    "read_split",
    "voxel_grid",
]
