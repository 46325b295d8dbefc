"""Sparse 3D convolution in pure PyTorch: gather -> matmul -> scatter over the index pairs of a voxel hash.

Why: spconv's CUDA wheel is not on every GPU machine (REFERENCE §7), so the U-Net must also run on plain
torch, on CPU and CUDA, with the same weights. For each kernel offset k the (input row, output row) pairs
are found once per level (`hash.VoxelHash`), then out[o] += x[i] @ W_k. A custom autograd function keeps
only the inputs and the pairs for backward (not the gathered copies), and the inverse convolution reuses
the down convolution's pairs with input and output swapped, as spconv's `indice_key` does.

Weights are held exactly as spconv 2.x holds them, [out, kx, ky, kz, in] (kernel offset k = kx*K*K + ky*K
+ kz, offset d = k - K//2 per axis, out[p] += W_k x[p + d]: a correlation), and converted to [K, in, out]
on the fly, so state_dicts are interchangeable with the spconv backend. One quirk is copied on purpose:
spconv 2.3 computes a 1x1 SubMConv3d as `features @ weight.view(in, out)` (its FILTER_HWIO=False path), i.e.
it reads the same [out, 1, 1, 1, in] memory as an [in, out] matrix; doing the same keeps spconv-trained
checkpoints (SPFormer's shortcut convolutions included) giving equal outputs here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from core.models.common.sparse.hash import MARGIN, VoxelHash, decode, encode
from core.models.errors import ModelError


@dataclass
class Pairs:
    """Index pairs of one sparse convolution: pairs of kernel offset k are inp/out[bounds[k]:bounds[k+1]];
    `center` names an offset whose pairs are the identity (a submanifold centre: done as one matmul)."""

    inp: Tensor
    out: Tensor
    bounds: tuple[int, ...]
    num_in: int
    num_out: int
    center: int | None = None

    def transposed(self) -> Pairs:
        return Pairs(self.out, self.inp, self.bounds, self.num_out, self.num_in, self.center)


class TorchSparseTensor:
    """Features on sparse sites, with the per-forward cache of index pairs (`indice_dict`, shared by every
    tensor derived from the same input, like spconv's SparseConvTensor)."""

    def __init__(self, features: Tensor, indices: Tensor, spatial_shape: tuple[int, int, int],
                 batch_size: int, indice_dict: dict | None = None):
        self.features = features
        self.indices = indices
        self.spatial_shape = tuple(int(s) for s in spatial_shape)
        self.batch_size = batch_size
        self.indice_dict = {} if indice_dict is None else indice_dict

    def replace_feature(self, features: Tensor) -> TorchSparseTensor:
        return TorchSparseTensor(features, self.indices, self.spatial_shape, self.batch_size,
                                 self.indice_dict)


def subm_pairs(coords: Tensor, spatial_shape: tuple[int, int, int], kernel_size: int) -> Pairs:
    """Pairs of a submanifold convolution: output sites = input sites; offset d pairs p with p + d."""
    r = kernel_size // 2
    if r > MARGIN:
        raise ModelError(None, f"torch sparse backend: kernel_size {kernel_size} > {2 * MARGIN + 1} "
                               "unsupported")
    table = VoxelHash(coords, spatial_shape)
    keys = encode(coords, spatial_shape)
    rows = torch.arange(coords.shape[0], device=coords.device)
    sy, sz = spatial_shape[1] + 2 * MARGIN, spatial_shape[2] + 2 * MARGIN
    offsets = list(itertools.product(range(-r, r + 1), repeat=3))
    center = len(offsets) // 2
    found: dict[int, tuple[Tensor, Tensor]] = {center: (rows, rows)}
    for k in range(center):  # offset -d is the mirror of d: (out p, in p + d) <-> (out p + d, in p)
        dx, dy, dz = offsets[k]
        hit = table.lookup_keys(keys + (dx * sy + dy) * sz + dz)
        mask = hit >= 0
        inp, out = hit[mask], rows[mask]
        found[k] = (inp, out)
        found[len(offsets) - 1 - k] = (out, inp)
    return _pack([found[k] for k in range(len(offsets))], coords.shape[0], coords.shape[0], center)


def down_pairs(coords: Tensor, spatial_shape: tuple[int, int, int]
               ) -> tuple[Pairs, Tensor, tuple[int, int, int]]:
    """Pairs of a kernel-2 stride-2 convolution: site p feeds output floor(p / 2) through offset p mod 2.
    Returns the pairs, the output sites (sorted by key) and the output grid shape."""
    c = coords.to(torch.int64)
    half = torch.cat([c[:, :1], torch.div(c[:, 1:], 2, rounding_mode="floor")], dim=1)
    out_shape = tuple((s + 1) // 2 for s in spatial_shape)
    out_keys, inverse = torch.unique(encode(half, out_shape), sorted=True, return_inverse=True)
    parity = (c[:, 1] & 1) * 4 + (c[:, 2] & 1) * 2 + (c[:, 3] & 1)
    order = torch.argsort(parity, stable=True)
    counts = torch.bincount(parity, minlength=8).tolist()
    bounds = tuple(itertools.accumulate(counts, initial=0))
    pairs = Pairs(order, inverse[order], bounds, c.shape[0], out_keys.shape[0])
    return pairs, decode(out_keys, out_shape), out_shape


def _pack(per_offset: list[tuple[Tensor, Tensor]], num_in: int, num_out: int, center: int | None) -> Pairs:
    counts = [int(inp.shape[0]) for inp, _ in per_offset]
    bounds = tuple(itertools.accumulate(counts, initial=0))
    return Pairs(torch.cat([p[0] for p in per_offset]), torch.cat([p[1] for p in per_offset]), bounds,
                 num_in, num_out, center)


class _GatherMatmulScatter(torch.autograd.Function):
    """out[o] += feats[i] @ weight[k] over the pairs of every offset k; weight is [K, in, out]."""

    @staticmethod
    def forward(ctx, feats: Tensor, weight: Tensor, inp: Tensor, out_idx: Tensor, bounds: tuple[int, ...],
                num_out: int, center: int | None) -> Tensor:
        if center is not None:
            out = feats @ weight[center]
        else:
            out = feats.new_zeros(num_out, weight.shape[2])
        for k in range(weight.shape[0]):
            s, e = bounds[k], bounds[k + 1]
            if k != center and e > s:
                out.index_add_(0, out_idx[s:e], feats.index_select(0, inp[s:e]) @ weight[k])
        ctx.save_for_backward(feats, weight, inp, out_idx)
        ctx.bounds, ctx.center = bounds, center
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        feats, weight, inp, out_idx = ctx.saved_tensors
        bounds, center = ctx.bounds, ctx.center
        grad_out = grad_out.to(feats.dtype)
        want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(feats) if want_x else None
        grad_w = torch.zeros_like(weight) if want_w else None
        for k in range(weight.shape[0]):
            s, e = bounds[k], bounds[k + 1]
            if k == center:
                if want_x:
                    grad_x += grad_out @ weight[k].T
                if want_w:
                    grad_w[k] = feats.T @ grad_out
                continue
            if e == s:
                continue
            g = grad_out.index_select(0, out_idx[s:e])
            if want_x:
                grad_x.index_add_(0, inp[s:e], g @ weight[k].T)
            if want_w:
                grad_w[k] = feats.index_select(0, inp[s:e]).T @ g
        return grad_x, grad_w, None, None, None, None, None


def sparse_conv(feats: Tensor, weight: Tensor, pairs: Pairs) -> Tensor:
    """Apply a spconv-layout weight [out, k, k, k, in] over `pairs`; follows autocast's dtype when on."""
    device = feats.device.type
    if torch.is_autocast_enabled(device):
        feats = feats.to(torch.get_autocast_dtype(device))
    out_ch, in_ch = weight.shape[0], weight.shape[-1]
    w = weight.to(feats.dtype).reshape(out_ch, -1, in_ch).permute(1, 2, 0)  # [K, in, out]
    with torch.autocast(device, enabled=False):
        return _GatherMatmulScatter.apply(feats, w, pairs.inp, pairs.out, pairs.bounds, pairs.num_out,
                                          pairs.center)


class _Conv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, indice_key: str | None):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.indice_key = indice_key
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, k, k, k, in_channels))
        bound = 1.0 / (in_channels * k**3) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"key={self.indice_key}")


