"""Ross3D's reconstruction targets: masked views and the scene's BEV, VAE-encoded onto a token grid.

View targets (REFERENCE §5): the frame de-normalised to [-1, 1], resized to the VAE's input size,
encoded (posterior mean x scale), the latent resized to twice the token grid, and its 2x2 windows
unfolded into channels (`pixel_unshuffle`), so that a frame's target has one vector per visual token:
[F, gh*gw, 4C], row-major like the tokens. `tokens_to_latent` is the inverse, for decoding.

BEV targets: the scene's top-down render through the same VAE onto the BEV grid, with a loss mask per
latent position: the BEV image area-downsampled to the grid, channel mean > 0, i.e. the cell holds at
least one non-empty pixel (the renderer paints empty pixels black). Cells that are all hole are left
out of the loss.

`SceneTargetCache` keeps both per scene on disk (safetensors, written atomically), keyed by the scene,
the VAE's fingerprint, this config and the frame indices, so a run encodes each scene once and a new VAE
or config never reads stale targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.models.errors import ModelError
from core.models.ross3d.vae import FrozenVAE, to_unit_range

if TYPE_CHECKING:
    from core.scene.render import BEVImage
    from core.scene.scannet import Scene


@dataclass
class TargetConfig:
    view_grid: tuple[int, int] = (7, 7)  # the image branch's token grid per frame
    view_size: int = 112  # frames are resized to this before the VAE (a multiple of the VAE's factor)
    bev_size: int = 224  # BEV render size in pixels
    bev_grid: tuple[int, int] = (14, 14)  # BEV latent positions after the 2x2 unfolding

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def render_scene_bev(scene: Scene, size: int) -> BEVImage:
    """The scene's top-down view at `size` px (the renderer's defaults: mesh bounds, 5% margin)."""
    from core.scene.render import MeshRenderer

    return MeshRenderer(scene.mesh).render_bev(image_size=size)


def latent_to_tokens(latent: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """VAE latents [N,C,h,w] -> tokens [N, gh*gw, 4C]: resized to (2gh, 2gw), 2x2 windows to channels."""
    size = (2 * grid[0], 2 * grid[1])
    if tuple(latent.shape[-2:]) != size:
        latent = F.interpolate(latent, size=size, mode="bilinear", align_corners=False)
    tokens = F.pixel_unshuffle(latent, 2)  # [N, 4C, gh, gw]
    return tokens.flatten(2).transpose(1, 2).contiguous()


def tokens_to_latent(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Tokens [N, gh*gw, 4C] -> latents [N, C, 2gh, 2gw] (the inverse of `latent_to_tokens`'s unfolding)."""
    n, t, d = tokens.shape
    if t != grid[0] * grid[1] or d % 4:
        raise ModelError(None, f"tokens {tuple(tokens.shape)} do not fit grid {grid} with 2x2 windows")
    return F.pixel_shuffle(tokens.transpose(1, 2).reshape(n, d, *grid), 2)


def _check_size(vae: FrozenVAE, size: int, what: str) -> None:
    if size % vae.downsample:
        raise ModelError(
            vae.source, f"{what} {size} px is not a multiple of the VAE's factor {vae.downsample}"
        )


def view_targets(
    vae: FrozenVAE,
    pixels: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    config: TargetConfig,
) -> torch.Tensor:
    """Normalised frames [..., 3, S, S] (the encoder's input, e.g. [F,...] or [B,F,...]) -> targets
    [..., gh*gw, 4C] with the same leading dimensions."""
    _check_size(vae, config.view_size, "view_size")
    lead = tuple(pixels.shape[:-3])
    m = torch.tensor(mean, dtype=torch.float32, device=pixels.device)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=pixels.device)[:, None, None]
    images = (pixels.reshape(-1, *pixels.shape[-3:]).to(torch.float32) * s + m) * 2 - 1
    if images.shape[-1] != config.view_size or images.shape[-2] != config.view_size:
        images = F.interpolate(images, size=(config.view_size,) * 2, mode="bicubic", antialias=True)
    tokens = latent_to_tokens(vae.encode_targets(images.clamp(-1, 1)), config.view_grid)
    return tokens.reshape(*lead, *tokens.shape[1:])


