"""Ross3D (REFERENCE §5): a video LLM over RGB-D frames with 3D position embeddings (the Video-3D-LLM
base), trained with cross-view and bird's-eye-view reconstruction of its visual input.

    frames -> ImageBranch (SigLIP, 2x2 pooling, projector; masked frames -> mask token; + 3D embedding)
        -> visual tokens spliced at <image> -> Qwen2 -> LM loss on the answer
                                               |-> final hidden states at the visible frames' tokens
                                               |     -> view denoiser (attention pooling) -> masked views
                                               |     -> BEV denoiser (attention pooling)  -> scene BEV
                                               '-> hidden state at <ground> -> GroundingHead -> proposals

Training (`forward`): loss = lm_weight * LM + view_weight * view + bev_weight * BEV (+ ground_weight *
grounding on ScanRefer / Multi3DRefer batches). Cross-view masking runs on optimizer steps where
step % view_every == 0 (the model counts its training forwards, `grad_accum` per optimizer step, in the
persistent `view_step` buffer, so a resumed run keeps the schedule), masks `mask_ratio` of each sample's
frames (at least one, never all) and is never applied to grounding batches, whatever the caller asks.
The BEV loss runs on every non-grounding batch, masked to the non-empty BEV cells. Parts a batch does not
use get a zero-weighted term so every parameter has a gradient on every step (DDP without
find_unused_parameters).

Inference: `answer` generates text; `ground` teacher-forces the grounding answer ("It is <ground>.") and
reads the `<ground>` state (the task is known, so nothing is gained by generating it) into probabilities
over the proposals plus "no object"; `select_proposals` applies the ScanRefer / Multi3DRefer rules;
`reconstruct` samples the BEV (from all frames) and the masked views (from the visible ones) with DDIM or
DDPM, decodes them with the frozen VAE and scores them against the references.

The denoisers live under `reconstruction.` (`denoiser.LR_PREFIX`) so the train task can give them their
own learning rate. `save_pretrained` writes config.json, model.safetensors, the tokenizer and the VAE
(`vae/`, diffusers layout) into one folder; `from_pretrained` reads them back with a ModelError naming
the missing or mismatched file.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import LogitsProcessorList

from core.models.common.image_tokens import ImageBranch, ImageTokens
from core.models.common.llm import (
    IGNORE_INDEX,
    Spliced,
    add_to_token_embeddings,
    build_llm,
    embed_with_prefix,
    forward_spliced,
    gather_seg,
    generate_with_prefix,
    token_ids,
)
from core.models.common.pos3d import patch_box_fraction
from core.models.common.pretrained import PretrainedMixin
from core.models.common.tokenizer import COORD_TOKEN, GROUND_TOKEN
from core.models.errors import ModelError
from core.models.ross3d.caption_copy import (
    CaptionCopy,
    CopyLogits,
    copy_nll,
    first_name_tokens,
    lm_head_inputs,
)
from core.models.ross3d.configuration_ross3d import Ross3DConfig
from core.models.ross3d.grounded_answers import (
    COLOUR_TASKS,
    COUNT_TASKS,
    box_pixel_colours,
    colour_subject,
    colour_word,
    is_colour_answer,
    is_count_answer,
)
from core.models.ross3d.grounding import (
    GroundingHead,
    box_colour_shares,
    boxes_contain,
    grounding_loss,
    object_features,
    token_colour_shares,
)
from core.models.ross3d.grounding import select_proposals as _select
from core.models.ross3d.processor_ross3d import (
    GROUNDING_TASKS,
    TASKS,
    Ross3DBatch,
    Ross3DProcessor,
    Ross3DSample,
    caption_box,
)
from core.models.ross3d.reconstruction import (
    ReconstructionHead,
    bev_loss,
    make_scheduler,
    psnr,
    reconstruct,
    view_loss,
)
from core.models.ross3d.targets import tokens_to_latent
from core.models.ross3d.vae import FrozenVAE
from core.text import answer_number

__all__ = [
    "GROUNDING_TASKS",
    "TASKS",
    "GroundedAnswer",
    "Ross3DBatch",
    "Ross3DModel",
    "Ross3DReconstruction",
    "Ross3DSample",
    "SampleReconstruction",
    "count_masked",
    "choose_masked_frames",
]

VAE_DIR = "vae"
TASK_TOKENS = (GROUND_TOKEN, COORD_TOKEN)


def count_masked(num_frames: int, ratio: float) -> int:
    """Frames to mask: `ratio` of them rounded half up, at least 1 and at most all but one (0 for 1 frame)."""
    if num_frames < 2:
        return 0
    return min(num_frames - 1, max(1, math.floor(ratio * num_frames + 0.5)))


def choose_masked_frames(num_frames: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """bool [F]: `count_masked` frames chosen uniformly at random (CPU generator)."""
    mask = torch.zeros(num_frames, dtype=torch.bool)
    m = count_masked(num_frames, ratio)
    if m:
        mask[torch.randperm(num_frames, generator=generator)[:m]] = True
    return mask


@dataclass
class SampleReconstruction:
    """One sample's reconstructions and scores (images in [-1, 1]; None where there was nothing to do)."""

    scene_id: str
    masked_frames: list[int]  # positions in the sample's frames
    bev: Tensor  # [3,H,W] reconstruction
    bev_reference: Tensor | None  # [3,H,W]: sample.bev_image, else the VAE-decoded target
    bev_pixel_mask: Tensor | None  # [H,W] bool: non-empty BEV pixels
    bev_latents: Tensor  # [T,C]
    views: Tensor | None  # [M,3,h,w]
    view_references: Tensor | None  # [M,3,h,w]: the masked frames themselves
    view_latents: Tensor | None  # [M,T,C]
    bev_psnr: float | None = None  # over the non-empty BEV pixels
    bev_mean_psnr: float | None = None  # the same pixels filled with their mean colour (a blind baseline)
    bev_latent_mse: float | None = None  # over the non-empty latent cells
    view_psnr: float | None = None
    view_mean_psnr: float | None = None
    view_latent_mse: float | None = None


