"""The image branch of Dense3D and Ross3D: a scene's frames -> visual tokens with 3D positions.

    frames (k chosen by `frame_select`) -> VisionEncoder (optional 2x2 pooling) -> Projector -> tokens
    depth + intrinsics + pose -> pos3d.patch_xyz (same grid) -> sinusoidal_3d -> added to the tokens

Where the 3D embedding is added is `pos_embed_at`: "llm" (default) adds it after the projector at the LLM
width, as Video-3D-LLM / Ross3D add it to the visual tokens; "vision" adds it to the encoder's tokens
before the projector (LLaVA-3D's place). Ross3D's masked frames (`frame_mask`) have their tokens replaced
by one learnable mask token at that same point, before the embedding is added, so a masked frame keeps its
position but loses its content. Patches without depth get no embedding (pos3d).

`load_frames` reads the chosen frames of a loaded `Scene` into a `FrameInputs` (numpy/PIL work that belongs
in a data loader); `ImageBranch.forward` takes those tensors, for one scene [F,...] or a batch [B,F,...],
or precomputed patch positions (`xyz`/`valid`, e.g. from a dataset cache) instead of depth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from core.models.common.frame_select import select_frames
from core.models.common.pos3d import DEFAULT_CLAMP, DEFAULT_STEP, patch_xyz, sinusoidal_3d
from core.models.common.vision import Projector, VisionConfig, VisionEncoder, preprocess_images, stack_depth
from core.models.errors import ModelError

if TYPE_CHECKING:
    from core.scene.scannet import Scene


@dataclass
class ImageBranchConfig:
    """Everything the image branch needs besides the LLM width it projects to."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    out_dim: int = 256
    projector: str = "mlp2x_gelu"
    pos_embed: bool = True
    pos_embed_at: str = "llm"  # "llm": after the projector; "vision": before it
    pos_clamp: tuple[tuple[float, float], ...] = DEFAULT_CLAMP
    pos_step: float = DEFAULT_STEP
    mask_token: bool = False  # Ross3D's learnable token for masked frames
    num_frames: int = 8
    frame_selection: str = "coverage"  # or "uniform" (frame_select)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> ImageBranchConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ModelError(source, f"image branch config: unknown field(s) {unknown}")
        values = dict(data)
        if isinstance(values.get("vision"), dict):
            values["vision"] = VisionConfig.from_dict(values["vision"], source)
        if "pos_clamp" in values:
            values["pos_clamp"] = tuple((float(lo), float(hi)) for lo, hi in values["pos_clamp"])
        return cls(**values)


@dataclass
class FrameInputs:
    """The chosen frames of one scene, ready for `ImageBranch` (tensors on the CPU until `.to`)."""

    pixels: torch.Tensor  # [F,3,S,S] normalised
    depth: torch.Tensor  # [F,H,W] metres at the depth camera's resolution, 0 = none
    intrinsics: torch.Tensor  # [F,3,3] depth intrinsics
    cam_to_world: torch.Tensor  # [F,4,4] axis-aligned
    frame_indices: list[int]
    # What the depth and poses alone decide (patch positions, which patches lie in a box), computed once per
    # scene's frames and shared with every copy `.to` makes: recomputed per sample it was half of a CPU
    # training step. New frames (another scene, `blank`) start with an empty memo.
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def to(self, device: torch.device | str) -> FrameInputs:
        return FrameInputs(
            self.pixels.to(device),
            self.depth.to(device),
            self.intrinsics.to(device),
            self.cam_to_world.to(device),
            self.frame_indices,
            self.memo,
        )

    def remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked of these frames, the kept result after."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


@dataclass
class ImageTokens:
    """Visual tokens of one scene ([F*P, ...]) or a batch ([B, F*P, ...]), frame-major."""

    tokens: torch.Tensor  # [.., F*P, D_out]
    xyz: torch.Tensor  # [.., F*P, 3] mean patch position, 0 where invalid
    valid: torch.Tensor  # [.., F*P] bool: the patch has depth
    grid: tuple[int, int]  # patch grid per frame (after pooling)
    num_frames: int


def load_frames(scene: Scene, indices: list[int], encoder: VisionEncoder) -> FrameInputs:
    """Read frames `indices` of a loaded scene and preprocess them for `encoder`."""
    if scene.frames is None or not scene.frames.frames:
        raise ModelError(scene.folder, f"scene {scene.scene_id} has no RGB-D frames")
    frames = scene.frames.frames
    bad = [i for i in indices if not 0 <= i < len(frames)]
    if bad or not indices:
        raise ModelError(
            scene.folder, f"frame indices {bad or indices} out of range for {len(frames)} frames"
        )
    chosen = [frames[i] for i in indices]
    pixels = preprocess_images(
        [f.color() for f in chosen], encoder.image_size, encoder.image_mean, encoder.image_std
    )
    depth = stack_depth([f.depth() for f in chosen])
    K = torch.from_numpy(np.asarray(scene.frames.depth_intrinsics, dtype=np.float32)[:3, :3].copy())
    poses = torch.from_numpy(np.stack([f.pose for f in chosen]).astype(np.float32))
    return FrameInputs(pixels, depth, K.expand(len(chosen), 3, 3).clone(), poses, list(indices))


