"""Dense3D: a sentence and a scan in, the points of the object the sentence means out.

    points -> voxels -> sparse U-Net -> point features -> superpoint means ------------------+
                                  |                                                          |
                                  +-> scene tokens (largest superpoints + 3D embedding) -+    |
    frames -> image branch (encoder + 3D embedding + projector) -> image tokens --------+    |
                                                                                         v    v
    "<image> the chair left of the desk" -> LLM (Qwen2, LoRA) -> "It is [SEG]." -> [SEG] state
                                                                  -> SegHead -> query -> QueryDecoder
                                                                  -> mask logits over superpoints
                                                       (grouping on: -> the chosen object proposals)

`forward(inputs)` returns the training losses (LM + BCE + Dice + IoU-score); `predict(inputs)` generates
the answer, reads the generated [SEG] states (none: an empty mask; several: averaged) and returns a point
mask per sample. Both read [SEG] with the same rule on the spliced sequence (core.models.common.llm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from core.data.datasets.loader import SceneBatch
from core.models.common.categories import class_id, point_classes, region_classes
from core.models.common.colour_match import asked_colours, colour_loss, proposal_colours
from core.models.common.image_tokens import FrameInputs, ImageBranch
from core.models.common.llm import (
    IGNORE_INDEX,
    append_tokens,
    build_llm,
    embed_with_prefix,
    forward_spliced,
    generate_with_prefix,
    seg_positions,
    token_ids,
)
from core.models.common.pooling import superpoint_descriptors, superpoint_mean, voxel_to_point
from core.models.common.pos3d import sinusoidal_3d
from core.models.common.pretrained import PretrainedMixin
from core.models.common.relation_match import box_gaps, proposal_boxes
from core.models.common.sparse_unet import SparseUNet
from core.models.common.vision import Projector
from core.models.dense3d.class_match import ClassMatch
from core.models.dense3d.configuration_dense3d import Dense3DConfig
from core.models.dense3d.grouping import GroupSelection, colour_groups
from core.models.dense3d.loss import SegLoss
from core.models.dense3d.processor_dense3d import Dense3DProcessor
from core.models.dense3d.query_decoder import QueryDecoder
from core.models.dense3d.scene_memo import SceneMemo
from core.models.dense3d.seg_head import SegHead, empty_mask_where_missing
from core.models.errors import ModelError

SCENES_MEMO = 512  # scenes whose frozen U-Net features and proposals stay in memory


@dataclass
class Dense3DInputs:
    """A collated scene batch (with questions, and answers + targets for training) and, when the image
    branch is on, each item's frames."""

    scene: SceneBatch
    frames: list[FrameInputs] | None = None

    def to(self, device: torch.device | str) -> Dense3DInputs:
        frames = [f.to(device) for f in self.frames] if self.frames is not None else None
        return Dense3DInputs(self.scene.to(device), frames)


@dataclass
class Dense3DPrediction:
    scene_id: str
    point_mask: np.ndarray  # (N,) bool over the scene's points, in the cached point order
    superpoint_probs: np.ndarray  # (S,) float
    answer: str  # the generated text
    has_seg: bool  # False: the model said there is no such object
    score: float  # predicted IoU of the mask (grouping on: the chosen proposals' probability)
    named_class: str | None = None  # class matching on: the class the sentence names, as the model reads it
    anchor_class: str | None = None  # relation matching on: the anchor class read from the sentence


@dataclass
class SceneFeatures:
    """Per item: superpoint features [S_b, C], centres [S_b, 3], point counts [S_b] and, when grouping
    is on, the proposal id of each superpoint [S_b], each proposal's colour shares [G_b, W]
    (`class_match.proposal_colours`) and the gaps between the proposals' boxes [G_b, G_b]
    (`relation_match.box_gaps`)."""

    feats: list[Tensor]
    centres: list[Tensor]
    counts: list[Tensor]
    groups: list[Tensor] | None = None
    colours: list[Tensor] | None = None
    gaps: list[Tensor] | None = None


@dataclass
class MatchOutputs:
    """One item's class matching (`core.models.dense3d.class_match`): the prior over its proposals [G], the
    proposals' class logits [G, K + 1], the sentence's class logits [K + 1] and colour logits [W] (None
    without the colour branch)."""

    prior: Tensor
    proposal: Tensor
    sentence: Tensor
    colour: Tensor | None
    anchor: str | None = None


