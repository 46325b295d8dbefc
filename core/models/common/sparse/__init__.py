"""Sparse 3D convolution backends behind `core.models.common.sparse_unet`: spconv where it imports
(`spconv_backend`) and a pure-PyTorch gather-matmul-scatter implementation (`torch_backend`, over the voxel
hash of `hash`). Both take and give the same tensors and hold weights in spconv 2.x's [out, k, k, k, in]
layout, so a checkpoint trained with one loads in the other.

`get_backend("auto")` picks spconv when it imports and can serve the machine (its CPU-only wheel is not
used when CUDA is available), else the pure-torch one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from core.models.errors import ModelError

BACKENDS = ("auto", "spconv", "torch")


@dataclass(frozen=True)
class Backend:
    """The four constructors a U-Net needs; see `torch_backend` for their meaning."""

    name: str
    subm: Callable
    down: Callable
    inverse: Callable
    make_tensor: Callable


def resolve(name: str) -> str:
    """'auto' -> 'spconv' or 'torch'; checks that an explicit 'spconv' imports."""
    import torch

    from core.models.common.sparse import spconv_backend

    if name not in BACKENDS:
        raise ModelError(None, f"sparse backend must be one of {BACKENDS}, got {name!r}")
    if name == "auto":
        usable = spconv_backend.available() and not (spconv_backend.cpu_only() and torch.cuda.is_available())
        return "spconv" if usable else "torch"
    if name == "spconv" and not spconv_backend.available():
        raise ModelError(None, "sparse backend 'spconv' requested but spconv does not import; "
                               "use 'torch' or 'auto'")
    return name


def get_backend(name: str) -> Backend:
    """The backend called `name` ('auto' resolved)."""
    from core.models.common.sparse import spconv_backend, torch_backend

    resolved = resolve(name)
    module: ModuleType = spconv_backend if resolved == "spconv" else torch_backend
    return Backend(resolved, module.subm, module.down, module.inverse, module.make_tensor)
