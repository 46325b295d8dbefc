"""Stage 1 of Ross3D: pretrain the vision tower on the scenes' own labels, per visual token.

Ross3D (and LLaVA-Video under it) reads frames through a pretrained, frozen SigLIP. No such weights can be
downloaded here, and a SigLIP trained from scratch inside the LLM on a few thousand questions learns
nothing the answers need: the shipped default scored the same with its frames blanked. So the tower first
learns, for every token of the image branch's (pooled) grid, two things the questions ask about:

- the raw-label class of the object under it (`core.models.common.categories`: the names sentences use,
  "cup" and "monitor" rather than NYU40's "otherprop"), the majority over the token's measured pixels;
- the mean colour of its pixels (L1), so that training for the class does not wash out colour.

Pixel labels come from the scan itself: each measured depth pixel is back-projected to the world and takes
the instance of the nearest mesh vertex within `max_distance` (no rendering needed, so real ScanNet frames
label the same way); pixels that hit nothing labelled are left out. The trained tower is then loaded into
`ImageBranch.encoder` (same module, same keys) and, as in the paper, frozen there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.common.categories import IGNORE, point_classes
from core.models.common.pos3d import _pixel_cells
from core.models.common.pretrained import PretrainedMixin
from core.models.common.vision import VisionConfig, VisionEncoder
from core.models.errors import ModelError


@dataclass
class VisionPretrainConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    categories: list[str] = field(default_factory=list)  # raw-label vocabulary (class ids 1..K, 0 = other)
    class_weight: float = 1.0
    colour_weight: float = 1.0
    max_distance: float = 0.05  # metres from a depth pixel to the nearest labelled vertex
    pixel_stride: int = 2  # every n-th depth pixel (rows and columns) is labelled
    # training-time mirror of a random half of each batch (pixels and token labels together): a scan gives
    # a few hundred frames, which a tower trained from scratch memorises
    flip: bool = False
    # class weights (token count)^-class_balance in the class loss: 0 = plain CE, 0.5 = inverse square root.
    # Walls and floors cover most tokens; a plain CE names the objects that questions ask about poorly
    class_balance: float = 0.0
    recipe: dict[str, Any] = field(default_factory=dict)


def token_cells(height: int, width: int, encoder: VisionEncoder) -> Tensor:
    """Cell [H*W] of each depth pixel on the encoder's pooled token grid (P = off the grid), row-major."""
    fine, _, _ = _pixel_cells(height, width, encoder.patch_grid, torch.device("cpu"), encoder.grid_extent)
    gh, gw = encoder.patch_grid
    pool = encoder.config.pool
    ph, pw = encoder.grid
    off = fine >= gh * gw
    row, col = fine // gw, fine % gw
    cells = (row // pool) * pw + col // pool
    cells[off] = ph * pw
    return cells


def token_classes(
    depth: Tensor,
    intrinsics: Tensor,
    cam_to_world: Tensor,
    cells: Tensor,
    num_tokens: int,
    vertex_xyz: np.ndarray,
    vertex_class: np.ndarray,
    max_distance: float = 0.05,
    stride: int = 2,
) -> Tensor:
    """Class id [F,P] of each token: the majority class over its labelled pixels, IGNORE where none is.

    depth [F,H,W] metres (0 = none), intrinsics [F,3,3], cam_to_world [F,4,4] (aligned), cells [H*W] from
    `token_cells`, vertex_xyz [V,3] aligned mesh vertices, vertex_class [V] (IGNORE where unannotated).
    """
    from scipy.spatial import cKDTree

    from core.scene.geometry import backproject_depth

    frames, height, width = depth.shape
    labelled = vertex_class != IGNORE
    out = torch.full((frames, num_tokens), IGNORE, dtype=torch.long)
    if not labelled.any():
        return out
    tree = cKDTree(vertex_xyz[labelled])
    classes = vertex_class[labelled]
    num_classes = int(classes.max()) + 1
    keep = np.zeros((height, width), dtype=bool)
    keep[::stride, ::stride] = True
    for f in range(frames):
        d = depth[f].numpy().copy()
        d[~keep] = 0
        points, pixel = backproject_depth(d, intrinsics[f].numpy(), cam_to_world[f].numpy())
        if not len(points):
            continue
        dist, nearest = tree.query(points, distance_upper_bound=max_distance)
        hit = np.isfinite(dist)
        cell = cells.numpy()[pixel[hit]]
        on_grid = cell < num_tokens
        key = cell[on_grid] * num_classes + classes[nearest[hit]][on_grid]
        votes = np.bincount(key, minlength=num_tokens * num_classes).reshape(num_tokens, num_classes)
        winner = torch.from_numpy(votes.argmax(1))
        out[f] = torch.where(torch.from_numpy(votes.sum(1) > 0), winner, torch.tensor(IGNORE))
    return out


def vertex_classes(scene, vocabulary: list[str]) -> np.ndarray:
    """Class id per mesh vertex of a loaded scene (`categories.point_classes`), IGNORE where unannotated."""
    labels = {inst.object_id: inst.label for inst in scene.instances}
    return point_classes(torch.from_numpy(scene.vertex_instance.astype(np.int64)), labels, vocabulary).numpy()


def token_colours(pixels: Tensor, encoder: VisionEncoder) -> Tensor:
    """Mean normalised colour [F,P,3] of the pixels under each token of the pooled grid."""
    size = encoder.image_size
    covered = int(round(encoder.grid_extent[0] * size))
    return (
        F.adaptive_avg_pool2d(pixels[..., :covered, :covered], encoder.grid)
        .flatten(2)
        .transpose(1, 2)
        .contiguous()
    )


class VisionPretrainer(nn.Module, PretrainedMixin):
    """The vision tower with a per-token class head and a per-token colour head (module docstring)."""

    config_class = VisionPretrainConfig

    def __init__(self, config: VisionPretrainConfig):
        super().__init__()
        if not config.categories:
            raise ModelError(None, "vision pretraining: the category vocabulary is empty")
        self.config = config
        self.encoder = VisionEncoder(config.vision)
        width = self.encoder.hidden_size
        self.classes = nn.Linear(width, len(config.categories) + 1)
        self.colour = nn.Linear(width, 3)
        if config.flip:
            side, pool = self.encoder.patch_grid[0], config.vision.pool
            if side % pool or self.encoder.patch_grid[0] != self.encoder.patch_grid[1]:
                raise ModelError(
                    config.vision.path,
                    f"vision pretraining: flip needs a square patch grid divisible by pool ({side}, {pool})",
                )
        # set from the training frames (`set_class_frequencies`); not saved: stage 2 needs only the tower
        self.register_buffer("class_weights", torch.ones(len(config.categories) + 1), persistent=False)

    def set_class_frequencies(self, classes: Tensor) -> None:
        """Class-loss weights from the training tokens' labels [*] (IGNORE left out): count^-class_balance,
        classes absent from training weighted as the rarest present one."""
        if self.config.class_balance <= 0:
            return
        labelled = classes[classes != IGNORE].flatten()
        counts = torch.bincount(labelled, minlength=self.class_weights.numel()).float()
        weights = counts.clamp(min=1).pow(-self.config.class_balance)
        present = counts > 0
        if not bool(present.any()):
            return
        weights[~present] = weights[present].max()
        self.class_weights.copy_(weights / weights[present].mean())

    def _mirror(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """A random half of the frames mirrored left-right, their token labels with them."""
        pixels, classes, colours = batch["pixels"], batch["classes"], batch["colours"]
        chosen = torch.rand(pixels.shape[0]) < 0.5
        if not bool(chosen.any()):
            return batch
        covered = int(round(self.encoder.grid_extent[0] * self.encoder.image_size))
        gh, gw = self.encoder.grid
        pixels, classes, colours = pixels.clone(), classes.clone(), colours.clone()
        area = pixels[chosen, :, :covered, :covered]
        pixels[chosen, :, :covered, :covered] = area.flip(-1)
        classes[chosen] = classes[chosen].view(-1, gh, gw).flip(-1).reshape(-1, gh * gw)
        colours[chosen] = colours[chosen].view(-1, gh, gw, 3).flip(2).reshape(-1, gh * gw, 3)
        return {**batch, "pixels": pixels, "classes": classes, "colours": colours}

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """batch: pixels [B,3,S,S], classes [B,P] (IGNORE = no label), colours [B,P,3]."""
        if self.training and self.config.flip:
            batch = self._mirror(batch)
        tokens = self.encoder(batch["pixels"])
        logits = self.classes(tokens)
        target = batch["classes"].to(logits.device)
        named = target != IGNORE
        if bool(named.any()):
            weight = self.class_weights if self.config.class_balance > 0 else None
            class_loss = F.cross_entropy(logits[named], target[named], weight=weight)
            accuracy = (logits[named].argmax(-1) == target[named]).float().mean()
        else:
            class_loss, accuracy = logits.sum() * 0.0, logits.new_zeros(())
        colour_loss = (self.colour(tokens) - batch["colours"].to(tokens.device)).abs().mean()
        loss = self.config.class_weight * class_loss + self.config.colour_weight * colour_loss
        return {
            "loss": loss,
            "loss_class": class_loss.detach(),
            "loss_colour": colour_loss.detach(),
            "accuracy": accuracy.detach(),
        }
