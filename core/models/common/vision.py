"""The vision encoder of the image branch: transformers' SigLIP (or CLIP) vision tower, and its projector.

Two ways to get one, never a hub download:

- `VisionConfig(path=None)`: a small `SiglipVisionModel` built from the config's fields (the project's
  default, trained here from scratch).
- `VisionConfig(path="/local/siglip-so400m-patch14-384")`: a local SigLIP or CLIP checkpoint folder (a
  full SigLIP/CLIP model or a vision-only one), loaded with `local_files_only=True`; image size, patch size
  and width come from its config.json, mean/std from its preprocessor_config.json. The size fields of
  `VisionConfig` are then ignored.

Features are the hidden states of layer `select_layer` (-1: the last layer, after SigLIP's final
LayerNorm; -2: the penultimate layer, what LLaVA uses with real weights), CLIP's class token dropped.
Layers above the selected one are removed, and modules whose output is never used (SigLIP's pooling head,
an unused final LayerNorm) are replaced by identities, so no parameter goes without a gradient under DDP.
`pool` > 1 average-pools the patch grid (Ross3D / LLaVA-Video use 2x2; an odd grid gets a partial last
window, as `ceil` pooling does, matching `pos3d.patch_xyz(pool=...)`). Pooling happens before the
projector here (the projector is per token; LLaVA-Video pools after it, which matters only when loading
its projector weights).

Preprocessing is a plain resize (bicubic, as the HF processors do) of the whole frame to the encoder's
square input, no centre crop, so the patch grid covers the full view and `pos3d.patch_xyz` can place the
depth pixels by their fractional image position without resampling the depth map.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

from core.models.errors import ModelError

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_KINDS = {
    "siglip": "siglip",
    "siglip_vision_model": "siglip",
    "clip": "clip",
    "clip_vision_model": "clip",
}
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class VisionConfig:
    """The vision tower: a local checkpoint `path`, or a SigLIP built from the size fields."""

    path: str | None = None
    image_size: int = 112
    patch_size: int = 16
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int | None = None  # MLP width; None = 4 * hidden
    select_layer: int = -1
    pool: int = 1
    image_mean: tuple[float, float, float] | None = None  # None: preprocessor_config.json or the kind's
    image_std: tuple[float, float, float] | None = None
    freeze: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> VisionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(source, f"vision config: unknown field(s) {unknown}")
        values = dict(data)
        for key in ("image_mean", "image_std"):
            if values.get(key) is not None:
                values[key] = tuple(float(x) for x in values[key])
        return cls(**values)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(path, f"cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(path, "expected a JSON object")
    return data


def _tiny_siglip(config: VisionConfig) -> SiglipVisionModel:
    if config.hidden % config.heads:
        raise ModelError(
            None, f"vision config: hidden {config.hidden} is not divisible by heads {config.heads}"
        )
    if config.image_size % config.patch_size:
        raise ModelError(
            None,
            f"vision config: image_size {config.image_size} is not a multiple of "
            f"patch_size {config.patch_size}",
        )
    hf = SiglipVisionConfig(
        image_size=config.image_size,
        patch_size=config.patch_size,
        hidden_size=config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        intermediate_size=config.intermediate or 4 * config.hidden,
        vision_use_head=False,
    )
    return SiglipVisionModel(hf)


def _local_model(path: Path, load_weights: bool) -> tuple[nn.Module, str, dict[str, Any]]:
    """(model, kind, preprocessor config) of a local SigLIP/CLIP folder."""
    if not path.is_dir():
        raise ModelError(path, "vision encoder folder not found")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelError(cfg_file, "missing: a local SigLIP/CLIP checkpoint needs its config.json")
    model_type = _read_json(cfg_file).get("model_type")
    kind = _KINDS.get(model_type)
    if kind is None:
        raise ModelError(cfg_file, f"model_type {model_type!r} is not a SigLIP or CLIP (vision) model")
    model_cls, config_cls = (
        (SiglipVisionModel, SiglipVisionConfig) if kind == "siglip" else (CLIPVisionModel, CLIPVisionConfig)
    )
    extra = {"vision_use_head": False} if kind == "siglip" else {}
    if load_weights and not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ModelError(path, f"no weights found (looked for {', '.join(_WEIGHT_FILES)})")
    try:
        if load_weights:
            model, info = model_cls.from_pretrained(
                path, local_files_only=True, output_loading_info=True, dtype=torch.float32, **extra
            )
        else:  # the weights come later, from a checkpoint of the whole model
            model, info = model_cls(config_cls.from_pretrained(path, local_files_only=True, **extra)), {}
    except (OSError, ValueError, RuntimeError, StrictDataclassError) as exc:
        raise ModelError(path, f"cannot load the vision encoder ({type(exc).__name__}: {exc})") from exc
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise ModelError(path, f"weights lack {len(missing)} vision tensor(s), e.g. {missing[:3]}")
    if info.get("mismatched_keys"):
        raise ModelError(path, f"weights do not match config.json: {list(info['mismatched_keys'])[:3]}")
    pre_file = path / "preprocessor_config.json"
    return model, kind, _read_json(pre_file) if pre_file.is_file() else {}


class VisionEncoder(nn.Module):
    """Frames [F,3,S,S] (normalised) -> patch tokens [F,P,D] on the (pooled) grid `grid`."""

    def __init__(self, config: VisionConfig, load_weights: bool = True):
        super().__init__()
        self.config = config
        preprocessor: dict[str, Any] = {}
        if config.path is None:
            self.model, self.kind = _tiny_siglip(config), "siglip"
        else:
            self.model, self.kind, preprocessor = _local_model(Path(config.path), load_weights)
        hf = self.model.config
        self.image_size = int(hf.image_size)
        self.patch_size = int(hf.patch_size)
        self.hidden_size = int(hf.hidden_size)
        side = self.image_size // self.patch_size
        self.patch_grid = (side, side)
        # The patch convolution drops the last image_size % patch_size pixels (384 px / 14: 27 patches).
        self.grid_extent = (side * self.patch_size / self.image_size,) * 2
        if config.pool < 1:
            raise ModelError(config.path, f"vision config: pool must be >= 1, got {config.pool}")
        self.grid = (-(-side // config.pool), -(-side // config.pool))
        default_mean, default_std = (
            (SIGLIP_MEAN, SIGLIP_STD) if self.kind == "siglip" else (CLIP_MEAN, CLIP_STD)
        )
        self.image_mean = tuple(config.image_mean or preprocessor.get("image_mean") or default_mean)
        self.image_std = tuple(config.image_std or preprocessor.get("image_std") or default_std)
        self._keep_used_layers(config.select_layer)
        if config.freeze:
            self.model.requires_grad_(False)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def _keep_used_layers(self, select_layer: int) -> None:
        layers = self.model.encoder.layers
        total = len(layers)
        keep = select_layer if select_layer >= 0 else total + select_layer + 1
        if not 1 <= keep <= total:
            raise ModelError(
                self.config.path, f"select_layer {select_layer} is out of range for {total} layers"
            )
        self.model.encoder.layers = layers[:keep]
        self.model.config.num_hidden_layers = keep
        # SigLIP's last LayerNorm belongs to its last layer's output; CLIP's only feeds the pooled output.
        if self.kind == "clip" or keep < total:
            self.model.post_layernorm = nn.Identity()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [F,3,S,S] as `preprocess_images` makes them -> tokens [F, gh*gw, D] (pooled grid)."""
        size = self.image_size
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3, size, size):
            raise ModelError(
                None, f"vision encoder: expected pixels [F,3,{size},{size}], got {tuple(pixels.shape)}"
            )
        param = next(self.model.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze):
            hidden = self.model(pixel_values=pixels.to(param.dtype)).last_hidden_state
        if self.kind == "clip":
            hidden = hidden[:, 1:]
        return pool_tokens(hidden, self.patch_grid, self.config.pool)