class SubMConv3d(_Conv):
    """Submanifold convolution (output sites = input sites), kernel 1 or 3, no bias."""

    def forward(self, x: TorchSparseTensor) -> TorchSparseTensor:
        if self.kernel_size == 1:  # spconv 2.3's 1x1 path reads the [out,1,1,1,in] memory as [in, out]
            return x.replace_feature(x.features @ self.weight.reshape(self.in_channels, self.out_channels))
        cached = x.indice_dict.get(self.indice_key) if self.indice_key else None
        if cached is not None and cached[0] == "subm" and cached[1].num_in == x.features.shape[0]:
            pairs = cached[1]
        else:
            pairs = subm_pairs(x.indices, x.spatial_shape, self.kernel_size)
            if self.indice_key:
                x.indice_dict[self.indice_key] = ("subm", pairs)
        return x.replace_feature(sparse_conv(x.features, self.weight, pairs))


class SparseConv3d(_Conv):
    """Kernel-2 stride-2 down convolution; records its pairs under `indice_key` for the inverse."""

    def forward(self, x: TorchSparseTensor) -> TorchSparseTensor:
        pairs, coords, shape = down_pairs(x.indices, x.spatial_shape)
        x.indice_dict[self.indice_key] = ("down", pairs, x.indices, x.spatial_shape)
        feats = sparse_conv(x.features, self.weight, pairs)
        return TorchSparseTensor(feats, coords, shape, x.batch_size, x.indice_dict)


class SparseInverseConv3d(_Conv):
    """Inverse of the down convolution with the same `indice_key`: back onto its input sites, same order."""

    def forward(self, x: TorchSparseTensor) -> TorchSparseTensor:
        cached = x.indice_dict.get(self.indice_key)
        if cached is None or cached[0] != "down":
            raise ModelError(None, "inverse convolution: no down convolution recorded under "
                                   f"{self.indice_key!r}")
        _, pairs, coords, shape = cached
        if pairs.num_out != x.features.shape[0]:
            raise ModelError(None, f"inverse convolution {self.indice_key!r}: {x.features.shape[0]} sites, "
                                   f"the down convolution made {pairs.num_out}")
        feats = sparse_conv(x.features, self.weight, pairs.transposed())
        return TorchSparseTensor(feats, coords, shape, x.batch_size, x.indice_dict)


def subm(in_channels: int, out_channels: int, kernel_size: int, indice_key: str | None) -> nn.Module:
    return SubMConv3d(in_channels, out_channels, kernel_size, indice_key)


def down(in_channels: int, out_channels: int, indice_key: str) -> nn.Module:
    return SparseConv3d(in_channels, out_channels, 2, indice_key)


def inverse(in_channels: int, out_channels: int, indice_key: str) -> nn.Module:
    return SparseInverseConv3d(in_channels, out_channels, 2, indice_key)


def make_tensor(feats: Tensor, coords: Tensor, spatial_shape: tuple[int, int, int], batch_size: int):
    return TorchSparseTensor(feats, coords, spatial_shape, batch_size)