@dataclass
class Ross3DReconstruction:
    samples: list[SampleReconstruction]
    steps: int
    sampler: str
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float | None]:
        """Mean of each score over the samples that have it."""
        out: dict[str, float | None] = {}
        for name in (
            "bev_psnr",
            "bev_mean_psnr",
            "bev_latent_mse",
            "view_psnr",
            "view_mean_psnr",
            "view_latent_mse",
        ):
            values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
            out[name] = sum(values) / len(values) if values else None
        return out


def _mean_image_psnr(reference: Tensor, mask: Tensor | None) -> float:
    """PSNR of the per-image mean colour (over `mask` [N,H,W]) against the references [N,3,H,W]."""
    if mask is None:
        mean = reference.mean(dim=(2, 3), keepdim=True)
    else:
        w = mask[:, None].to(reference.dtype)
        mean = (reference * w).sum(dim=(2, 3), keepdim=True) / w.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    return psnr(mean.expand_as(reference), reference, mask)


@dataclass
class GroundedAnswer:
    """One answer and where it came from (`Ross3DModel.answer_details`)."""

    text: str
    llm_text: str  # the LLM's own answer (the same as `text` when source is "llm")
    source: str = "llm"  # "llm", or "colour" / "count": read from the grounded proposals
    proposals: list[int] = field(default_factory=list)  # indices into the sample's proposals read from
    object_ids: list[int] = field(default_factory=list)  # their object ids (-1: a file's proposal)


@dataclass
class CopyInputs:
    """What the caption copy's training loss reads besides the logits (caption_copy.py)."""

    head_input: Tensor  # [B,T,H] the final hidden states the LM head read
    copy: Tensor  # [B,V] each row's copy distribution (zero off Scan2Cap rows)
    active: Tensor  # [B] bool: the row copies


