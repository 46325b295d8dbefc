"""Mean voxelisation of a point cloud and batching of voxelised scenes for the sparse U-Net.

Why: the SPFormer-family backbone (REFERENCE §4) works on 2 cm voxels whose features are the mean of their
points, and maps the voxel features back to points afterwards. `voxelize` does one scene (keeping the
point -> voxel index for that way back); `batch_voxels` stacks scenes with a batch column, the layout both
sparse-convolution backends take. `point_features` builds the 6 input channels (rgb/127.5 - 1, centred xyz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.data.datasets.voxels import voxel_grid
from core.models.errors import ModelError


@dataclass
class Voxels:
    """One voxelised scene: `coords[V,3]` int32 grid coordinates (>= 0), `feats[V,C]` the mean of the points
    in each voxel, `point_to_voxel[N]` long (the voxel of each input point), `origin[3]` int64: the grid index
    of coordinate 0, so `(coords + origin) * voxel_size` is a voxel's lower corner in metres."""

    coords: Tensor
    feats: Tensor
    point_to_voxel: Tensor
    origin: Tensor | None = None


@dataclass
class SparseBatch:
    """Scenes stacked for the U-Net: `coords[V,4]` int32 (batch, x, y, z), `feats[V,C]`, `point_to_voxel[N]`
    long into the stacked voxels (offsets applied), `batch_size`; `voxel_offsets` / `point_offsets` [B+1]
    long give each item's slice of the voxels / points."""

    coords: Tensor
    feats: Tensor
    point_to_voxel: Tensor
    batch_size: int
    voxel_offsets: Tensor | None = None
    point_offsets: Tensor | None = None

    def to(self, device: torch.device | str) -> SparseBatch:
        """The same batch on `device` (offsets stay where they are: they are small bookkeeping)."""
        return SparseBatch(
            self.coords.to(device),
            self.feats.to(device),
            self.point_to_voxel.to(device),
            self.batch_size,
            self.voxel_offsets,
            self.point_offsets,
        )


def _as_tensor(x: Tensor | np.ndarray, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ModelError(None, f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


def point_features(xyz: Tensor | np.ndarray, rgb: Tensor | np.ndarray) -> Tensor:
    """The backbone's 6 input channels per point: rgb / 127.5 - 1 (rgb in 0..255) then xyz minus its mean.

    Returns float32 [N,6] on the device of `xyz`."""
    xyz, rgb = _as_tensor(xyz, "xyz"), _as_tensor(rgb, "rgb")
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not xyz.is_floating_point():
        raise ModelError(None, f"point_features: xyz must be float [N,3], got {tuple(xyz.shape)} {xyz.dtype}")
    if rgb.ndim != 2 or rgb.shape[1] != 3 or rgb.shape[0] != xyz.shape[0]:
        raise ModelError(
            None, f"point_features: rgb must be [N,3] with N={xyz.shape[0]}, got {tuple(rgb.shape)}"
        )
    if xyz.shape[0] == 0:
        raise ModelError(None, "point_features: empty point cloud (N=0)")
    rgb = rgb.to(device=xyz.device, dtype=torch.float32)
    if bool((rgb < 0).any()) or bool((rgb > 255).any()):
        raise ModelError(None, "point_features: rgb must lie in 0..255 (got values outside; 0..1 colours?)")
    xyz = xyz.to(torch.float32)
    return torch.cat([rgb / 127.5 - 1.0, xyz - xyz.mean(0, keepdim=True)], dim=1)


def voxelize(xyz: Tensor | np.ndarray, feats: Tensor | np.ndarray, voxel_size: float = 0.02) -> Voxels:
    """Mean voxelisation: points falling in the same `voxel_size` cube become one voxel whose feature is
    their mean. Voxels come out sorted by (x, y, z); grid coordinates start at 0 on each axis."""
    xyz, feats = _as_tensor(xyz, "xyz"), _as_tensor(feats, "feats")
    if not voxel_size > 0:
        raise ModelError(None, f"voxelize: voxel_size must be > 0, got {voxel_size}")
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not xyz.is_floating_point():
        raise ModelError(None, f"voxelize: xyz must be float [N,3], got {tuple(xyz.shape)} {xyz.dtype}")
    if feats.ndim != 2 or feats.shape[0] != xyz.shape[0]:
        raise ModelError(
            None, f"voxelize: feats must be [N,C] with N={xyz.shape[0]}, got {tuple(feats.shape)}"
        )
    if xyz.shape[0] == 0:
        raise ModelError(None, "voxelize: empty point cloud (N=0)")
    if not bool(torch.isfinite(xyz).all()):
        raise ModelError(None, "voxelize: xyz contains NaN or inf")
    try:  # one grid rule, shared with the scene cache (core.data.datasets.voxels)
        grid = voxel_grid(xyz.detach().to("cpu", torch.float64).numpy(), voxel_size)
    except ValueError as exc:
        raise ModelError(None, f"voxelize: {exc}") from exc
    coords = torch.from_numpy(grid.coords).to(xyz.device)
    point_to_voxel = torch.from_numpy(grid.point_to_voxel).to(xyz.device)
    origin = torch.from_numpy(grid.origin).to(xyz.device)
    num_voxels = grid.num_voxels
    work = feats.to(torch.float32) if not feats.is_floating_point() else feats
    summed = torch.zeros(num_voxels, work.shape[1], dtype=work.dtype, device=work.device)
    summed.index_add_(0, point_to_voxel, work)
    counts = torch.bincount(point_to_voxel, minlength=num_voxels).to(work.dtype).clamp_min(1)
    return Voxels(coords, summed / counts[:, None], point_to_voxel, origin)


def batch_voxels(items: list[Voxels]) -> SparseBatch:
    """Stack voxelised scenes: prepend a batch column to the coordinates and offset each scene's
    `point_to_voxel` by the voxels before it."""
    if not items:
        raise ModelError(None, "batch_voxels: empty list of scenes")
    channels = {int(v.feats.shape[1]) for v in items}
    if len(channels) != 1:
        raise ModelError(None, f"batch_voxels: scenes have different feature widths {sorted(channels)}")
    coords, p2v, voxel_offsets, point_offsets = [], [], [0], [0]
    for b, v in enumerate(items):
        if v.coords.shape[0] == 0:
            raise ModelError(None, f"batch_voxels: scene {b} has no voxels")
        column = torch.full((v.coords.shape[0], 1), b, dtype=torch.int32, device=v.coords.device)
        coords.append(torch.cat([column, v.coords.to(torch.int32)], dim=1))
        p2v.append(v.point_to_voxel + voxel_offsets[-1])
        voxel_offsets.append(voxel_offsets[-1] + v.coords.shape[0])
        point_offsets.append(point_offsets[-1] + v.point_to_voxel.shape[0])
    return SparseBatch(
        torch.cat(coords),
        torch.cat([v.feats for v in items]),
        torch.cat(p2v),
        len(items),
        torch.tensor(voxel_offsets),
        torch.tensor(point_offsets),
    )
