"""Stage 1 of Dense3D: pretrain the sparse U-Net on the scenes' own semantic and instance labels.

Every relative of Dense3D starts from a pretrained, frozen 3D backbone, and users who trained one from
scratch inside the referring model report failure (REFERENCE §4). No such weights can be downloaded here,
so the U-Net first learns, per point, its NYU40 class (cross-entropy) and the offset to its instance's
centre (L1, as in PointGroup / SoftGroup): features that separate objects and group their points, which
is what superpoint pooling and the query decoder need. With `categories` (a vocabulary of raw labels,
`core.models.common.categories`) it also learns the class a sentence names, which NYU40 often folds away
(cup, bottle and monitor are all "otherprop"). The trained U-Net's weights are then loaded into
`Dense3DModel.backbone` (same module, same keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.data.datasets.loader import SceneBatch
from core.models.common.categories import IGNORE, batch_point_classes
from core.models.common.pooling import voxel_to_point
from core.models.common.pretrained import PretrainedMixin
from core.models.common.sparse_unet import SparseUNet, SparseUNetConfig

NUM_NYU40 = 41  # ids 0..40; 0 = unannotated (ignored)


@dataclass
class BackbonePretrainConfig:
    unet: SparseUNetConfig = field(default_factory=SparseUNetConfig)
    num_classes: int = NUM_NYU40
    semantic_weight: float = 1.0
    offset_weight: float = 1.0
    categories: list[str] = field(default_factory=list)  # raw-label vocabulary; empty: no category head
    category_weight: float = 1.0
    voxel_size: float = 0.02
    recipe: dict[str, Any] = field(default_factory=dict)


class BackbonePretrainer(nn.Module, PretrainedMixin):
    config_class = BackbonePretrainConfig

    def __init__(self, config: BackbonePretrainConfig):
        super().__init__()
        self.config = config
        width = config.unet.out_channels
        self.backbone = SparseUNet(config.unet)
        self.semantic = nn.Linear(width, config.num_classes)
        self.offset = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, 3))
        self.category = nn.Linear(width, len(config.categories) + 1) if config.categories else None

    def point_features(self, batch: SceneBatch) -> Tensor:
        voxel = self.backbone(batch.voxel_coords, batch.voxel_feats, batch.batch_size)
        return voxel_to_point(voxel, batch.point_to_voxel)

    def forward(self, batch: SceneBatch) -> dict[str, Tensor]:
        feats = self.point_features(batch)
        logits = self.semantic(feats)
        semantic = F.cross_entropy(
            logits, batch.semantic.clamp(0, self.config.num_classes - 1), ignore_index=0
        )
        offset_loss, annotated = self._offset_loss(feats, batch)
        loss = self.config.semantic_weight * semantic + self.config.offset_weight * offset_loss
        labelled = batch.semantic > 0
        accuracy = (
            (logits.argmax(1)[labelled] == batch.semantic[labelled]).float().mean()
            if labelled.any()
            else logits.new_zeros(())
        )
        out = {
            "loss": loss,
            "loss_semantic": semantic.detach(),
            "loss_offset": offset_loss.detach(),
            "accuracy": accuracy.detach(),
            "annotated": annotated,
        }
        if self.category is not None:
            classes = batch_point_classes(batch, self.config.categories)
            logits = self.category(feats)
            category = F.cross_entropy(logits, classes, ignore_index=IGNORE)
            out["loss"] = loss + self.config.category_weight * category
            out["loss_category"] = category.detach()
            named = classes != IGNORE
            out["category_accuracy"] = (
                (logits.argmax(1)[named] == classes[named]).float().mean()
                if named.any()
                else logits.new_zeros(())
            ).detach()
        return out

    def _offset_loss(self, feats: Tensor, batch: SceneBatch) -> tuple[Tensor, Tensor]:
        """L1 between the predicted and the true offset to the point's instance centre (annotated points)."""
        annotated = batch.instance >= 0
        if not bool(annotated.any()):
            return feats.sum() * 0.0, annotated.float().mean()
        # one id per (batch item, instance): instance ids repeat across scenes
        key = batch.point_batch[annotated] * (int(batch.instance.max()) + 1) + batch.instance[annotated]
        groups, index = torch.unique(key, return_inverse=True)
        xyz = batch.xyz[annotated]
        sums = torch.zeros(len(groups), 3, dtype=xyz.dtype, device=xyz.device).index_add_(0, index, xyz)
        counts = torch.bincount(index, minlength=len(groups)).clamp(min=1).unsqueeze(1).to(xyz.dtype)
        target = (sums / counts)[index] - xyz
        predicted = self.offset(feats[annotated])
        return (predicted - target).abs().sum(1).mean(), annotated.float().mean()