class Dense3DModel(nn.Module, PretrainedMixin):
    config_class = Dense3DConfig

    def __init__(
        self, config: Dense3DConfig, tokenizer_dir: str | Path | None = None, load_weights: bool = True
    ):
        super().__init__()
        self.config = config
        self.backbone = SparseUNet(config.unet)
        # A frozen U-Net (config.freeze_backbone) gives the same superpoint features for a scene every
        # time: they are computed once and kept here (cleared whenever weights are loaded).
        self._frozen_scenes = SceneMemo(SCENES_MEMO)
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.llm, self.tokenizer = build_llm(config.llm, tokenizer_dir, load_weights=load_weights)
        self.ids = token_ids(self.tokenizer)
        if self.ids.seg is None:
            raise ModelError(None, "the tokenizer has no [SEG] token: add it through LLMConfig.add_tokens")
        hidden = self.llm.get_input_embeddings().weight.shape[1]
        self.hidden = hidden
        self.scene_proj = Projector(config.superpoint_width, hidden) if config.scene_tokens else None
        self.image = (
            ImageBranch(config.image, load_weights=load_weights) if config.image is not None else None
        )
        if self.image is not None and config.image.out_dim != hidden:
            raise ModelError(
                None, f"image.out_dim ({config.image.out_dim}) must equal the LLM width ({hidden})"
            )
        self.seg_head = SegHead(hidden, config.decoder.d_model)
        d = config.decoder.d_model
        self.text_proj = (
            nn.Sequential(nn.Linear(hidden, d), nn.LayerNorm(d)) if config.decoder.text_attention else None
        )
        self.word_proj = (
            nn.Sequential(nn.Linear(hidden, d), nn.LayerNorm(d))
            if config.decoder.text_attention and config.word_skip
            else None
        )
        self.decoder = QueryDecoder(config.decoder)
        self.seg_loss = SegLoss(config.seg_loss)
        self.selection = GroupSelection(config.grouping) if config.grouping is not None else None
        self.class_match = (
            ClassMatch(
                config.class_match,
                config.superpoint_width,
                hidden,
                d,
                config.decoder.num_heads,
                config.max_question_tokens + 32,
            )
            if config.class_match is not None
            else None
        )
        # proposals depend only on the scene (not on weights): computed once per scene and kept
        self._scene_groups = SceneMemo(SCENES_MEMO)
        self.processor = Dense3DProcessor(self.tokenizer, config.max_question_tokens)

    @property
    def _relations(self) -> bool:
        """Relation matching is on: the proposals' box gaps are needed (only then computed)."""
        return self.class_match is not None and self.class_match.anchors is not None

    @classmethod
    def _build_for_loading(cls, config: Dense3DConfig, folder: Path) -> Dense3DModel:
        # the tokenizer saved beside the weights; a local base LLM's weights are overwritten: don't read them
        return cls(config, tokenizer_dir=folder, load_weights=False)

    def train(self, mode: bool = True) -> Dense3DModel:
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()  # BatchNorm statistics stay those of the U-Net stage
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._frozen_scenes.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------------------------------ scene

    def encode_scene(self, scene: SceneBatch) -> SceneFeatures:
        """U-Net over the voxels, back to points, mean per superpoint, per batch item. Items of the same
        scene (several queries about one room) share one U-Net pass: on a CPU the U-Net is most of a step."""
        first: dict[str, int] = {}
        for b, scene_id in enumerate(scene.scene_ids):
            first.setdefault(scene_id, b)
        if self.config.freeze_backbone:
            features = self._frozen_features(scene, first)
        else:
            per_scene = self._scene_features(scene, first)
            feats, centres, counts = zip(*(per_scene[scene_id] for scene_id in scene.scene_ids))
            features = SceneFeatures(list(feats), list(centres), list(counts))
        if self.selection is not None:
            grouped = self._groups(scene, first)
            features.groups = [groups for groups, _, _, _ in grouped]
            features.colours = [colours for _, _, colours, _ in grouped]
            features.gaps = [gaps for _, _, _, gaps in grouped] if self._relations else None
            if self.config.grouping.descriptors:
                features.feats = [
                    torch.cat([f, described.to(f.dtype)], dim=1)
                    for f, (_, described, _, _) in zip(features.feats, grouped)
                ]
        return features

    @staticmethod
    def _scene_keys(scene: SceneBatch, first: dict[str, int]) -> dict[str, str]:
        """Scene id -> scene id, point count and coordinate sum: two datasets with the same scene ids
        never share a cached entry."""
        po = scene.point_offsets.tolist()
        return {
            sid: f"{sid}:{po[b + 1] - po[b]}:{float(scene.xyz[po[b] : po[b + 1]].double().sum()):.6f}"
            for sid, b in first.items()
        }

    def _groups(
        self, scene: SceneBatch, first: dict[str, int]
    ) -> list[tuple[Tensor, Tensor, Tensor, Tensor | None]]:
        """Per item: the proposal id of each superpoint (`colour_groups`), per superpoint its proposal's
        descriptors [S, DESCRIPTOR_DIM], each proposal's colour shares [G, W] and, with relation matching,
        the gaps between the proposals' boxes [G, G]; computed once per scene."""
        po, so = scene.point_offsets.tolist(), scene.superpoint_offsets.tolist()

        def compute(missing: dict[str, int]) -> dict[str, tuple[Tensor, Tensor, Tensor, Tensor | None]]:
            out = {}
            for sid, b in missing.items():
                xyz, rgb = scene.xyz[po[b] : po[b + 1]], scene.rgb[po[b] : po[b + 1]]
                ids = scene.superpoint_ids[po[b] : po[b + 1]] - so[b]
                groups = colour_groups(xyz, rgb, ids, so[b + 1] - so[b], self.config.grouping)
                count = int(groups.max()) + 1
                out[sid] = (
                    groups,
                    superpoint_descriptors(xyz, rgb, groups[ids], count)[groups],
                    proposal_colours(rgb, groups[ids], count),
                    box_gaps(proposal_boxes(xyz, groups[ids], count)) if self._relations else None,
                )
            return out

        per_scene = self._scene_groups.get(self._scene_keys(scene, first), first, compute)
        return [per_scene[sid] for sid in scene.scene_ids]

    def _frozen_features(self, scene: SceneBatch, first: dict[str, int]) -> SceneFeatures:
        """`encode_scene` with a frozen U-Net: each scene's features computed once, then reused."""

        def compute(missing: dict[str, int]) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
            with torch.no_grad():
                return self._scene_features(scene, missing)

        per_scene = self._frozen_scenes.get(self._scene_keys(scene, first), first, compute)
        feats, centres, counts = zip(*(per_scene[scene_id] for scene_id in scene.scene_ids))
        return SceneFeatures(list(feats), list(centres), list(counts))

    def _scene_features(
        self, scene: SceneBatch, first: dict[str, int]
    ) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """One U-Net pass over the scenes `first` names (scene id -> its first batch item); per scene:
        superpoint features, centres and point counts."""
        unique = list(first.values())
        vo, po, so = (
            t.tolist() for t in (scene.voxel_offsets, scene.point_offsets, scene.superpoint_offsets)
        )
        if len(unique) == scene.batch_size:
            coords, voxel_feats = scene.voxel_coords, scene.voxel_feats
        else:
            parts = []
            for j, b in enumerate(unique):
                part = scene.voxel_coords[vo[b] : vo[b + 1]].clone()
                part[:, 0] = j
                parts.append(part)
            coords = torch.cat(parts)
            voxel_feats = torch.cat([scene.voxel_feats[vo[b] : vo[b + 1]] for b in unique])
        voxel = self.backbone(coords, voxel_feats, len(unique))
        per_scene, start = {}, 0
        for b in unique:
            count = vo[b + 1] - vo[b]
            point = voxel_to_point(
                voxel[start : start + count], scene.point_to_voxel[po[b] : po[b + 1]] - vo[b]
            )
            start += count
            ids, total = scene.superpoint_ids[po[b] : po[b + 1]] - so[b], so[b + 1] - so[b]
            sp_feats = superpoint_mean(point, ids, total)
            if self.config.sp_descriptors:
                xyz, rgb = scene.xyz[po[b] : po[b + 1]], scene.rgb[po[b] : po[b + 1]]
                descriptors = superpoint_descriptors(xyz, rgb, ids, total).to(sp_feats.dtype)
                sp_feats = torch.cat([sp_feats, descriptors], dim=1)
            per_scene[scene.scene_ids[b]] = (
                sp_feats,
                superpoint_mean(scene.xyz[po[b] : po[b + 1]], ids, total),
                torch.bincount(ids, minlength=total),
            )
        return per_scene

    def visual_tokens(self, features: SceneFeatures, frames: list[FrameInputs] | None) -> list[Tensor]:
        """Per item: [scene tokens; image tokens] at the LLM width."""
        out = []
        for b in range(len(features.feats)):
            parts = []
            if self.scene_proj is not None:
                k = min(self.config.scene_tokens, features.feats[b].shape[0])
                # the largest superpoints, kept in index order so the sequence does not depend on ties
                chosen = torch.topk(features.counts[b].float(), k, sorted=False).indices.sort().values
                tokens = self.scene_proj(features.feats[b][chosen])
                parts.append(
                    tokens + sinusoidal_3d(features.centres[b][chosen], self.hidden).to(tokens.dtype)
                )
            if self.image is not None:
                if frames is None or len(frames) != len(features.feats):
                    raise ModelError(
                        None, "Dense3D has an image branch: give each item's frames (Dense3DInputs)"
                    )
                f = frames[b]
                xyz, valid = self.image.frame_positions(f)
                parts.append(self.image(f.pixels, xyz=xyz, valid=valid).tokens)
            out.append(torch.cat(parts).to(self.llm.get_input_embeddings().weight.dtype))
        return out

    # ------------------------------------------------------------------------------------------ training

    def forward(self, inputs: Dense3DInputs | SceneBatch) -> dict[str, Tensor]:
        inputs = inputs if isinstance(inputs, Dense3DInputs) else Dense3DInputs(inputs)
        scene = inputs.scene
        if scene.samples is None or scene.superpoint_mask is None:
            raise ModelError(
                None, "Dense3D training needs referring samples in the batch (questions and targets)"
            )
        features = self.encode_scene(scene)
        visual = self.visual_tokens(features, inputs.frames)
        text = self.processor.batch(scene.questions, scene.answers)
        spliced = embed_with_prefix(
            self.llm, text.input_ids, visual, self.ids.image, text.attention_mask, text.labels, self.ids.pad
        )
        out = forward_spliced(self.llm, spliced, labels=spliced.labels, output_hidden_states=True)
        positions = seg_positions(spliced.labels, self.ids.seg, self.config.seg_rule)
        query, has_seg = self.seg_head.queries_from_hidden(out.hidden_states[-1], positions)
        prompt = spliced.text_mask & (spliced.labels == IGNORE_INDEX)
        packed = self._prompt(out.hidden_states[-1], prompt, spliced.inputs_embeds)
        words = self._text(packed)
        decoded = self.decoder(query, features.feats, centres=features.centres, **words)
        bounds = scene.superpoint_offsets.tolist()
        targets = [scene.superpoint_mask[bounds[b] : bounds[b + 1]] for b in range(scene.batch_size)]
        seg = self.seg_loss(decoded, targets, sample_mask=has_seg)
        loss = self.config.lm_weight * out.loss + self.config.seg_weight * seg["loss"]
        terms, priors = {}, None
        if self.class_match is not None:
            priors, classified = self._class_match_losses(scene, features, packed)
            loss = loss + self.config.class_match.loss_weight * (
                classified["loss_class_sentence"]
                + classified["loss_class_proposal"]
                + classified.get("loss_colour_sentence", 0.0)
            )
            terms.update({k: v.detach() for k, v in classified.items()})
        if self.selection is not None:
            per_layer = [decoded.per_sample(layer) for layer in range(len(decoded.mask_logits))]
            select = self.selection.loss(
                [[x[0] for x in layer] for layer in per_layer],
                features.groups,
                features.counts,
                targets,
                has_seg,
                priors,
            )
            loss = loss + self.config.grouping.weight * select
            terms["loss_select"] = select.detach()
        return {
            "loss": loss,
            "loss_lm": out.loss.detach(),
            "loss_bce": seg["bce"].detach(),
            "loss_dice": seg["dice"].detach(),
            "loss_score": seg["score"].detach(),
            **terms,
            "iou": seg["iou"],
        }

    # ------------------------------------------------------------------------------------------ inference

    @torch.no_grad()
    def predict(
        self, inputs: Dense3DInputs | SceneBatch, questions: list[str] | None = None
    ) -> list[Dense3DPrediction]:
        """Generate each item's answer and turn its [SEG] states into a point mask (module docstring)."""
        inputs = inputs if isinstance(inputs, Dense3DInputs) else Dense3DInputs(inputs)
        scene = inputs.scene
        questions = questions if questions is not None else scene.questions
        if len(questions) != scene.batch_size:
            raise ModelError(None, f"{len(questions)} questions for a batch of {scene.batch_size} scenes")
        features = self.encode_scene(scene)
        visual = self.visual_tokens(features, inputs.frames)
        text = self.processor.batch(questions, padding_side="left")
        spliced = embed_with_prefix(
            self.llm, text.input_ids, visual, self.ids.image, text.attention_mask, None, self.ids.pad, "left"
        )
        new_ids = generate_with_prefix(self.llm, spliced, max_new_tokens=self.config.max_new_tokens)
        full = append_tokens(self.llm, spliced, new_ids, self.ids.pad)
        out = forward_spliced(self.llm, full, output_hidden_states=True)
        generated = torch.zeros_like(full.attention_mask, dtype=torch.bool)
        generated[:, spliced.input_ids.shape[1] :] = True  # only [SEG]s the model generated count
        positions = seg_positions(full.input_ids, self.ids.seg, self.config.seg_rule) & generated
        positions &= full.attention_mask.bool()
        query, has_seg = self.seg_head.queries_from_hidden(out.hidden_states[-1], positions)
        prompt = full.attention_mask.bool() & ~full.visual_mask & ~generated
        packed = self._prompt(out.hidden_states[-1], prompt, full.inputs_embeds)
        words = self._text(packed)
        decoded = self.decoder(query, features.feats, centres=features.centres, **words)
        logits = empty_mask_where_missing(decoded.pred_masks, has_seg)[:, 0]  # [B, S]
        scores = decoded.pred_scores[:, 0]
        groups = features.groups or [None] * scene.batch_size
        priors, named = [None] * scene.batch_size, [None] * scene.batch_size
        anchors = [None] * scene.batch_size
        if self.class_match is not None:
            matched = self._class_match_outputs(scene, features, packed, relations=True)
            names = ["other", *self.config.class_match.categories]
            priors = [m.prior for m in matched]
            named = [names[int(m.sentence.argmax())] for m in matched]
            anchors = [m.anchor for m in matched]
        return [
            self._prediction(
                scene,
                b,
                logits[b],
                bool(has_seg[b]),
                float(scores[b]),
                new_ids[b],
                groups[b],
                priors[b],
                named[b],
                anchors[b],
            )
            for b in range(scene.batch_size)
        ]

    def _class_match_outputs(
        self,
        scene: SceneBatch,
        features: SceneFeatures,
        packed: tuple[Tensor, Tensor, Tensor],
        relations: bool = False,
    ) -> list[MatchOutputs]:
        """Per item: the prior over its proposals and the classifiers' logits; the proposals of a room are
        classified once for all of its items. `relations` (prediction only) adds the relation prior when the
        config has one."""
        sentence, colour = self.class_match.sentence_logits(*packed)
        proposals: dict[str, Tensor] = {}
        out = []
        for b, scene_id in enumerate(scene.scene_ids):
            if scene_id not in proposals:
                proposals[scene_id] = self.class_match.proposal_logits(
                    features.feats[b], features.counts[b], features.groups[b]
                )
            proposal = proposals[scene_id]
            prior = self.class_match.prior(proposal, sentence[b])
            if colour is not None:
                prior = prior + self.class_match.colour_prior(features.colours[b], colour[b])
            anchor = None
            if relations and features.gaps is not None:
                near, anchor = self.class_match.relation_prior(
                    scene.questions[b], proposal, features.gaps[b], int(sentence[b].argmax())
                )
                prior = prior + near
            out.append(
                MatchOutputs(prior, proposal, sentence[b], None if colour is None else colour[b], anchor)
            )
        return out

    def _class_match_losses(
        self, scene: SceneBatch, features: SceneFeatures, packed: tuple[Tensor, Tensor, Tensor]
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Priors per item, and the classifiers' cross-entropy and accuracy (proposals counted once per
        scene: several queries about one room share its proposals)."""
        vocabulary = self.config.class_match.categories
        outputs = self._class_match_outputs(scene, features, packed)
        po, so = scene.point_offsets.tolist(), scene.superpoint_offsets.tolist()
        proposal_logits, proposal_labels, seen = [], [], set()
        for b, matched in enumerate(outputs):
            if scene.scene_ids[b] in seen:
                continue
            seen.add(scene.scene_ids[b])
            instance = scene.instance[po[b] : po[b + 1]]
            region = features.groups[b][scene.superpoint_ids[po[b] : po[b + 1]] - so[b]]
            point_class = point_classes(instance, scene.object_labels[b], vocabulary)
            proposal_logits.append(matched.proposal)
            proposal_labels.append(region_classes(point_class, instance, region, matched.proposal.shape[0]))
        sentence_labels = torch.tensor(
            [class_id(s.object_name, vocabulary) for s in scene.samples], device=scene.instance.device
        )
        ce_s, acc_s = self.class_match.loss(torch.stack([o.sentence for o in outputs]), sentence_labels)
        ce_p, acc_p = self.class_match.loss(torch.cat(proposal_logits), torch.cat(proposal_labels))
        terms = {
            "loss_class_sentence": ce_s,
            "loss_class_proposal": ce_p,
            "acc_class_sentence": acc_s,
            "acc_class_proposal": acc_p,
        }
        if self.class_match.colour_head is not None:
            # the colour word of the sentence that the targets' own points carry (asked_colours)
            shares = torch.cat(
                [
                    proposal_colours(
                        scene.rgb[po[b] : po[b + 1]][scene.point_mask[po[b] : po[b + 1]]],
                        torch.zeros(int(scene.point_mask[po[b] : po[b + 1]].sum()), dtype=torch.long),
                        1,
                    )
                    for b in range(scene.batch_size)
                ]
            )
            labels = asked_colours(scene.questions, shares)
            ce_c, acc_c = colour_loss(torch.stack([o.colour for o in outputs]), labels)
            terms.update({"loss_colour_sentence": ce_c, "acc_colour_sentence": acc_c})
        return [o.prior for o in outputs], terms

    @staticmethod
    def _prompt(hidden: Tensor, prompt: Tensor, embeds: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The prompt's tokens packed to the front: (last states [B, T', H], input embeddings [B, T', H],
        padding [B, T'] True = padding) from [B, T, H] states, [B, T] bool `prompt` and [B, T, H] embeds."""
        counts = prompt.sum(dim=1)
        width = int(counts.max())
        order = torch.argsort((~prompt).to(torch.int8), dim=1, stable=True)[:, :width]  # prompt tokens first
        index = order[..., None].expand(-1, -1, hidden.shape[-1])
        padding = torch.arange(width, device=hidden.device)[None, :] >= counts[:, None]
        return torch.gather(hidden, 1, index), torch.gather(embeds, 1, index), padding

    def _text(self, packed: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        """The packed prompt (`_prompt`) for the decoder's text attention: {"text": [B, T', d_model],
        "text_padding": [B, T']}; {} when it is off. With `word_skip`, the tokens' input embeddings are
        added after their own projection: a path from the words to the mask that does not wait for the
        LLM to carry them."""
        if self.text_proj is None:
            return {}
        hidden, embeds, padding = packed
        text = self.text_proj(hidden)
        if self.word_proj is not None:
            text = text + self.word_proj(embeds.to(text.dtype))
        return {"text": text, "text_padding": padding}

    def _prediction(
        self,
        scene: SceneBatch,
        b: int,
        logits: Tensor,
        has_seg: bool,
        score: float,
        new_ids: Tensor,
        groups: Tensor | None = None,
        prior: Tensor | None = None,
        named_class: str | None = None,
        anchor_class: str | None = None,
    ) -> Dense3DPrediction:
        s0, s1 = int(scene.superpoint_offsets[b]), int(scene.superpoint_offsets[b + 1])
        p0, p1 = int(scene.point_offsets[b]), int(scene.point_offsets[b + 1])
        probs = logits[: s1 - s0].float().sigmoid()
        local = scene.superpoint_ids[p0:p1] - s0
        if groups is not None and self.selection is not None and has_seg:
            # the LLM answered with [SEG]: the object exists, so the best proposal is taken
            chosen, score = self.selection.choose(
                logits[: s1 - s0], groups, self.config.decoder.mask_threshold, allow_empty=False, prior=prior
            )
            mask = chosen[local].cpu().numpy()
        else:
            mask = (probs[local] > self.config.decoder.mask_threshold).cpu().numpy()
        if mask.sum() < self.config.min_mask_points:
            mask[:] = False
        answer = self.tokenizer.decode(new_ids, skip_special_tokens=False)
        for end in (self.processor.end_text, self.tokenizer.pad_token or ""):
            if end and end in answer:
                answer = answer.split(end)[0]
        return Dense3DPrediction(
            scene.scene_ids[b],
            mask,
            probs.cpu().numpy(),
            answer.strip(),
            has_seg,
            score,
            named_class,
            anchor_class,
        )