class ImageBranch(nn.Module):
    """Encoder + projector + 3D position embedding (+ optional mask token); see the module docstring."""

    def __init__(self, config: ImageBranchConfig, load_weights: bool = True):
        super().__init__()
        if config.pos_embed_at not in ("llm", "vision"):
            raise ModelError(
                None, f"image branch: pos_embed_at must be 'llm' or 'vision', got {config.pos_embed_at!r}"
            )
        self.config = config
        self.encoder = VisionEncoder(config.vision, load_weights=load_weights)
        self.projector = Projector(self.encoder.hidden_size, config.out_dim, config.projector)
        self.embed_dim = config.out_dim if config.pos_embed_at == "llm" else self.encoder.hidden_size
        self.mask_token = nn.Parameter(torch.zeros(self.embed_dim)) if config.mask_token else None
        if self.mask_token is not None:
            nn.init.normal_(self.mask_token, std=0.02)

    @property
    def grid(self) -> tuple[int, int]:
        return self.encoder.grid

    def select_and_load(self, scene: Scene, k: int | None = None, method: str | None = None) -> FrameInputs:
        """Choose the scene's frames (config's count and method unless given) and load them."""
        k = k or self.config.num_frames
        indices = select_frames(scene, k, method or self.config.frame_selection)
        return load_frames(scene, indices, self.encoder)

    def positions(
        self, depth: torch.Tensor, intrinsics: torch.Tensor, cam_to_world: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch positions [F,P,3] and validity [F,P] on this branch's (pooled) token grid."""
        return patch_xyz(
            depth,
            intrinsics,
            cam_to_world,
            self.encoder.patch_grid,
            pool=self.config.vision.pool,
            extent=self.encoder.grid_extent,
        )

    def frame_positions(self, frames: FrameInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """`positions` of one scene's frames [F,P,3] / [F,P], computed once per frames (their memo)."""
        key = ("positions", self.encoder.patch_grid, self.config.vision.pool, self.encoder.grid_extent)
        return frames.remember(
            key, lambda: self.positions(frames.depth, frames.intrinsics, frames.cam_to_world)
        )

    def _mask_frames(self, tokens: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        if frame_mask is None:
            return tokens
        if self.mask_token is None:
            raise ModelError(None, "image branch: frame_mask given but the config has mask_token=False")
        mask = frame_mask.to(device=tokens.device, dtype=torch.bool).reshape(-1)
        if mask.shape[0] != tokens.shape[0]:
            raise ModelError(
                None, f"image branch: frame_mask has {mask.shape[0]} entries for {tokens.shape[0]} frames"
            )
        return torch.where(mask[:, None, None], self.mask_token.to(tokens.dtype), tokens)

    def _add_position(self, tokens: torch.Tensor, xyz: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not self.config.pos_embed:
            return tokens
        emb = sinusoidal_3d(xyz, self.embed_dim, self.config.pos_clamp, self.config.pos_step, valid=valid)
        return tokens + emb.to(tokens.dtype)

    def forward(
        self,
        pixels: torch.Tensor,
        depth: torch.Tensor | None = None,
        intrinsics: torch.Tensor | None = None,
        cam_to_world: torch.Tensor | None = None,
        *,
        xyz: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
    ) -> ImageTokens:
        """pixels [F,3,S,S] or [B,F,3,S,S]; depth/intrinsics/cam_to_world with the same leading dims, or
        xyz [..,F,P,3] + valid [..,F,P] instead; frame_mask [..,F] bool (needs `mask_token`)."""
        batched = pixels.ndim == 5
        lead = tuple(pixels.shape[:2]) if batched else (pixels.shape[0],)
        frames = int(np.prod(lead))
        flat = pixels.reshape(frames, *pixels.shape[-3:])
        if xyz is None:
            if depth is None or intrinsics is None or cam_to_world is None:
                raise ModelError(
                    None, "image branch: give depth, intrinsics and cam_to_world, or xyz and valid"
                )
            xyz, valid = self.positions(
                depth.reshape(frames, *depth.shape[-2:]),
                intrinsics.reshape(frames, *intrinsics.shape[-2:]),
                cam_to_world.reshape(frames, 4, 4),
            )
        elif valid is None:
            raise ModelError(None, "image branch: xyz given without valid")
        patches = self.encoder.num_patches
        if xyz.numel() != frames * patches * 3 or valid.numel() != frames * patches:
            raise ModelError(
                None,
                f"image branch: positions {tuple(xyz.shape)} / {tuple(valid.shape)} do not match {frames} "
                f"frames of {patches} tokens (grid {self.grid})",
            )
        xyz = xyz.reshape(frames, patches, 3).to(flat.device)
        valid = valid.reshape(frames, patches).to(flat.device)
        fmask = frame_mask.reshape(frames) if frame_mask is not None else None
        tokens = self.encoder(flat)
        if self.config.pos_embed_at == "vision":
            tokens = self._add_position(self._mask_frames(tokens, fmask), xyz, valid)
            tokens = self.projector(tokens)
        else:
            tokens = self.projector(tokens)
            tokens = self._add_position(self._mask_frames(tokens, fmask), xyz, valid)
        per_item = frames // lead[0] if batched else frames
        shape = (lead[0], per_item * patches) if batched else (frames * patches,)
        return ImageTokens(
            tokens.reshape(*shape, tokens.shape[-1]),
            xyz.reshape(*shape, 3),
            valid.reshape(*shape),
            self.grid,
            per_item,
        )
