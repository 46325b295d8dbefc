"""The spconv 2.x backend of the sparse U-Net, imported lazily, with two fixes for its CPU path.

Why: spconv is the fast path (its CUDA wheels on users' GPUs, its CPU wheel here). Its CPU path has two
faults, both fixed once, on import, by wrapping one name in `spconv.pytorch.ops` (nothing else changes):
- backward asks `torch.cuda.current_stream()` unconditionally and fails without CUDA (REFERENCE §7); the
  CPU kernels only need a stream handle of 0. `patch_cpu_backward` makes `ops.get_current_stream` return
  0 when CUDA is unavailable and the real stream otherwise.
- found here: with more than one torch thread, the gather-mm-scatter loop of `ops.indice_conv` (and its
  backward) gives wrong sums on some rows, differently from run to run (about 1 forward in 4 of a 400-voxel
  SubMConv3d on 2 threads; always right on 1 thread). Replacing `SpconvOps.scatter_add_cpu` with
  `Tensor.index_add_` on the same buffers makes it exact and repeatable (`patch_cpu_scatter`); the CUDA
  kernels are untouched.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from core.models.errors import ModelError

_PATCH_FLAG = "_densescan_cpu_backward_fix"


@functools.cache
def _import():
    """(spconv.pytorch module, cpu_only_build) or raises ImportError."""
    import spconv.pytorch as spconv
    from spconv.cppconstants import CPU_ONLY_BUILD

    patch_cpu_backward()
    patch_cpu_scatter()
    return spconv, bool(CPU_ONLY_BUILD)


def available() -> bool:
    """True when spconv imports."""
    try:
        _import()
    except Exception:  # ImportError, or a broken binary wheel raising OSError / RuntimeError
        return False
    return True


def cpu_only() -> bool:
    """True when the installed spconv is the CPU-only build (it cannot take CUDA tensors)."""
    return _import()[1]


def patch_cpu_backward() -> None:
    """Make spconv's backward work without CUDA; idempotent (guarded by a flag on the wrapper)."""
    from spconv.pytorch import ops

    original = ops.get_current_stream
    if getattr(original, _PATCH_FLAG, False):
        return

    def get_current_stream():
        return original() if torch.cuda.is_available() else 0

    setattr(get_current_stream, _PATCH_FLAG, True)
    ops.get_current_stream = get_current_stream


class _TorchScatterOps:
    """Stands in for `SpconvOps` inside `spconv.pytorch.ops`: every attribute is the original's except
    `scatter_add_cpu`, done with torch on zero-copy views of the same CPU buffers."""

    def __init__(self, original):
        self._original = original

    def __getattr__(self, name: str):
        return getattr(self._original, name)

    def scatter_add_cpu(self, out, buffer, indices) -> None:
        index = torch.from_numpy(indices.numpy_view()).long()
        target = torch.from_numpy(out.numpy_view())
        source = torch.from_numpy(buffer.numpy_view())[: index.shape[0]]
        target.index_add_(0, index, source)


def patch_cpu_scatter() -> None:
    """Route spconv's CPU scatter-add through torch (see the module docstring); idempotent."""
    from spconv.pytorch import ops

    if not isinstance(ops.SpconvOps, _TorchScatterOps):
        ops.SpconvOps = _TorchScatterOps(ops.SpconvOps)


def subm(in_channels: int, out_channels: int, kernel_size: int, indice_key: str | None) -> nn.Module:
    spconv, _ = _import()
    return spconv.SubMConv3d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False,
                             indice_key=indice_key)


def down(in_channels: int, out_channels: int, indice_key: str) -> nn.Module:
    spconv, _ = _import()
    return spconv.SparseConv3d(in_channels, out_channels, 2, stride=2, bias=False, indice_key=indice_key)


def inverse(in_channels: int, out_channels: int, indice_key: str) -> nn.Module:
    spconv, _ = _import()
    return spconv.SparseInverseConv3d(in_channels, out_channels, 2, bias=False, indice_key=indice_key)


def make_tensor(feats: Tensor, coords: Tensor, spatial_shape: tuple[int, int, int], batch_size: int):
    spconv, cpu_only_build = _import()
    if cpu_only_build and feats.is_cuda:
        raise ModelError(None, "sparse U-Net backend 'spconv' is spconv's CPU-only wheel and got CUDA "
                               "tensors: build the model with backend='torch' (same weights) "
                               "or install spconv-cu12x")
    indices = coords.to(torch.int32).contiguous()
    return spconv.SparseConvTensor(feats, indices, list(spatial_shape), batch_size)
