"""`Ross3DConfig`: every size, weight and switch of Ross3D in one dataclass, saved as config.json.

The parts keep their own configs (`LLMConfig`, `ImageBranchConfig`, `ReconstructionConfig`,
`TargetConfig`, `GroundingConfig`); this one composes them and checks that they fit together: the image
branch projects to the LLM width, the view denoiser's latent grid is the image branch's token grid (one
latent position per visual token of a frame, REFERENCE §5), the targets are built on the denoisers' grids,
and the denoisers are conditioned on the LLM's hidden width.

Loss weights: `lm_weight`, `view_weight`, `bev_weight` and `ground_weight` here are the ones used
(`ReconstructionConfig.view_weight` / `bev_weight` are not read by the model). `use_view_recon` and
`use_bev_recon` switch the two reconstruction losses off for the paper's Table 4 ablation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.models.common.image_tokens import ImageBranchConfig
from core.models.common.llm import LLMConfig
from core.models.common.tokenizer import COORD_TOKEN, GROUND_TOKEN
from core.models.common.vision import VisionConfig
from core.models.errors import ModelError
from core.models.ross3d.denoiser import DenoiserConfig
from core.models.ross3d.reconstruction import ReconstructionConfig
from core.models.ross3d.targets import TargetConfig

BOX_RULES = ("fraction", "centre")


@dataclass
class GroundingConfig:
    """The `<ground>` head: object features matched to the `<ground>` state by cosine / temperature."""

    dim: int = 256  # width of the space the query and the objects are compared in
    temperature: float = 0.07
    cumulative: float = 0.4  # Multi3DRefer: take proposals until their probabilities sum to this
    # Multi3DRefer, when > 0 (at prediction only, so it can be switched on for a trained model): take every
    # proposal whose probability is at least `relative` x the top one's instead (grounding.py). 0: the
    # paper's cumulative rule above.
    relative: float = 0.0
    # ScanRefer (one target per description, by the benchmark's definition), at prediction only: True lets
    # "no object" win, which can never be right there (checkpoints made before this option); False takes the
    # most probable proposal always, as the paper's ScanRefer head (no "no object" in it) does.
    single_no_object: bool = True
    # Which patches make an object's feature: "fraction" (REFERENCE §5: >= min_fraction of the patch's
    # measured pixels inside the box, pos3d.patch_box_fraction) or "centre" (the patch's mean xyz inside
    # the box: cheaper, an approximation of the same rule).
    box_rule: str = "fraction"
    min_fraction: float = 0.5
    pixel_stride: int = 2  # "fraction": count every n-th depth pixel in both directions
    # Class agreement (grounding.py): the head also classifies each object and the `<ground>` state over a
    # raw-label vocabulary (auxiliary cross-entropy, as ScanRefer's object and language classifiers) and adds
    # class_weight * log sum_c p(c|object) p(c|query) to each object's logit. False: the paper's head.
    # `categories` empty: `train ross3d` fills it (the vision stage's vocabulary, else the train scenes').
    class_match: bool = False
    categories: list[str] = field(default_factory=list)
    class_weight: float = 1.0
    class_loss_weight: float = 1.0
    # Colour agreement (grounding.py; needs class_match): colour_weight * log of the probability that the
    # colour the sentence asks for is that of the box's pixels. 0: off (checkpoints made before it).
    colour_weight: float = 0.0
    # Relation agreement (core.models.common.relation_match; needs class_match), at prediction only:
    # relation_weight * log nearness of each box to a box of the anchor class the sentence names ("the chair
    # next to the desk"). 0: off. No weights of its own, so it can be switched on for a trained model.
    relation_weight: float = 0.0
    relation_scale: float = 0.5  # metres of box gap per e-fold
    # Box size (grounding.py `box_size_code`): add an MLP of each box's log extent (longer and shorter
    # horizontal side, height) to its object feature, as detection-based grounders (ScanRefer, 3DVG) carry
    # the proposal's geometry. False: the paper's feature (patch mean + centre embedding only).
    size_feature: bool = False

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not 0 < self.cumulative <= 1 or self.dim < 1:
            raise ModelError(None, "grounding config: temperature > 0, 0 < cumulative <= 1 and dim >= 1")
        if not 0 <= self.relative <= 1:
            raise ModelError(None, f"grounding config: 0 <= relative <= 1, got {self.relative}")
        if self.box_rule not in BOX_RULES:
            raise ModelError(
                None, f"grounding config: box_rule must be one of {BOX_RULES}, not {self.box_rule!r}"
            )
        if not 0 < self.min_fraction <= 1 or self.pixel_stride < 1:
            raise ModelError(None, "grounding config: 0 < min_fraction <= 1 and pixel_stride >= 1")
        if self.colour_weight < 0:
            raise ModelError(None, "grounding config: colour_weight >= 0")
        if self.relation_weight < 0 or self.relation_scale <= 0:
            raise ModelError(None, "grounding config: relation_weight >= 0 and relation_scale > 0")
        if self.relation_weight > 0 and not self.class_match:
            raise ModelError(None, "grounding config: relation_weight needs class_match (the boxes' classes)")


def _default_image() -> ImageBranchConfig:
    # 112 px frames, 8 px patches: a 14x14 grid, pooled 2x2 to 7x7 tokens per frame (the view grid).
    return ImageBranchConfig(
        vision=VisionConfig(image_size=112, patch_size=8, pool=2), out_dim=256, mask_token=True, num_frames=8
    )


def _default_recon() -> ReconstructionConfig:
    # The paper's DiT is 1024 wide and 3 deep; 192 wide keeps the default checkpoint + VAE < 25 MiB fp16.
    return ReconstructionConfig(
        view=DenoiserConfig(in_channels=32, grid=(7, 7), cond_dim=256, width=192),
        bev=DenoiserConfig(in_channels=32, grid=(14, 14), cond_dim=256, width=192),
    )


@dataclass
class Ross3DConfig:
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(add_tokens=(GROUND_TOKEN, COORD_TOKEN)))
    image: ImageBranchConfig = field(default_factory=_default_image)
    recon: ReconstructionConfig = field(default_factory=_default_recon)
    targets: TargetConfig = field(default_factory=TargetConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    vae_path: str | None = None  # a local diffusers VAE folder; None: the shipped assets/ross3d_vae
    view_every: int = 4  # cross-view masking on optimizer steps where step % view_every == 0
    grad_accum: int = 1  # forwards per optimizer step (the train task copies TrainConfig.grad_accum)
    mask_ratio: float = 0.25  # share of each sample's frames masked (at least 1, at most all but 1)
    lm_weight: float = 1.0
    view_weight: float = 1.0
    bev_weight: float = 1.0
    ground_weight: float = 1.0
    use_view_recon: bool = True
    use_bev_recon: bool = True
    # Scan2Cap: add the queried box's object feature (as grounding.py builds it: the mean of the visual tokens
    # in the box + its centre's 3D embedding), through an MLP, to the `<coord>` token's input embedding, so
    # the box is something the LLM can read rather than six numbers in text. False: text only (the paper).
    coord_feature: bool = False
    # Scan2Cap, with coord_feature and grounding.class_match: also add the object classifier's reading of the
    # box as words, sum_c p(c|box) x the mean input embedding of class c's name tokens (p detached), so the
    # caption can copy the name instead of learning to decode it from a feature vector.
    coord_class_hint: bool = False
    # Scan2Cap, with coord_feature: add the same vector to the input of every position that predicts a caption
    # token too (the "par-inject" of image captioning), so the box is in the residual stream where each word
    # is chosen; a small LLM trained from scratch learns to ignore the single `<coord>` slot (about 1% of
    # its answers' attention lands there). False: the `<coord>` token only.
    coord_every_step: bool = False
    # Scan2Cap, with grounding.class_match: mix each caption position's next-token distribution with a copy
    # of the object classifier's class names for the box, through a learned gate (caption_copy.py). False:
    # the LM alone (the paper).
    caption_copy: bool = False
    # ScanQA, at prediction only (so either can be switched on in a trained checkpoint's config.json;
    # grounded_answers.py). answer_colour: when the LLM's answer is one colour word, answer instead the colour
    # of the pixels inside the box the grounding head picks for the question. answer_count: when it is a
    # number, answer the number of proposals the Multi3DRefer rule selects. False: the LLM's words (paper).
    answer_colour: bool = False
    answer_count: bool = False
    max_new_tokens: int = 24
    max_question_tokens: int = 128
    recipe: dict[str, Any] = field(default_factory=dict)  # how the checkpoint was trained (set by core.train)

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.mask_ratio < 1:
            problems.append(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.view_every < 1 or self.grad_accum < 1 or self.max_new_tokens < 1:
            problems.append("view_every, grad_accum and max_new_tokens must be >= 1")
        if self.use_view_recon and not self.image.mask_token:
            problems.append("use_view_recon needs image.mask_token=True (the learnable mask token)")
        if tuple(self.recon.view.grid) != tuple(self.targets.view_grid):
            problems.append(
                f"recon.view.grid {self.recon.view.grid} != targets.view_grid {self.targets.view_grid}"
            )
        if tuple(self.recon.bev.grid) != tuple(self.targets.bev_grid):
            problems.append(
                f"recon.bev.grid {self.recon.bev.grid} != targets.bev_grid {self.targets.bev_grid}"
            )
        if self.coord_class_hint and not (self.coord_feature and self.grounding.class_match):
            problems.append("coord_class_hint needs coord_feature and grounding.class_match")
        if self.caption_copy and not self.grounding.class_match:
            problems.append("caption_copy needs grounding.class_match (the object classifier it copies from)")
        if self.coord_every_step and not self.coord_feature:
            problems.append("coord_every_step needs coord_feature")
        if self.llm.path is None:
            hidden = self.llm.hidden
            if self.image.out_dim != hidden:
                problems.append(f"image.out_dim ({self.image.out_dim}) != llm.hidden ({hidden})")
            for name, den in (("view", self.recon.view), ("bev", self.recon.bev)):
                if den.cond_dim != hidden:
                    problems.append(f"recon.{name}.cond_dim ({den.cond_dim}) != llm.hidden ({hidden})")
        if problems:
            raise ModelError(None, f"Ross3DConfig: {'; '.join(problems)}")