def bev_loss_mask(color: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """BEV colours [N,3,S,S] (any range with 0 = empty, e.g. uint8 or [0, 1]) -> [N, gh*gw] bool: the
    area-downsampled image's channel mean > 0, i.e. the cell has at least one non-empty pixel."""
    pooled = F.adaptive_avg_pool2d(color.to(torch.float32), grid)
    return (pooled.mean(dim=1) > 0).flatten(1)


def bev_targets(vae: FrozenVAE, bev: BEVImage, config: TargetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A rendered BEV -> (targets [gh*gw, 4C], loss mask [gh*gw] bool)."""
    _check_size(vae, config.bev_size, "bev_size")
    color = bev.color
    if color.shape[0] != config.bev_size:
        color = np.asarray(Image.fromarray(color).resize((config.bev_size,) * 2, Image.Resampling.BICUBIC))
        color = np.where(bev_empty_at(bev, config.bev_size)[..., None], 0, color).astype(np.uint8)
    chw = torch.from_numpy(np.ascontiguousarray(color)).permute(2, 0, 1)[None]
    tokens = latent_to_tokens(vae.encode_targets(to_unit_range(chw)), config.bev_grid)
    return tokens[0], bev_loss_mask(chw, config.bev_grid)[0]


def bev_empty_at(bev: BEVImage, size: int) -> np.ndarray:
    """The renderer's empty mask at `size` px (nearest), to keep holes black after a resize."""
    return np.asarray(Image.fromarray(bev.empty).resize((size, size), Image.Resampling.NEAREST))


def _frame_images(scene: Scene, indices: list[int], size: int) -> torch.Tensor:
    if scene.frames is None or not scene.frames.frames:
        raise ModelError(scene.folder, f"scene {scene.scene_id} has no RGB-D frames")
    frames = scene.frames.frames
    bad = [i for i in indices if not 0 <= i < len(frames)]
    if bad:
        raise ModelError(scene.folder, f"frame indices {bad} out of range for {len(frames)} frames")
    images = [
        np.asarray(Image.fromarray(frames[i].color()).resize((size, size), Image.Resampling.BICUBIC))
        for i in indices
    ]
    return to_unit_range(torch.from_numpy(np.stack(images)))


@dataclass
class SceneTargets:
    views: torch.Tensor  # [F, gh*gw, 4C] one per frame index, in the order asked for
    bev: torch.Tensor  # [bh*bw, 4C]
    bev_mask: torch.Tensor  # [bh*bw] bool
    frame_indices: list[int]


class SceneTargetCache:
    """Per-scene targets on disk under `folder` (see the module docstring); `folder=None` keeps nothing."""

    def __init__(self, folder: str | Path | None, vae: FrozenVAE, config: TargetConfig):
        self.folder = Path(folder) if folder is not None else None
        self.vae = vae
        self.config = config

    def path(self, scene_id: str, frame_indices: list[int]) -> Path | None:
        if self.folder is None:
            return None
        key = json.dumps([scene_id, self.vae.fingerprint, self.config.key(), list(frame_indices)])
        return self.folder / f"{scene_id}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"

    def compute(self, scene: Scene, frame_indices: list[int]) -> SceneTargets:
        _check_size(self.vae, self.config.view_size, "view_size")
        images = _frame_images(scene, frame_indices, self.config.view_size)
        views = latent_to_tokens(self.vae.encode_targets(images), self.config.view_grid).cpu()
        bev, mask = bev_targets(self.vae, render_scene_bev(scene, self.config.bev_size), self.config)
        return SceneTargets(views, bev.cpu(), mask.cpu(), list(frame_indices))

    def get(self, scene: Scene, frame_indices: list[int]) -> SceneTargets:
        """The scene's targets, read from the cache or computed and written to it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file, save_file

        path = self.path(scene.scene_id, frame_indices)
        if path is not None and path.is_file():
            try:
                data = load_file(str(path))
                return SceneTargets(data["views"], data["bev"], data["bev_mask"].bool(), list(frame_indices))
            except (SafetensorError, OSError, KeyError) as exc:
                raise ModelError(
                    path, f"unreadable target cache file ({exc}); delete it to recompute"
                ) from exc
        targets = self.compute(scene, frame_indices)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                tensors = {
                    "views": targets.views,
                    "bev": targets.bev,
                    "bev_mask": targets.bev_mask.to(torch.uint8),
                }
                save_file(tensors, tmp)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return targets
