"""Superpoint mean pooling and the voxel -> point gather, in plain torch.

Why: torch-scatter has no wheels here (REFERENCE §7), so the voxel -> point -> superpoint path of the
SPFormer family is done with `Tensor.scatter_reduce` (mean, include_self=False) and indexing. Both work on
any device. Superpoint ids of a batch are offset per item by the caller (collate), as in REFERENCE §4.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.models.errors import ModelError


def _check_index(index: Tensor, length: int, size: int, name: str, what: str) -> None:
    if not isinstance(index, Tensor) or index.dtype != torch.long or index.ndim != 1:
        got = f"{index.dtype} {tuple(index.shape)}" if isinstance(index, Tensor) else type(index).__name__
        raise ModelError(None, f"{name}: {what} must be a 1-D long tensor, got {got}")
    if index.shape[0] != length:
        raise ModelError(None, f"{name}: {what} has {index.shape[0]} entries, features have {length} rows")
    if length and (int(index.min()) < 0 or int(index.max()) >= size):
        raise ModelError(
            None, f"{name}: {what} out of range [0, {size}): min {int(index.min())}, max {int(index.max())}"
        )


def superpoint_mean(feats: Tensor, superpoint_ids: Tensor, num_superpoints: int) -> Tensor:
    """Mean of `feats[N,C]` over the points of each superpoint -> [S,C]; an empty superpoint gets 0."""
    if feats.ndim != 2:
        raise ModelError(None, f"superpoint_mean: feats must be [N,C], got {tuple(feats.shape)}")
    if num_superpoints < 0:
        raise ModelError(None, f"superpoint_mean: num_superpoints must be >= 0, got {num_superpoints}")
    _check_index(superpoint_ids, feats.shape[0], num_superpoints, "superpoint_mean", "superpoint_ids")
    out = feats.new_zeros(num_superpoints, feats.shape[1])
    index = superpoint_ids[:, None].expand(-1, feats.shape[1])
    return out.scatter_reduce(0, index, feats, reduce="mean", include_self=False)


def voxel_to_point(voxel_feats: Tensor, point_to_voxel: Tensor) -> Tensor:
    """Each point takes its voxel's feature: `voxel_feats[V,C]`, `point_to_voxel[N]` long -> [N,C]."""
    if voxel_feats.ndim != 2:
        raise ModelError(None, f"voxel_to_point: voxel_feats must be [V,C], got {tuple(voxel_feats.shape)}")
    _check_index(
        point_to_voxel,
        point_to_voxel.shape[0] if isinstance(point_to_voxel, Tensor) else -1,
        voxel_feats.shape[0],
        "voxel_to_point",
        "point_to_voxel",
    )
    return voxel_feats.index_select(0, point_to_voxel)


DESCRIPTOR_DIM = 9


def superpoint_descriptors(xyz: Tensor, rgb: Tensor, superpoint_ids: Tensor, num_superpoints: int) -> Tensor:
    """Cheap shape and colour facts per superpoint -> [S, DESCRIPTOR_DIM]: mean colour (3), colour spread
    (1), height of the centre above the room's lowest point (1), extent along x, y, z (3), log point count
    (1). Why: a small U-Net trained on a few dozen rooms tells a cup from a table poorly; size, height and
    colour are exactly what short descriptions name ("the white pillow", "the small box on the desk")."""
    _check_index(superpoint_ids, xyz.shape[0], num_superpoints, "superpoint_descriptors", "superpoint_ids")
    if xyz.ndim != 2 or xyz.shape[1] != 3 or rgb.shape != xyz.shape:
        raise ModelError(
            None,
            f"superpoint_descriptors: xyz and rgb must be [N,3], got {tuple(xyz.shape)}, {tuple(rgb.shape)}",
        )
    colour = superpoint_mean(rgb, superpoint_ids, num_superpoints)
    spread = (superpoint_mean(rgb * rgb, superpoint_ids, num_superpoints) - colour**2).clamp(min=0).mean(1)
    centre = superpoint_mean(xyz, superpoint_ids, num_superpoints)
    index = superpoint_ids[:, None].expand(-1, 3)
    low = xyz.new_full((num_superpoints, 3), float("inf")).scatter_reduce(0, index, xyz, "amin")
    high = xyz.new_full((num_superpoints, 3), float("-inf")).scatter_reduce(0, index, xyz, "amax")
    extent = torch.nan_to_num(high - low, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
    count = torch.bincount(superpoint_ids, minlength=num_superpoints).to(xyz.dtype)
    height = centre[:, 2:3] - xyz[:, 2].min() if xyz.shape[0] else centre[:, 2:3]
    return torch.cat(
        [colour, spread.sqrt()[:, None], height, extent, count.clamp(min=1).log()[:, None] / 5.0], dim=1
    )
