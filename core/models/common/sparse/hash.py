"""A voxel hash in pure torch: (batch, x, y, z) -> linear int64 key, sorted once, looked up with
`torch.searchsorted`.

Why: the pure-PyTorch sparse convolution needs "which row holds the voxel at p + d?" for every kernel offset
d. Sorting the keys and binary-searching them runs on CPU and CUDA alike, with no custom kernels and no
hash table library (none has wheels here).
"""

from __future__ import annotations

import torch
from torch import Tensor

MARGIN = 1  # keys stay unique for coordinates in [-MARGIN, shape + MARGIN): room for +-1 neighbour offsets


def encode(coords: Tensor, spatial_shape: tuple[int, int, int]) -> Tensor:
    """Linear int64 key of each (b, x, y, z) row; unique and order-preserving (b, then x, y, z) for
    coordinates within MARGIN of the grid."""
    c = coords.to(torch.int64)
    sx, sy, sz = (s + 2 * MARGIN for s in spatial_shape)
    return ((c[:, 0] * sx + (c[:, 1] + MARGIN)) * sy + (c[:, 2] + MARGIN)) * sz + (c[:, 3] + MARGIN)


def decode(keys: Tensor, spatial_shape: tuple[int, int, int]) -> Tensor:
    """Inverse of `encode`: int64 keys -> int32 (b, x, y, z) rows."""
    sx, sy, sz = (s + 2 * MARGIN for s in spatial_shape)
    z = keys % sz - MARGIN
    rest = keys // sz
    y = rest % sy - MARGIN
    rest = rest // sy
    x = rest % sx - MARGIN
    return torch.stack([rest // sx, x, y, z], dim=1).to(torch.int32)


class VoxelHash:
    """The sites of one sparse tensor, searchable: `lookup(coords)` gives the row of each query site, -1 if
    the site is empty."""

    def __init__(self, coords: Tensor, spatial_shape: tuple[int, int, int]):
        self.spatial_shape = spatial_shape
        self.sorted_keys, self.order = torch.sort(encode(coords, spatial_shape))

    def lookup_keys(self, keys: Tensor) -> Tensor:
        if self.sorted_keys.numel() == 0:
            return torch.full_like(keys, -1)
        pos = torch.searchsorted(self.sorted_keys, keys).clamp_max(self.sorted_keys.numel() - 1)
        found = self.sorted_keys[pos] == keys
        return torch.where(found, self.order[pos], torch.full_like(pos, -1))

    def lookup(self, coords: Tensor) -> Tensor:
        return self.lookup_keys(encode(coords, self.spatial_shape))
