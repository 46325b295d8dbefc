"""`Dense3DConfig`: every size and switch of Dense3D in one dataclass, saved as the checkpoint's config.json.

The parts keep their own configs (`SparseUNetConfig`, `LLMConfig`, `ImageBranchConfig`,
`QueryDecoderConfig`, `SegLossConfig`); this one composes them and checks that they fit together (the
decoder reads the U-Net's output width; the image branch projects to the LLM's width).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.models.common.image_tokens import ImageBranchConfig
from core.models.common.llm import LLMConfig
from core.models.common.pooling import DESCRIPTOR_DIM
from core.models.common.sparse_unet import SparseUNetConfig
from core.models.dense3d.class_match import ClassMatchConfig
from core.models.dense3d.grouping import GroupingConfig
from core.models.dense3d.loss import SegLossConfig
from core.models.dense3d.query_decoder import QueryDecoderConfig
from core.models.errors import ModelError


@dataclass
class Dense3DConfig:
    unet: SparseUNetConfig = field(default_factory=SparseUNetConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    decoder: QueryDecoderConfig = field(default_factory=QueryDecoderConfig)
    seg_loss: SegLossConfig = field(default_factory=SegLossConfig)
    # Multi-view image tokens (the paper's visual input); None: the LLM sees only the scene tokens below.
    image: ImageBranchConfig | None = None
    # Scene tokens: superpoint features (U-Net output, superpoint mean) + a 3D sinusoidal embedding of the
    # superpoint centre, projected to the LLM width. The cheapest way to let the LLM see the point cloud;
    # the largest `scene_tokens` superpoints by point count are used (0: none).
    scene_tokens: int = 128
    voxel_size: float = 0.02
    # Superpoint features = U-Net output + `core.models.common.pooling.superpoint_descriptors` (colour, size,
    # height): then decoder.in_channels = unet.channels[0] + DESCRIPTOR_DIM.
    sp_descriptors: bool = False
    # Keep the U-Net of stage 1 fixed in stage 2 (its features are then computed once per scene): with a
    # few thousand referring samples, fine-tuning it gains little and costs most of a CPU step.
    freeze_backbone: bool = False
    # Object proposals (superpoints merged by touch and colour) and the query's choice among them
    # (core.models.dense3d.grouping): the mask is then the chosen proposals. None: threshold the decoder's
    # superpoint mask, as the paper does.
    grouping: GroupingConfig | None = None
    # Class matching (core.models.dense3d.class_match): a classifier of the sentence's named class and one of
    # each proposal's class, their agreement added to the proposal logits. Needs `grouping`.
    class_match: ClassMatchConfig | None = None
    # The decoder's text attention also reads the prompt's input word embeddings, not only the LLM's last
    # states: a small LLM trained from scratch on a few thousand sentences carries the words to its last
    # layer too slowly (cpu-tiny runs without it stayed at chance); a large pretrained LLM does not need it.
    word_skip: bool = False
    lm_weight: float = 1.0
    seg_weight: float = 1.0
    seg_rule: str = "token"  # the hidden state at [SEG] itself (core.models.common.llm.seg_positions)
    max_new_tokens: int = 12
    min_mask_points: int = 0  # a predicted mask with fewer points is "no target" (MDIN: ~50 on ScanNet)
    max_question_tokens: int = 96  # longer descriptions are cut (ScanRefer's are ~20-60 words)
    recipe: dict[str, Any] = field(default_factory=dict)  # how the checkpoint was trained (set by core.train)

    @property
    def superpoint_width(self) -> int:
        """Width of a superpoint feature: the U-Net's output (+ the descriptors, its own and its proposal's,
        when on)."""
        own = DESCRIPTOR_DIM if self.sp_descriptors else 0
        proposal = DESCRIPTOR_DIM if self.grouping is not None and self.grouping.descriptors else 0
        return self.unet.out_channels + own + proposal

    def __post_init__(self) -> None:
        if self.decoder.in_channels != self.superpoint_width:
            extra = f" + {DESCRIPTOR_DIM} descriptors" if self.sp_descriptors else ""
            if self.grouping is not None and self.grouping.descriptors:
                extra += f" + {DESCRIPTOR_DIM} proposal descriptors"
            raise ModelError(
                None,
                f"Dense3DConfig: decoder.in_channels ({self.decoder.in_channels}) must equal the superpoint "
                f"feature width: unet.channels[0] ({self.unet.out_channels}){extra}",
            )
        if self.class_match is not None and self.grouping is None:
            raise ModelError(None, "Dense3DConfig: class_match chooses among proposals: set grouping too")
        if self.image is not None and self.llm.path is None and self.image.out_dim != self.llm.hidden:
            raise ModelError(
                None,
                f"Dense3DConfig: image.out_dim ({self.image.out_dim}) != llm.hidden ({self.llm.hidden})",
            )
        if self.scene_tokens < 0 or self.voxel_size <= 0 or self.max_new_tokens < 1:
            raise ModelError(None, "Dense3DConfig: scene_tokens >= 0, voxel_size > 0 and max_new_tokens >= 1")
        if self.image is None and self.scene_tokens == 0:
            raise ModelError(
                None, "Dense3DConfig: the LLM needs a view of the scene (image, or scene_tokens > 0)"
            )
