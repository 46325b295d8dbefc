"""The point branch's sparse 3D U-Net (SPFormer family, REFERENCE §4), one module over two backends.

Why: Dense3D and its relatives read a scene through this backbone: SubMConv3d stem (in -> channels[0]),
one level per entry of `channels` with `blocks_per_level` pre-activation residual blocks, down
SparseConv3d(k2, s2) and up SparseInverseConv3d between levels, skips concatenated, BatchNorm1d(eps 1e-4),
and a final BN + ReLU: voxel features of width channels[0]. The module names follow SPFormer's
(`input_conv`, `unet.blocks.block0...`, `unet.u...`, `output_layer`), so weights of that family load
directly. Backend "spconv" or "torch" is chosen at construction; both keep the same state_dict keys and
shapes (spconv's [out, k, k, k, in]), so a checkpoint trained with one loads in the other. Unlike SPFormer's
UBlock (tail widths c0 * (2 - i)), any `blocks_per_level` >= 1 works: only the first tail block takes 2 * c0.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.models.common.sparse import BACKENDS, Backend, get_backend
from core.models.common.sparse.hash import encode
from core.models.errors import ModelError

_FEATURE_WISE = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.Identity)  # SyncBatchNorm too


@dataclass
class SparseUNetConfig:
    """Backbone hyper-parameters; `out_channels` is channels[0]. `backend`: "auto" | "spconv" | "torch"."""

    in_channels: int = 6
    channels: tuple[int, ...] = (32, 64, 96, 128, 160)
    blocks_per_level: int = 2
    backend: str = "auto"
    bn_eps: float = 1e-4
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if not self.channels or any(not isinstance(c, int) or c <= 0 for c in self.channels):
            raise ModelError(None, f"SparseUNetConfig.channels must be positive ints, got {self.channels}")
        if not isinstance(self.in_channels, int) or self.in_channels <= 0:
            raise ModelError(
                None, f"SparseUNetConfig.in_channels must be a positive int, got {self.in_channels}"
            )
        if not isinstance(self.blocks_per_level, int) or self.blocks_per_level < 1:
            raise ModelError(
                None, f"SparseUNetConfig.blocks_per_level must be >= 1, got {self.blocks_per_level}"
            )
        if self.backend not in BACKENDS:
            raise ModelError(
                None, f"SparseUNetConfig.backend must be one of {BACKENDS}, got {self.backend!r}"
            )

    @property
    def out_channels(self) -> int:
        return self.channels[0]


class SparseSequential(nn.Sequential):
    """Runs BN / ReLU / Identity on the features and sparse convolutions on the sparse tensor."""

    def forward(self, x):
        for module in self:
            x = x.replace_feature(module(x.features)) if isinstance(module, _FEATURE_WISE) else module(x)
        return x


class ResidualBlock(nn.Module):
    """BN-ReLU-SubM3-BN-ReLU-SubM3 plus an identity (or 1x1 SubM when the width changes)."""

    def __init__(self, in_ch: int, out_ch: int, backend: Backend, norm, indice_key: str):
        super().__init__()
        shortcut = nn.Identity() if in_ch == out_ch else backend.subm(in_ch, out_ch, 1, None)
        self.i_branch = SparseSequential(shortcut)
        self.conv_branch = SparseSequential(
            norm(in_ch),
            nn.ReLU(),
            backend.subm(in_ch, out_ch, 3, indice_key),
            norm(out_ch),
            nn.ReLU(),
            backend.subm(out_ch, out_ch, 3, indice_key),
        )

    def forward(self, x):
        identity = self.i_branch(x)
        out = self.conv_branch(x)
        return out.replace_feature(out.features + identity.features)


class UBlock(nn.Module):
    """One level: residual blocks, then (if deeper levels remain) down -> inner U-Net -> up, concatenated
    with the skip and reduced by the tail blocks."""

    def __init__(self, channels: tuple[int, ...], blocks: int, backend: Backend, norm, level: int):
        super().__init__()
        c0 = channels[0]
        key = f"subm{level}"
        self.blocks = SparseSequential(
            OrderedDict((f"block{i}", ResidualBlock(c0, c0, backend, norm, key)) for i in range(blocks))
        )
        self.deeper = len(channels) > 1
        if self.deeper:
            c1, down_key = channels[1], f"spconv{level}"
            self.conv = SparseSequential(norm(c0), nn.ReLU(), backend.down(c0, c1, down_key))
            self.u = UBlock(channels[1:], blocks, backend, norm, level + 1)
            self.deconv = SparseSequential(norm(c1), nn.ReLU(), backend.inverse(c1, c0, down_key))
            self.blocks_tail = SparseSequential(
                OrderedDict(
                    (f"block{i}", ResidualBlock(2 * c0 if i == 0 else c0, c0, backend, norm, key))
                    for i in range(blocks)
                )
            )

    def forward(self, x):
        out = self.blocks(x)
        if not self.deeper:
            return out
        skip = out
        out = self.deconv(self.u(self.conv(out)))
        out = out.replace_feature(torch.cat([skip.features, out.features], dim=1))
        return self.blocks_tail(out)


class SparseUNet(nn.Module):
    """`forward(coords[V,4] int (batch, x, y, z), feats[V,in_channels], batch_size) -> [V, channels[0]]`,
    rows in the order of `coords`. Grid coordinates must be >= 0 and unique per batch item."""

    def __init__(self, config: SparseUNetConfig | None = None):
        super().__init__()
        self.config = config or SparseUNetConfig()
        backend = get_backend(self.config.backend)
        self.backend = backend.name
        self._make_tensor = backend.make_tensor
        c = self.config

        def norm(ch: int) -> nn.BatchNorm1d:
            return nn.BatchNorm1d(ch, eps=c.bn_eps, momentum=c.bn_momentum)

        self.input_conv = SparseSequential(backend.subm(c.in_channels, c.channels[0], 3, "subm1"))
        self.unet = UBlock(c.channels, c.blocks_per_level, backend, norm, level=1)
        self.output_layer = SparseSequential(norm(c.channels[0]), nn.ReLU())

    def spatial_shape(self, coords: Tensor) -> tuple[int, int, int]:
        """Grid extent rounded up to a multiple of 2**(levels-1), so that no stride-2 level drops a site."""
        step = 2 ** (len(self.config.channels) - 1)
        extent = coords[:, 1:].max(0).values.to(torch.int64) + 1
        return tuple(int(-(-int(e) // step) * step) for e in extent.tolist())

    def _check(self, coords: Tensor, feats: Tensor, batch_size: int) -> None:
        if not isinstance(coords, Tensor) or coords.ndim != 2 or coords.shape[1] != 4:
            shape = tuple(coords.shape) if isinstance(coords, Tensor) else type(coords).__name__
            raise ModelError(None, f"SparseUNet: coords must be [V,4] (batch, x, y, z), got {shape}")
        if coords.dtype not in (torch.int32, torch.int64):
            raise ModelError(
                None,
                f"SparseUNet: coords must be int32/int64 grid indices, got {coords.dtype} "
                "(voxelize the points first)",
            )
        if not isinstance(feats, Tensor) or feats.ndim != 2 or not feats.is_floating_point():
            raise ModelError(None, "SparseUNet: feats must be a float tensor [V,C]")
        if feats.shape != (coords.shape[0], self.config.in_channels):
            raise ModelError(
                None,
                f"SparseUNet: feats must be [{coords.shape[0]}, "
                f"{self.config.in_channels}], got {tuple(feats.shape)}",
            )
        if feats.device != coords.device:
            raise ModelError(None, f"SparseUNet: coords on {coords.device}, feats on {feats.device}")
        if coords.shape[0] == 0:
            raise ModelError(None, "SparseUNet: empty scene (no voxels)")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ModelError(None, f"SparseUNet: batch_size must be a positive int, got {batch_size!r}")
        b_min, b_max = int(coords[:, 0].min()), int(coords[:, 0].max())
        if b_min < 0 or b_max >= batch_size:
            raise ModelError(
                None, f"SparseUNet: batch column out of range [0, {batch_size}): min {b_min}, max {b_max}"
            )
        if int(coords[:, 1:].min()) < 0:
            raise ModelError(None, "SparseUNet: grid coordinates must be >= 0 (voxelize shifts them)")

    def forward(self, coords: Tensor, feats: Tensor, batch_size: int) -> Tensor:
        self._check(coords, feats, batch_size)
        shape = self.spatial_shape(coords)
        if torch.unique(encode(coords, shape)).shape[0] != coords.shape[0]:
            raise ModelError(None, "SparseUNet: duplicate voxel coordinates (voxelize merges points first)")
        x = self._make_tensor(feats, coords.to(torch.int32), shape, batch_size)
        x = self.output_layer(self.unet(self.input_conv(x)))
        return x.features