def pool_tokens(tokens: torch.Tensor, grid: tuple[int, int], pool: int) -> torch.Tensor:
    """Average-pool tokens [F, gh*gw, D] over pool x pool blocks of the grid (ceil mode)."""
    if pool == 1:
        return tokens
    frames, _, dim = tokens.shape
    maps = tokens.transpose(1, 2).reshape(frames, dim, grid[0], grid[1])
    pooled = nn.functional.avg_pool2d(maps, pool, pool, ceil_mode=True)
    return pooled.flatten(2).transpose(1, 2)


class Projector(nn.Sequential):
    """Vision width -> LLM width. "mlp2x_gelu" is LLaVA's Linear-GELU-Linear (same state_dict keys, 0.* and
    2.*), "linear" a single Linear."""

    KINDS = ("mlp2x_gelu", "linear")

    def __init__(self, in_dim: int, out_dim: int, kind: str = "mlp2x_gelu"):
        if kind == "mlp2x_gelu":
            super().__init__(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        elif kind == "linear":
            super().__init__(nn.Linear(in_dim, out_dim))
        else:
            raise ModelError(None, f"projector kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind


def preprocess_images(
    images: list[np.ndarray],
    image_size: int,
    mean: tuple[float, ...] = SIGLIP_MEAN,
    std: tuple[float, ...] = SIGLIP_STD,
) -> torch.Tensor:
    """RGB uint8 frames (H,W,3), any size -> float32 [F,3,S,S]: bicubic resize of the whole frame (no crop),
    /255, (x - mean) / std. This is what SigLIP's processor does; CLIP's crop is skipped on purpose (see
    the module docstring)."""
    out = np.empty((len(images), 3, image_size, image_size), dtype=np.float32)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    for i, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ModelError(
                None, f"frame {i}: expected an (H,W,3) uint8 RGB image, got {image.dtype} {image.shape}"
            )
        resized = Image.fromarray(image).resize((image_size, image_size), Image.Resampling.BICUBIC)
        out[i] = (np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0 - m) / s
    return torch.from_numpy(out)


def stack_depth(depths: list[np.ndarray]) -> torch.Tensor:
    """Depth maps (H,W) in metres -> [F,H,W] float32, at their own resolution (they are not resized: see
    the module docstring); all frames of a scan share one size, and a mismatch is an error."""
    if not depths:
        raise ModelError(None, "no depth maps given")
    shape = depths[0].shape
    for i, d in enumerate(depths):
        if d.ndim != 2 or d.shape != shape:
            raise ModelError(None, f"depth map {i} has shape {d.shape}, expected {shape} like the first")
    return torch.from_numpy(np.stack(depths).astype(np.float32, copy=False))
