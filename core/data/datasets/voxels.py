"""Voxel keys of a point cloud in numpy: which voxel each point falls in, computed once per scene and cached.

This is the data side of voxelisation (the grid and the point -> voxel map); the model side averages point
features per voxel (`core.models.common.voxelize`) and may reuse `voxel_grid` so that both agree. It lives
in `core.data` because dependencies point models -> data, never back.

Grid rule: voxel index = floor(xyz / voxel_size), shifted so that the scene's smallest index is 0 on each
axis (sparse convolution libraries want non-negative coordinates); `origin` is that shift, so the absolute
index of a voxel is `coords + origin` and its lower corner in metres is `(coords + origin) * voxel_size`.
Voxels are ordered lexicographically by (x, y, z): the same points always give the same voxel order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VoxelGrid:
    coords: np.ndarray  # (V, 3) int32, non-negative grid coordinates
    point_to_voxel: np.ndarray  # (N,) int64, index into `coords` of each point
    origin: np.ndarray  # (3,) int64, absolute grid index of coords (0, 0, 0)
    voxel_size: float

    @property
    def num_voxels(self) -> int:
        return len(self.coords)


def voxel_grid(xyz: np.ndarray, voxel_size: float) -> VoxelGrid:
    """The occupied voxels of `xyz` (N, 3) metres at `voxel_size` metres, and each point's voxel."""
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), found {xyz.shape}")
    if not (isinstance(voxel_size, int | float) and np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size must be a positive number of metres, found {voxel_size!r}")
    if not np.isfinite(xyz).all():
        raise ValueError("points hold NaN or infinite coordinates")
    if len(xyz) == 0:
        empty = np.zeros((0, 3), dtype=np.int32)
        return VoxelGrid(empty, np.zeros(0, dtype=np.int64), np.zeros(3, dtype=np.int64), float(voxel_size))
    index = np.floor(xyz.astype(np.float64) / voxel_size).astype(np.int64)
    origin = index.min(axis=0)
    index -= origin
    extent = index.max(axis=0) + 1
    if np.prod(extent.astype(np.float64)) >= 2**62:
        raise ValueError(f"the grid ({extent.tolist()} voxels) is too large for 64-bit voxel keys")
    if extent.max() >= 2**31:
        raise ValueError(f"the grid ({extent.tolist()} voxels) does not fit int32 coordinates")
    # One int64 key per voxel, ordered like (x, y, z) tuples, so np.unique sorts voxels lexicographically.
    keys = (index[:, 0] * extent[1] + index[:, 1]) * extent[2] + index[:, 2]
    unique_keys, point_to_voxel = np.unique(keys, return_inverse=True)
    x, yz = np.divmod(unique_keys, extent[1] * extent[2])
    coords = np.stack([x, yz // extent[2], yz % extent[2]], axis=1).astype(np.int32)
    return VoxelGrid(coords, point_to_voxel.reshape(-1).astype(np.int64), origin, float(voxel_size))