class Ross3DModel(nn.Module, PretrainedMixin):
    config_class = Ross3DConfig

    def __init__(
        self,
        config: Ross3DConfig,
        tokenizer_dir: str | Path | None = None,
        load_weights: bool = True,
        vae_dir: str | Path | None = None,
    ):
        super().__init__()
        self.config = config
        # <ground> and <coord> are always added when the tokenizer lacks them (a local LLM's own tokenizer)
        llm_config = replace(
            config.llm, add_tokens=tuple(dict.fromkeys((*config.llm.add_tokens, *TASK_TOKENS)))
        )
        self.llm, self.tokenizer = build_llm(llm_config, tokenizer_dir, load_weights=load_weights)
        self.ids = token_ids(self.tokenizer)
        hidden = self.llm.get_input_embeddings().weight.shape[1]
        self.hidden = hidden
        self.image = ImageBranch(config.image, load_weights=load_weights)
        problems = []
        if config.image.out_dim != hidden:
            problems.append(f"image.out_dim ({config.image.out_dim}) != the LLM width ({hidden})")
        if tuple(self.image.grid) != tuple(config.recon.view.grid):
            problems.append(
                f"the image branch's token grid {self.image.grid} != recon.view.grid "
                f"{config.recon.view.grid} "
                "(one view latent position per visual token of a frame)"
            )
        for name, den in (("view", config.recon.view), ("bev", config.recon.bev)):
            if den.cond_dim != hidden:
                problems.append(f"recon.{name}.cond_dim ({den.cond_dim}) != the LLM width ({hidden})")
        self.vae = FrozenVAE.load(vae_dir if vae_dir is not None else config.vae_path)
        for name, den in (("view", config.recon.view), ("bev", config.recon.bev)):
            if den.in_channels != 4 * self.vae.latent_channels:
                problems.append(
                    f"recon.{name}.in_channels ({den.in_channels}) != 4 x the VAE's latent channels "
                    f"({self.vae.latent_channels})"
                )
        if problems:
            raise ModelError(None, f"Ross3DModel: {'; '.join(problems)}")
        self.grounding = GroundingHead(hidden, config.grounding)
        self.coord_proj = None
        if config.coord_feature:  # zero-initialised: training starts from the text-only prompt
            self.coord_proj = nn.Sequential(
                nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden)
            )
            nn.init.zeros_(self.coord_proj[-1].weight)
            nn.init.zeros_(self.coord_proj[-1].bias)
        self.caption_copy = None
        if config.caption_copy:
            self.caption_copy = CaptionCopy(
                hidden, first_name_tokens(self.tokenizer, config.grounding.categories)
            )
        self._class_name_ids: list[Tensor] | None = (
            None  # token ids of each category name, built on first use
        )
        self.reconstruction = ReconstructionHead(config.recon)
        self.noise_scheduler = make_scheduler(config.recon.num_train_timesteps)
        self.processor = Ross3DProcessor(self.tokenizer, config.max_question_tokens)
        # training forwards seen, for the cross-view schedule (saved with the weights and the train state)
        self.register_buffer("view_step", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------------------------ save / load

    @classmethod
    def _build_for_loading(cls, config: Ross3DConfig, folder: Path) -> Ross3DModel:
        return cls(config, tokenizer_dir=folder, load_weights=False, vae_dir=folder / VAE_DIR)

    def _save_extra(self, folder: Path) -> None:
        self.vae.save(folder / VAE_DIR)

    @classmethod
    def load_config(cls, local_dir: str | Path) -> Ross3DConfig:
        try:
            return super().load_config(local_dir)
        except ModelError as exc:  # a config that fails its own checks: name the file
            if exc.path is None:
                raise ModelError(Path(local_dir) / "config.json", exc.reason) from exc
            raise

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------------------------ shared parts

    @staticmethod
    def _as_batch(batch: Ross3DBatch | list[Ross3DSample]) -> Ross3DBatch:
        return batch if isinstance(batch, Ross3DBatch) else Ross3DBatch(list(batch))

    def _visual(self, samples: list[Ross3DSample], frame_masks: list[Tensor | None]) -> list[ImageTokens]:
        """Each sample's visual tokens; one batched image-branch call when the samples' frames stack."""
        device = self.device
        frames = [s.frames.to(device) for s in samples]
        places = [[t.to(device) for t in self.image.frame_positions(f)] for f in frames]
        shapes = {(tuple(f.pixels.shape), tuple(xyz.shape)) for f, (xyz, _) in zip(frames, places)}
        if len(frames) == 1 or len(shapes) > 1:
            return [
                self.image(f.pixels, xyz=xyz, valid=valid, frame_mask=mask)
                for f, (xyz, valid), mask in zip(frames, places, frame_masks)
            ]
        mask = None
        if any(m is not None for m in frame_masks):
            count = frames[0].pixels.shape[0]
            mask = torch.stack(
                [m if m is not None else torch.zeros(count, dtype=torch.bool) for m in frame_masks]
            )
        out = self.image(
            torch.stack([f.pixels for f in frames]),
            xyz=torch.stack([xyz for xyz, _ in places]),
            valid=torch.stack([valid for _, valid in places]),
            frame_mask=mask,
        )
        return [
            ImageTokens(out.tokens[b], out.xyz[b], out.valid[b], out.grid, out.num_frames)
            for b in range(len(frames))
        ]

    def _run(
        self,
        samples: list[Ross3DSample],
        frame_masks: list[Tensor | None],
        with_answers: bool,
    ) -> tuple[Any, Spliced, list[ImageTokens], CopyInputs | None]:
        """Image branch + text + one LLM pass with hidden states (labels when `with_answers`); last, what the
        caption copy's loss needs when the batch has captions to copy into (None otherwise)."""
        visual = self._visual(samples, frame_masks)
        text = self.processor.batch(samples, with_answers=with_answers)
        dtype = self.llm.get_input_embeddings().weight.dtype
        spliced = embed_with_prefix(
            self.llm,
            text.input_ids,
            [v.tokens.to(dtype) for v in visual],
            self.ids.image,
            text.attention_mask,
            text.labels,
            self.ids.pad,
        )
        caption = self._caption_objects(samples, visual)
        self._add_coord_features(spliced, samples, visual, caption)
        copying = self.caption_copy is not None and bool(caption[0])
        with lm_head_inputs(self.llm) if copying else nullcontext([]) as seen:
            out = forward_spliced(self.llm, spliced, labels=spliced.labels, output_hidden_states=True)
        if not copying:
            return out, spliced, visual, None
        return out, spliced, visual, CopyInputs(seen[-1], *self._copy_rows(len(samples), caption))

    def _visible_states(
        self, hidden: Tensor, spliced: Spliced, visual: list[ImageTokens], frame_masks: list[Tensor | None]
    ) -> tuple[Tensor, Tensor]:
        """Final hidden states at each sample's visual tokens [B,N,H] and which of them belong to visible
        (unmasked) frames [B,N] (False on masked frames and padding)."""
        patches = self.image.encoder.num_patches
        rows, keeps = [], []
        for b, mask in enumerate(frame_masks):
            states = hidden[b][spliced.visual_mask[b]]
            keep = torch.ones(states.shape[0], dtype=torch.bool, device=hidden.device)
            if mask is not None:
                keep = ~mask.to(hidden.device).repeat_interleave(patches)
            if keep.shape[0] != states.shape[0]:
                raise ModelError(
                    None, f"sample {b}: {states.shape[0]} visual states for {keep.shape[0]} tokens"
                )
            rows.append(states)
            keeps.append(keep)
        n = max(r.shape[0] for r in rows)
        states = hidden.new_zeros(len(rows), n, hidden.shape[-1])
        visible = torch.zeros(len(rows), n, dtype=torch.bool, device=hidden.device)
        for b, (r, k) in enumerate(zip(rows, keeps)):
            states[b, : r.shape[0]] = r
            visible[b, : r.shape[0]] = k
        return states, visible

    def _membership(self, sample: Ross3DSample, tokens: ImageTokens, boxes: Tensor) -> Tensor:
        """bool [N,K]: the visual tokens (patches) that make each box's object feature (grounding.py)."""
        cfg = self.config.grounding
        if boxes.shape[0] == 0:
            return torch.zeros(tokens.xyz.shape[0], 0, dtype=torch.bool, device=tokens.xyz.device)
        if cfg.box_rule == "centre":
            return tokens.valid[:, None] & boxes_contain(tokens.xyz, boxes)
        f = sample.frames.to(tokens.xyz.device)
        encoder, pool = self.image.encoder, self.config.image.vision.pool
        key = ("box fraction", encoder.patch_grid, pool, cfg.pixel_stride, encoder.grid_extent)
        key += (boxes.detach().cpu().numpy().tobytes(),)  # the same boxes of the same frames: computed once
        frac = f.remember(
            key,
            lambda: patch_box_fraction(
                f.depth,
                f.intrinsics,
                f.cam_to_world,
                encoder.patch_grid,
                boxes,
                pool=pool,
                pixel_stride=cfg.pixel_stride,
                extent=encoder.grid_extent,
            ),
        )
        return frac.to(boxes.device).reshape(-1, boxes.shape[0]) >= cfg.min_fraction

    def _box_features(
        self, sample: Ross3DSample, tokens: ImageTokens, boxes: Tensor, colours: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Object features [K,H] of boxes [K,6] from one sample's visual tokens, and with `colours` and colour
        agreement the boxes' colour shares [K,W] (grounding.py; None otherwise)."""
        boxes = boxes.to(device=tokens.tokens.device, dtype=torch.float32)
        with torch.no_grad():
            member = self._membership(sample, tokens, boxes)
        features = object_features(
            tokens.tokens, boxes, member, self.config.image.pos_clamp, self.config.image.pos_step
        )
        features = self.grounding.add_size(features, boxes)
        if not colours or self.grounding.query_colour is None:
            return features, None
        shares = token_colour_shares(sample.frames.pixels, self.image.encoder).to(member.device)
        return features, box_colour_shares(shares, member)

    def _class_name_hint(self, objects: Tensor) -> Tensor:
        """[S,H] for object features [S,H]: sum_c p(c|object) x the mean input embedding of class c's name
        tokens, from the grounding head's object classifier (detached; "other" adds nothing)."""
        with torch.no_grad():
            probs = (
                self.grounding.object_class(objects.to(self.grounding.no_object.dtype)).float().softmax(-1)
            )
        if self._class_name_ids is None:
            self._class_name_ids = [
                torch.tensor(self.tokenizer.encode(" " + name, add_special_tokens=False))
                for name in self.config.grounding.categories
            ]
        table = self.llm.get_input_embeddings()
        names = torch.stack([table(ids.to(table.weight.device)).mean(0) for ids in self._class_name_ids])
        return probs[:, 1:].to(names.dtype) @ names

    def _caption_objects(
        self, samples: list[Ross3DSample], visual: list[ImageTokens]
    ) -> tuple[list[int], Tensor | None]:
        """The Scan2Cap rows of a batch and the object feature [R,H] of each one's queried box (no rows
        when neither the `<coord>` feature nor the caption copy reads them)."""
        rows = [b for b, s in enumerate(samples) if s.task == "scan2cap"]
        if not rows or (self.coord_proj is None and self.caption_copy is None):
            return [], None
        features = [
            self._box_features(samples[b], visual[b], torch.tensor([caption_box(samples[b])]))[0][0]
            for b in rows
        ]
        return rows, torch.stack(features)

    def _copy_rows(self, batch_size: int, caption: tuple[list[int], Tensor | None]) -> tuple[Tensor, Tensor]:
        """Per batch row, the caption copy distribution [B,V] (zero off Scan2Cap rows) and whether the row
        copies [B] (caption_copy.py; the object classifier's probabilities, detached), from the rows and
        object features of `_caption_objects`."""
        rows, objects = caption
        vocab_size = self.llm.get_output_embeddings().weight.shape[0]
        device = self.device
        copy = torch.zeros(batch_size, vocab_size, device=device)
        active = torch.zeros(batch_size, dtype=torch.bool, device=device)
        if rows:
            with torch.no_grad():
                logits = self.grounding.object_class(objects.to(self.grounding.no_object.dtype))
            copy[rows] = self.caption_copy.distribution(logits.float().softmax(-1), vocab_size)
            active[rows] = True
        return copy, active

    def _copied_caption_loss(self, logits: Tensor, spliced: Spliced, copied: CopyInputs) -> Tensor:
        """The LM loss with Scan2Cap rows scored under the copy mixture (caption_copy.py): the mean negative
        log-likelihood over every answer token of the batch, as the plain LM loss averages it."""
        predicts = spliced.labels[:, 1:] != IGNORE_INDEX  # the position before each answer token
        targets = spliced.labels[:, 1:][predicts]
        row = torch.arange(logits.shape[0], device=logits.device)[:, None].expand_as(predicts)[predicts]
        picked_logits = logits[:, :-1][predicts]
        head_input = copied.head_input[:, :-1][predicts]
        mixed = self.caption_copy.log_probs(picked_logits, head_input, copied.copy[row])
        log_probs = torch.where(copied.active[row][:, None], mixed, picked_logits.float().log_softmax(-1))
        return copy_nll(log_probs, targets)

    def _add_coord_features(
        self,
        spliced: Spliced,
        samples: list[Ross3DSample],
        visual: list[ImageTokens],
        caption: tuple[list[int], Tensor | None] | None = None,
    ) -> Tensor | None:
        """Scan2Cap with `coord_feature`: the queried box's object feature, through `coord_proj`, added to
        the input embedding of the sample's `<coord>` token (in place on `spliced`); with `coord_every_step`
        and answers in `spliced`, also to every position that predicts an answer token. Returns the added
        vector per row [B,H] (zero for rows that are not Scan2Cap), or None when nothing was added."""
        if self.coord_proj is None:
            return None
        rows, objects = caption if caption is not None else self._caption_objects(samples, visual)
        if not rows:
            return None
        positions = []
        for b in rows:
            slots = (spliced.input_ids[b] == self.ids.coord).nonzero().flatten()
            if len(slots) != 1:
                raise ModelError(None, f"Scan2Cap sample {samples[b].sample_id}: {len(slots)} <coord> tokens")
            positions.append((b, int(slots[0])))
        objects = objects.to(spliced.inputs_embeds.dtype)
        added = self.coord_proj(objects)
        if self.config.coord_class_hint:
            added = added + self._class_name_hint(objects).to(added.dtype)
        delta = torch.zeros_like(spliced.inputs_embeds)
        index = torch.tensor(positions, device=delta.device)
        delta = delta.index_put((index[:, 0], index[:, 1]), added)
        per_row = torch.zeros_like(spliced.inputs_embeds[:, 0]).index_put((index[:, 0],), added)
        if self.config.coord_every_step and spliced.labels is not None:
            # labels sit on the answer tokens themselves; the position before each one predicts it
            predicts = torch.zeros_like(spliced.labels, dtype=torch.bool)
            predicts[:, :-1] = spliced.labels[:, 1:] != IGNORE_INDEX
            delta = delta + predicts.unsqueeze(-1).to(delta.dtype) * per_row.unsqueeze(1)
        spliced.inputs_embeds = spliced.inputs_embeds + delta
        return per_row

    def _ground_inputs(
        self, samples: list[Ross3DSample], hidden: Tensor, spliced: Spliced, visual: list[ImageTokens]
    ) -> tuple[Tensor, list[Tensor], Tensor | None, Tensor | None, list[Tensor] | None]:
        """What `GroundingHead` reads: the `<ground>` states [B,H], each sample's object features [K_b,H]
        and, with class agreement, each prompt's pooled sentence [B,H] (grounding.SentencePool); with colour
        agreement, each prompt's colour sentence [B,H] and each sample's box colour shares [K_b,W] (None
        without)."""
        labels = spliced.labels
        positions = labels == self.ids.ground
        missing = [b for b in range(len(samples)) if not bool(positions[b].any())]
        if missing:
            raise ModelError(None, f"grounding: no <ground> token in the answers of samples {missing}")
        queries, _ = gather_seg(hidden, positions)
        boxed = [
            self._box_features(s, t, s.proposals if s.proposals is not None else torch.zeros(0, 6), True)
            for s, t in zip(samples, visual)
        ]
        objects = [features for features, _ in boxed]
        head = self.grounding
        sentences = colours = shares = None
        prompt = spliced.text_mask & (labels == IGNORE_INDEX)  # the user's text, not the answer
        text = [(hidden[b][prompt[b]], spliced.inputs_embeds[b][prompt[b]]) for b in range(len(samples))]
        if head.sentence_pool is not None:
            sentences = torch.stack([head.sentence(*t) for t in text])
        if head.colour_pool is not None:
            colours = torch.stack([head.colour_sentence(*t) for t in text])
            shares = [box_shares for _, box_shares in boxed]
        return queries, objects, sentences, colours, shares

    @staticmethod
    def _zero(parts: list[nn.Module | nn.Parameter | None]) -> Tensor | None:
        """0 x the sum of the parts' trainable parameters: a gradient (of zero) for every one of them."""
        terms = []
        for part in parts:
            if part is None:
                continue
            params = [part] if isinstance(part, nn.Parameter) else list(part.parameters())
            terms += [p.sum() for p in params if p.requires_grad]
        return torch.stack(terms).sum() * 0.0 if terms else None

    # ------------------------------------------------------------------------------------------ training

    def _mask_this_step(self) -> bool:
        step = int(self.view_step) // self.config.grad_accum
        return step % self.config.view_every == 0

    def forward(
        self, batch: Ross3DBatch | list[Ross3DSample], mask_views: bool | None = None
    ) -> dict[str, Tensor]:
        """Training losses of one task-grouped batch (module docstring). `mask_views=None`: the model's own
        schedule (every `view_every`-th optimizer step while training)."""
        batch = self._as_batch(batch)
        samples = batch.samples
        if mask_views is None:
            mask_views = self.training and self._mask_this_step()
            if self.training:
                with torch.no_grad():
                    self.view_step += 1
        grounding = batch.is_grounding
        mask_views = bool(mask_views) and self.config.use_view_recon and not grounding
        frame_masks: list[Tensor | None] = [
            choose_masked_frames(s.frames.pixels.shape[0], self.config.mask_ratio)
            if mask_views and s.view_targets is not None
            else None
            for s in samples
        ]
        frame_masks = [m if m is not None and bool(m.any()) else None for m in frame_masks]
        out, spliced, visual, copied = self._run(samples, frame_masks, with_answers=True)
        hidden = out.hidden_states[-1]
        zero = hidden.new_zeros(())
        lm = out.loss if copied is None else self._copied_caption_loss(out.logits, spliced, copied)
        loss_view = loss_bev = loss_ground = None
        need_states = any(m is not None for m in frame_masks) or (
            not grounding and self.config.use_bev_recon and any(s.bev_target is not None for s in samples)
        )
        if need_states:
            states, visible = self._visible_states(hidden, spliced, visual, frame_masks)
        if any(m is not None for m in frame_masks):
            targets, index = [], []
            for b, (s, m) in enumerate(zip(samples, frame_masks)):
                if m is None:
                    continue
                if s.view_targets.shape[0] != m.shape[0]:
                    raise ModelError(
                        None,
                        f"sample {s.sample_id or s.scene_id}: view_targets for {s.view_targets.shape[0]} "
                        f"frames, but {m.shape[0]} frames",
                    )
                targets.append(s.view_targets[m.to(s.view_targets.device)])
                index += [b] * int(m.sum())
            loss_view = view_loss(
                self.reconstruction.view,
                self.noise_scheduler,
                torch.cat(targets),
                states,
                visible,
                torch.tensor(index, device=hidden.device),
                repeats=self.config.recon.view_repeats,
            )
        if not grounding and self.config.use_bev_recon:
            have = [b for b, s in enumerate(samples) if s.bev_target is not None]
            if have:
                missing = [samples[b].sample_id for b in have if samples[b].bev_mask is None]
                if missing:
                    raise ModelError(None, f"samples {missing}: bev_target without bev_mask")
                loss_bev = bev_loss(
                    self.reconstruction.bev,
                    self.noise_scheduler,
                    torch.stack([samples[b].bev_target for b in have]),
                    torch.stack([samples[b].bev_mask.bool() for b in have]),
                    states[have],
                    visible[have],
                )
        loss_class = None
        if grounding:
            queries, objects, sentences, colours, shares = self._ground_inputs(
                samples, hidden, spliced, visual
            )
            targets = [list(s.targets) for s in samples]
            loss_ground = grounding_loss(
                self.grounding(queries, objects, sentences, colours, shares), targets
            )
            if sentences is not None:
                labels = [list(s.proposal_labels) for s in samples]
                texts = [s.question for s in samples]
                loss_class = self.grounding.class_loss(
                    sentences, objects, labels, targets, colours, shares, texts
                )
                loss_ground = loss_ground + self.config.grounding.class_loss_weight * loss_class
        cfg = self.config
        loss = cfg.lm_weight * lm
        for weight, part in (
            (cfg.view_weight, loss_view),
            (cfg.bev_weight, loss_bev),
            (cfg.ground_weight, loss_ground),
        ):
            if part is not None:
                loss = loss + weight * part
        if torch.is_grad_enabled():
            unused = self._zero(
                [
                    self.reconstruction.view if loss_view is None else None,
                    self.reconstruction.bev if loss_bev is None else None,
                    self.grounding if loss_ground is None else None,
                    self.image.mask_token if loss_view is None else None,
                    self.coord_proj if not any(s.task == "scan2cap" for s in samples) else None,
                    self.caption_copy if copied is None else None,
                ]
            )
            if unused is not None:
                loss = loss + unused
        return {
            "loss": loss,
            "loss_lm": lm.detach(),
            "loss_view": (loss_view if loss_view is not None else zero).detach(),
            "loss_bev": (loss_bev if loss_bev is not None else zero).detach(),
            "loss_ground": (loss_ground if loss_ground is not None else zero).detach(),
            "loss_class": (loss_class if loss_class is not None else zero).detach(),
            "masked_frames": zero + float(sum(int(m.sum()) for m in frame_masks if m is not None)),
        }

    # ------------------------------------------------------------------------------------------ inference

    @torch.no_grad()
    def answer(self, batch: Ross3DBatch | list[Ross3DSample]) -> list[str]:
        """Greedy answers (ScanQA, SQA3D, Scan2Cap; any task's text answer) from all frames."""
        return [detail.text for detail in self.answer_details(batch)]

    @torch.no_grad()
    def answer_details(self, batch: Ross3DBatch | list[Ross3DSample]) -> list[GroundedAnswer]:
        """`answer()` with where each answer came from: the LLM's own words, and for a grounded answer the
        proposals it was read from (grounded_answers.py)."""
        samples = self._as_batch(batch).samples
        visual = self._visual(samples, [None] * len(samples))
        text = self.processor.batch(samples, with_answers=False, padding_side="left")
        dtype = self.llm.get_input_embeddings().weight.dtype
        spliced = embed_with_prefix(
            self.llm,
            text.input_ids,
            [v.tokens.to(dtype) for v in visual],
            self.ids.image,
            text.attention_mask,
            None,
            self.ids.pad,
            "left",
        )
        caption = self._caption_objects(samples, visual)
        per_row = self._add_coord_features(spliced, samples, visual, caption)
        feeding = nullcontext()
        if per_row is not None and self.config.coord_every_step:
            # the last prompt position predicts the first word; each generated token's embedding gets it too
            spliced.inputs_embeds[:, -1] = spliced.inputs_embeds[:, -1] + per_row
            feeding = add_to_token_embeddings(self.llm.get_input_embeddings(), per_row)
        copying = self.caption_copy is not None and bool(caption[0])
        with feeding, lm_head_inputs(self.llm) if copying else nullcontext([]) as seen:
            extra = {}
            if copying:
                copy, active = self._copy_rows(len(samples), caption)
                extra["logits_processor"] = LogitsProcessorList(
                    [CopyLogits(self.caption_copy, copy, active, seen)]
                )
            new_ids = generate_with_prefix(
                self.llm, spliced, max_new_tokens=self.config.max_new_tokens, **extra
            )
        answers = []
        for row in new_ids:
            text_out = self.tokenizer.decode(row, skip_special_tokens=False)
            for end in (
                self.processor.end_text,
                self.tokenizer.eos_token or "",
                self.tokenizer.pad_token or "",
            ):
                if end and end in text_out:
                    text_out = text_out.split(end)[0]
            answers.append(" ".join(text_out.split()))
        return self._grounded_answers(samples, answers)

    def _grounded_answers(self, samples: list[Ross3DSample], answers: list[str]) -> list[GroundedAnswer]:
        """ScanQA rows the LLM answered with a colour word (`answer_colour`) or a number (`answer_count`) get
        the value from the objects the grounding head picks for their question (grounded_answers.py); the
        others keep their answer."""
        cfg = self.config
        out = [GroundedAnswer(text, text) for text in answers]
        for task, wanted, on, tasks in (
            ("scanrefer", is_colour_answer, cfg.answer_colour, COLOUR_TASKS),
            ("multi3drefer", is_count_answer, cfg.answer_count, COUNT_TASKS),
        ):
            rows = [
                b
                for b, (s, text) in enumerate(zip(samples, answers))
                if on and s.task in tasks and s.proposals is not None and len(s.proposals)
                if wanted(text)
            ]
            if not rows:
                continue
            asked = [
                replace(s, task=task, answer=None, targets=[], question=colour_subject(s.question))
                if task == "scanrefer"
                else replace(s, task=task, answer=None, targets=[])
                for s in (samples[b] for b in rows)
            ]
            for b, probs in zip(rows, self.ground(asked)):
                if task == "multi3drefer":
                    chosen = self.select_proposals(probs, task)
                else:  # the most probable object: a question about one presupposes it ("no object" passed)
                    chosen = _select(probs, "scanrefer", single_no_object=False)
                ids = [samples[b].proposal_ids[i] for i in chosen] if samples[b].proposal_ids else []
                if task == "multi3drefer":
                    out[b] = GroundedAnswer(answer_number(len(chosen)), answers[b], "count", chosen, ids)
                else:
                    word = colour_word(self.pixel_colours(samples[b])[chosen[0]])
                    if word is not None:
                        out[b] = GroundedAnswer(word, answers[b], "colour", chosen, ids)
        return out

    def pixel_colours(self, sample: Ross3DSample) -> Tensor:
        """[K, W] colour word shares of the pixels inside each of the sample's proposals (computed once per
        scene's frames and boxes; grounded_answers.py)."""
        f, boxes = sample.frames, sample.proposals
        encoder = self.image.encoder
        key = ("pixel colours", boxes.detach().cpu().numpy().tobytes())
        return f.remember(
            key,
            lambda: box_pixel_colours(
                f.pixels, f.depth, f.intrinsics, f.cam_to_world, boxes, encoder.image_mean, encoder.image_std
            ),
        )

    @torch.no_grad()
    def ground(self, batch: Ross3DBatch | list[Ross3DSample]) -> list[Tensor]:
        """Per sample, probabilities [K+1] over its proposals and, last, "no object"."""
        batch = self._as_batch(batch)
        if not batch.is_grounding:
            raise ModelError(None, f"ground(): a {batch.task} batch (grounding tasks: {GROUNDING_TASKS})")
        samples = batch.samples
        out, spliced, visual, _ = self._run(samples, [None] * len(samples), with_answers=True)
        inputs = self._ground_inputs(samples, out.hidden_states[-1], spliced, visual)
        logits = self.grounding(*inputs)
        head = self.grounding
        if head.anchors is not None:  # relation agreement: at prediction only (grounding.py)
            _, objects, sentences, _, _ = inputs
            for b, sample in enumerate(samples):
                if objects[b].shape[0]:
                    prior = head.relation_prior(sample.question, sentences[b], objects[b], sample.proposals)
                    logits[b] = torch.cat([logits[b][:-1] + prior.to(logits[b].device), logits[b][-1:]])
        return [row.float().softmax(0).cpu() for row in logits]

    def select_proposals(self, probs: Tensor, task: str) -> list[int]:
        """ScanRefer: the argmax (none if it is "no object", unless `single_no_object` is False: then the
        most probable proposal); Multi3DRefer: by descending probability until the cumulative probability
        reaches `config.grounding.cumulative`, or with `relative` > 0 every proposal within that factor of the
        top one (grounding.py)."""
        cfg = self.config.grounding
        return _select(probs, task, cfg.cumulative, cfg.relative, cfg.single_no_object)

    @torch.no_grad()
    def reconstruct(
        self, batch: Ross3DBatch | list[Ross3DSample], steps: int = 50, sampler: str = "ddim", seed: int = 0
    ) -> Ross3DReconstruction:
        """Sample each sample's BEV (conditioned on all its frames) and its masked views (`mask_ratio` of the
        frames, chosen with `seed`, conditioned on the others), decode them and score them."""
        samples = self._as_batch(batch).samples
        device = self.device
        self.vae.to(device)
        cpu = torch.Generator().manual_seed(seed)
        gen = torch.Generator(device=device).manual_seed(seed)
        masks = [choose_masked_frames(s.frames.pixels.shape[0], self.config.mask_ratio, cpu) for s in samples]
        masks = [m if bool(m.any()) else None for m in masks]
        none = [None] * len(samples)
        out, spliced, visual, _ = self._run(samples, none, with_answers=False)
        states, visible = self._visible_states(out.hidden_states[-1], spliced, visual, none)
        bev_den = self.reconstruction.bev
        bev = reconstruct(
            bev_den, self.noise_scheduler, bev_den.condition(states, visible), self.vae, steps, sampler, gen
        )
        views = None
        if any(m is not None for m in masks):
            out, spliced, visual, _ = self._run(samples, masks, with_answers=False)
            states, visible = self._visible_states(out.hidden_states[-1], spliced, visual, masks)
            index = torch.tensor(
                [b for b, m in enumerate(masks) if m is not None for _ in range(int(m.sum()))], device=device
            )
            den = self.reconstruction.view
            conditions = den.condition(states, visible)[index]
            views = reconstruct(den, self.noise_scheduler, conditions, self.vae, steps, sampler, gen)
        results, start = [], 0
        for b, (sample, mask) in enumerate(zip(samples, masks)):
            item = self._score_bev(sample, bev.images[b], bev.latents[b])
            if mask is not None:
                m = int(mask.sum())
                self._score_views(
                    item, sample, mask, views.images[start : start + m], views.latents[start : start + m]
                )
                start += m
            results.append(item)
        return Ross3DReconstruction(results, steps, sampler, seed)

    def _score_bev(self, sample: Ross3DSample, image: Tensor, latents: Tensor) -> SampleReconstruction:
        size = image.shape[-2:]
        ref = pixel_mask = None
        if sample.bev_image is not None:
            ref = sample.bev_image.to(image.device, torch.float32)
            if tuple(ref.shape[-2:]) != tuple(size):
                ref = F.interpolate(ref[None], size=size, mode="bicubic", antialias=True)[0].clamp(-1, 1)
            pixel_mask = ref.amax(dim=0) > -1 + 1 / 255  # the renderer paints empty pixels black
        elif sample.bev_target is not None:
            grid = self.config.recon.bev.grid
            ref = self.vae.decode(tokens_to_latent(sample.bev_target[None].to(image.device), grid))[0]
        if pixel_mask is None and sample.bev_mask is not None:
            cells = sample.bev_mask.reshape(1, 1, *self.config.recon.bev.grid).to(image.device, torch.float32)
            pixel_mask = F.interpolate(cells, size=size, mode="nearest")[0, 0] > 0
        item = SampleReconstruction(
            sample.scene_id, [], image.cpu(), None if ref is None else ref.cpu(),
            None if pixel_mask is None else pixel_mask.cpu(), latents.cpu(), None, None, None,
        )  # fmt: skip
        if ref is not None and (pixel_mask is None or bool(pixel_mask.any())):
            m = None if pixel_mask is None else pixel_mask[None]
            item.bev_psnr = psnr(image[None], ref[None], m)
            item.bev_mean_psnr = _mean_image_psnr(ref[None], m)
        if sample.bev_target is not None:
            err = ((latents.float() - sample.bev_target.to(latents.device).float()) ** 2).mean(dim=-1)
            keep = (
                sample.bev_mask.to(latents.device).bool()
                if sample.bev_mask is not None
                else torch.ones_like(err, dtype=torch.bool)
            )
            if bool(keep.any()):
                item.bev_latent_mse = float(err[keep].mean())
        return item

    def _score_views(
        self, item: SampleReconstruction, sample: Ross3DSample, mask: Tensor, images: Tensor, latents: Tensor
    ) -> None:
        enc = self.image.encoder
        pixels = sample.frames.pixels[mask.to(sample.frames.pixels.device)].to(images.device, torch.float32)
        m = torch.tensor(enc.image_mean, device=images.device)[:, None, None]
        s = torch.tensor(enc.image_std, device=images.device)[:, None, None]
        ref = ((pixels * s + m) * 2 - 1).clamp(-1, 1)
        if tuple(ref.shape[-2:]) != tuple(images.shape[-2:]):
            ref = F.interpolate(ref, size=images.shape[-2:], mode="bicubic", antialias=True).clamp(-1, 1)
        item.masked_frames = mask.nonzero().flatten().tolist()
        item.views, item.view_references, item.view_latents = images.cpu(), ref.cpu(), latents.cpu()
        item.view_psnr = psnr(images, ref)
        item.view_mean_psnr = _mean_image_psnr(ref, None)
        if sample.view_targets is not None:
            target = sample.view_targets[mask.to(sample.view_targets.device)].to(latents.device).float()
            item.view_latent_mse = float(((latents.float() - target) ** 2).mean())
