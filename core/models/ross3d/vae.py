"""Ross3D's frozen VAE: images in [-1, 1] -> scaled latents (the reconstruction targets) and back.

Ross3D encodes its targets (masked views and the BEV) with a frozen image VAE (FLUX's in the paper). No
VAE weights can be downloaded here, so the default is a small diffusers `AutoencoderKL` trained by
`python -m core.models.ross3d.train_vae` on generated frames and BEV renders and shipped in
`assets/ross3d_vae/` (diffusers' own folder layout: config.json + diffusion_pytorch_model.safetensors).
Any local diffusers VAE folder (a FLUX / SD VAE, or a pipeline folder with a `vae/` subfolder) loads
the same way for real weights.

`FrozenVAE` is deliberately *not* an `nn.Module`: it never enters a model's state dict, its optimizer
groups or DDP, and it stays in eval mode and float32 whatever the model around it does. Targets are
deterministic: the posterior mean, shifted by `shift_factor` (FLUX has one; SD and ours use 0) and
multiplied by `scaling_factor` (chosen at training time so the latents have unit standard deviation).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from core.models.errors import ModelError

DEFAULT_VAE_DIR = Path(__file__).resolve().parents[3] / "assets" / "ross3d_vae"
_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def small_vae_config(
    latent_channels: int = 8,
    channels: tuple[int, ...] = (16, 32, 64, 64),
    sample_size: int = 112,
    norm_groups: int = 4,
) -> dict[str, Any]:
    """AutoencoderKL keyword arguments of the shipped default: len(channels) - 1 halvings (8x for four).

    Few GroupNorm groups on purpose: with one channel per group (16 groups over 16 channels) the first
    norm is an instance norm, which removes each feature map's mean, and flat colours came back brown
    (measured: pure green -> (0.41, 0.25, 0.14)); several channels per group keep the colour."""
    bad = [c for c in channels if c % norm_groups]
    if bad:
        raise ModelError(None, f"vae config: channels {bad} are not divisible by norm_groups {norm_groups}")
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels),
        "layers_per_block": 1,
        "latent_channels": latent_channels,
        "norm_num_groups": norm_groups,
        "sample_size": sample_size,
        "scaling_factor": 1.0,
        "mid_block_add_attention": False,  # convolutional only: any input size, cheap on a CPU
    }


def _vae_folder(path: Path) -> Path:
    """`path` itself when it holds a VAE, or its `vae/` subfolder (a diffusers pipeline folder)."""
    if not path.is_dir():
        raise ModelError(path, "VAE folder not found (a local diffusers AutoencoderKL folder is needed)")
    for folder in (path, path / "vae"):
        if (folder / "config.json").is_file() and any((folder / w).is_file() for w in _WEIGHTS):
            return folder
    if not (path / "config.json").is_file():
        raise ModelError(path / "config.json", "missing: not a diffusers VAE folder")
    raise ModelError(path, f"no VAE weights (looked for {', '.join(_WEIGHTS)})")


class FrozenVAE:
    """A frozen `AutoencoderKL` with the two calls Ross3D needs; see the module docstring."""

    def __init__(self, vae: Any, source: str | Path | None = None):
        self.vae = vae.eval().requires_grad_(False)
        if vae.dtype != torch.float32:
            self.vae.to(torch.float32)
        self.source = str(source) if source is not None else None
        cfg = vae.config
        self.latent_channels = int(cfg.latent_channels)
        self.downsample = 2 ** (len(cfg.block_out_channels) - 1)
        self.image_size = int(cfg.sample_size)
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)
        self._fingerprint: str | None = None

    # -- loading / saving
    @classmethod
    def load(cls, path: str | Path | None = None) -> FrozenVAE:
        """The VAE in a local folder (default: the shipped one); never a hub name."""
        from diffusers import AutoencoderKL

        folder = _vae_folder(Path(path) if path is not None else DEFAULT_VAE_DIR)
        try:
            vae = AutoencoderKL.from_pretrained(folder, local_files_only=True, torch_dtype=torch.float32)
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise ModelError(folder, f"cannot load the VAE ({type(exc).__name__}: {exc})") from exc
        return cls(vae, folder)

    def save(self, folder: str | Path) -> None:
        """diffusers' `save_pretrained` (config.json + safetensors) into `folder`."""
        self.vae.save_pretrained(str(folder), safe_serialization=True)

    def to(self, device: torch.device | str) -> FrozenVAE:
        self.vae.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def fingerprint(self) -> str:
        """A short hash of the config and the weights: part of every target-cache key."""
        if self._fingerprint is None:
            h = hashlib.sha256(json.dumps(dict(self.vae.config), sort_keys=True, default=str).encode())
            for name, tensor in sorted(self.vae.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def latent_size(self, image_size: int) -> int:
        return image_size // self.downsample

    # -- the two calls
    @torch.no_grad()
    def encode_targets(self, images: torch.Tensor) -> torch.Tensor:
        """images [N,3,H,W] in [-1, 1] -> latents [N,C,H/f,W/f]: (posterior mean - shift) * scale."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ModelError(self.source, f"VAE input must be [N,3,H,W], got {tuple(images.shape)}")
        with torch.autocast(self.device.type, enabled=False):  # float32 targets under a bf16 run too
            dist = self.vae.encode(images.to(self.device, torch.float32)).latent_dist
        return (dist.mean - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [N,C,h,w] -> images [N,3,h*f,w*f] in [-1, 1]."""
        z = latents.to(self.device, torch.float32) / self.scaling_factor + self.shift_factor
        with torch.autocast(self.device.type, enabled=False):
            return self.vae.decode(z).sample.clamp(-1, 1)


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,H,W,3] (or [N,3,H,W]) images -> float [N,3,H,W] in [-1, 1]."""
    x = images_uint8
    if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    return x.to(torch.float32) / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [N,3,H,W] in [-1, 1] -> uint8 [N,H,W,3]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
