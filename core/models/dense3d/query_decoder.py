"""Transformer query decoder: [SEG] queries × superpoint features → mask logits and IoU scores.

Layout (REFERENCE §4; SPFormer / 3D-STMN / Reason3D family):

- keys: Linear(in_channels→d)+LayerNorm+ReLU of the superpoint features; mask features: a separate MLP
  Linear(in_channels→d)-ReLU-Linear(d→d).
- prediction: mask logits = dot(LN(query), mask_feats) per superpoint; IoU score = MLP(LN(query)), a logit
  (sigmoid gives the predicted IoU). The prediction is made before the first layer and after every layer,
  so 6 layers give 7 predictions, all supervised.
- each layer, in this order: self-attention over queries → cross-attention to the description's tokens
  (when `text_attention` and text states are given) → FFN → cross-attention from queries to superpoints
  → FFN; post-norm residuals `norm(x + dropout(f(x)))` everywhere. The cross-attention
  residual is done right: the SPFormer family computes `dropout(output)` and `norm(output)` there and
  throws both away; here they are applied.
- attention masks: a layer's cross-attention only sees superpoints whose previous prediction has
  sigmoid >= mask_threshold; a row that would see nothing sees every real superpoint instead. Padding is
  masked before that check, so a padded superpoint is never attended and never makes a row "non-empty".

Superpoints per sample vary: pass a list of [S_b, C] tensors, or a padded [B, S, C] tensor with
`padding_mask` [B, S] (True = padding, as in `key_padding_mask`). Padded positions are zeroed, never
attended, and get the logit `EMPTY_LOGIT`; results for real superpoints do not depend on them.

Why text attention: a [SEG] state alone must carry the whole sentence through the LLM. A large pretrained
LLM does that; a small one trained here from a few hundred sentences does not (the shipped default's first
runs gave [SEG] queries that differed by 2% between sentences and collapsed to empty masks). Letting every
layer's query read the description's token states (3D-STMN / MDIN do the same with their text encoders)
gives the mask loss a short path to the words. `text` is [B, T, d_model] with `text_padding` [B, T].

Positions (`positions`, off by default as in SPFormer): an MLP of each superpoint's centre (metres,
relative to the scene's mean centre) is added to the keys and to the mask features, so "the chair left
of the desk" can be resolved by where things are, not only by what they look like. `centres` are passed
like `sp_feats` (a list of [S_b, 3], or padded [B, S, 3]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.models.dense3d.seg_head import EMPTY_LOGIT
from core.models.errors import ModelError


@dataclass
class QueryDecoderConfig:
    """Sizes of the decoder; defaults are the relatives' (d 256, 8 heads, 6 layers, FFN 1024, 32-d input)."""

    d_model: int = 256
    num_heads: int = 8
    num_layers: int = 6
    ffn_dim: int = 1024
    in_channels: int = 32
    dropout: float = 0.0
    mask_threshold: float = 0.5
    attention_masks: bool = True
    text_attention: bool = True  # queries also read the description's token states (module docstring)
    positions: bool = False  # superpoint centres encoded into keys and mask features (module docstring)

    def __post_init__(self) -> None:
        for name in ("d_model", "num_heads", "ffn_dim", "in_channels"):
            if int(getattr(self, name)) <= 0:
                raise ModelError(
                    None, f"QueryDecoderConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if self.num_layers < 0:
            raise ModelError(None, f"QueryDecoderConfig.num_layers must be >= 0, got {self.num_layers}")
        if self.d_model % self.num_heads:
            raise ModelError(
                None,
                f"QueryDecoderConfig.d_model ({self.d_model}) must be divisible by "
                f"num_heads ({self.num_heads})",
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(None, f"QueryDecoderConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ModelError(
                None, f"QueryDecoderConfig.mask_threshold must be in (0, 1), got {self.mask_threshold}"
            )


@dataclass
class QueryDecoderOutput:
    """Every prediction of one forward pass; index 0 is the pre-layer prediction, -1 the final one."""

    mask_logits: list[Tensor]
    """num_layers + 1 tensors [B, Q, S]; padded superpoints hold `EMPTY_LOGIT`."""
    score_logits: list[Tensor]
    """num_layers + 1 tensors [B, Q]; sigmoid gives the predicted IoU of the matching mask."""
    padding_mask: Tensor
    """[B, S] bool, True where a superpoint is padding."""

    @property
    def pred_masks(self) -> Tensor:
        """Final mask logits [B, Q, S]."""
        return self.mask_logits[-1]

    @property
    def pred_scores(self) -> Tensor:
        """Final predicted IoU in [0, 1], [B, Q]."""
        return self.score_logits[-1].sigmoid()

    def per_sample(self, layer: int = -1) -> list[Tensor]:
        """Mask logits of one prediction as a list of [Q, S_b] over each sample's real superpoints."""
        logits = self.mask_logits[layer]
        return [logits[b][:, ~self.padding_mask[b]] for b in range(logits.shape[0])]


def attention_block_mask(mask_logits: Tensor, padding_mask: Tensor, threshold: float = 0.5) -> Tensor:
    """Bool [B, Q, S], True = may not attend: padding, and superpoints predicted below `threshold`.

    A (sample, query) row that would block every superpoint is reset to block only the padding, so the
    attention never sees an empty row (which would give NaN) and never attends padding.
    """
    pad = padding_mask[:, None, :].expand_as(mask_logits)
    block = (mask_logits.detach().sigmoid() < threshold) | pad
    return torch.where(block.all(dim=-1, keepdim=True), pad, block)


class _SelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, query: Tensor) -> Tensor:
        out, _ = self.attn(query, query, query, need_weights=False)
        return self.norm(query + self.dropout(out))


class CrossAttentionLayer(nn.Module):
    """Queries attend to superpoint keys; `norm(query + dropout(attn))` (the SPFormer-family fix)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, query: Tensor, keys: Tensor, block: Tensor) -> Tensor:
        """`query` [B,Q,D], `keys` [B,S,D], `block` [B,Q,S] bool (True = may not attend)."""
        attn_mask = block.repeat_interleave(self.num_heads, dim=0)  # [B*heads, Q, S], batch-major
        out, _ = self.attn(query, keys, keys, attn_mask=attn_mask, need_weights=False)
        return self.norm(query + self.dropout(out))


class _FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, ffn_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, d_model),
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.net(x)))


class DecoderLayer(nn.Module):
    """self-attention → FFN → cross-attention to superpoints → FFN."""

    def __init__(self, config: QueryDecoderConfig):
        super().__init__()
        d, h, p = config.d_model, config.num_heads, config.dropout
        self.self_attn = _SelfAttention(d, h, p)
        self.text_attn = CrossAttentionLayer(d, h, p) if config.text_attention else None
        self.ffn_self = _FeedForward(d, config.ffn_dim, p)
        self.cross_attn = CrossAttentionLayer(d, h, p)
        self.ffn_cross = _FeedForward(d, config.ffn_dim, p)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        block: Tensor,
        text: Tensor | None = None,
        text_block: Tensor | None = None,
    ) -> Tensor:
        query = self.self_attn(query)
        if self.text_attn is not None and text is not None:
            query = self.text_attn(query, text, text_block)
        query = self.ffn_self(query)
        return self.ffn_cross(self.cross_attn(query, keys, block))


class QueryDecoder(nn.Module):
    """Mask decoder over superpoints; see the module docstring for layout and conventions."""

    def __init__(self, config: QueryDecoderConfig | None = None):
        super().__init__()
        self.config = config = config or QueryDecoderConfig()
        d = config.d_model
        self.input_proj = nn.Sequential(
            nn.Linear(config.in_channels, d), nn.LayerNorm(d), nn.ReLU(inplace=True)
        )
        self.mask_mlp = nn.Sequential(
            nn.Linear(config.in_channels, d), nn.ReLU(inplace=True), nn.Linear(d, d)
        )
        self.key_pos = self.mask_pos = None
        if config.positions:
            self.key_pos = nn.Sequential(nn.Linear(3, d), nn.ReLU(inplace=True), nn.Linear(d, d))
            self.mask_pos = nn.Sequential(nn.Linear(3, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.out_norm = nn.LayerNorm(d)
        self.score_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, 1))

    def forward(
        self,
        query: Tensor,
        sp_feats: Tensor | Sequence[Tensor],
        padding_mask: Tensor | None = None,
        text: Tensor | None = None,
        text_padding: Tensor | None = None,
        centres: Tensor | Sequence[Tensor] | None = None,
    ) -> QueryDecoderOutput:
        """`query` [B, Q, d_model] (or [B, d_model] for one query each); `sp_feats` a list of [S_b, C]
        or a padded [B, S, C] with `padding_mask` [B, S] (True = padding; None = no padding); `text`
        [B, T, d_model] token states with `text_padding` [B, T] (True = padding), read when the config has
        `text_attention`; `centres` the superpoint centres, required when the config has `positions`."""
        feats, pad = self._batch(sp_feats, padding_mask)
        if query.dim() == 2:
            query = query[:, None, :]
        if query.dim() != 3 or query.shape[0] != feats.shape[0] or query.shape[-1] != self.config.d_model:
            raise ModelError(
                None,
                f"query must be [B={feats.shape[0]}, Q, {self.config.d_model}], "
                f"got shape {tuple(query.shape)}",
            )
        text_block = self._text_block(text, text_padding, query) if text is not None else None
        keys = self.input_proj(feats)
        mask_feats = self.mask_mlp(feats)
        if self.key_pos is not None:
            rel = self._relative_centres(centres, pad)
            keys = keys + self.key_pos(rel)
            mask_feats = mask_feats + self.mask_pos(rel)
        logits, score, block = self._predict(query, mask_feats, pad)
        mask_logits, score_logits = [logits], [score]
        for layer in self.layers:
            query = layer(query, keys, block, text, text_block)
            logits, score, block = self._predict(query, mask_feats, pad)
            mask_logits.append(logits)
            score_logits.append(score)
        return QueryDecoderOutput(mask_logits, score_logits, pad)

    def _relative_centres(self, centres: Tensor | Sequence[Tensor] | None, pad: Tensor) -> Tensor:
        """Padded [B, S, 3] centres minus each sample's mean real centre (zero on padding)."""
        if centres is None:
            raise ModelError(
                None, "the decoder encodes positions (positions=True): pass the superpoint centres"
            )
        if not isinstance(centres, Tensor):
            centres = nn.utils.rnn.pad_sequence([c.to(pad.device) for c in centres], batch_first=True)
        if centres.shape != (*pad.shape, 3):
            raise ModelError(
                None, f"centres must be [B, S, 3] = {(*pad.shape, 3)}, not {tuple(centres.shape)}"
            )
        real = (~pad)[..., None].to(centres.dtype)
        mean = (centres * real).sum(dim=1, keepdim=True) / real.sum(dim=1, keepdim=True)
        return (centres - mean) * real

    def _text_block(self, text: Tensor, text_padding: Tensor | None, query: Tensor) -> Tensor:
        """[B, Q, T] bool (True = may not attend) from the text padding; checks shapes."""
        b, q, d = query.shape
        if text.dim() != 3 or text.shape[0] != b or text.shape[-1] != d:
            raise ModelError(None, f"text states must be [B={b}, T, {d}], got {tuple(text.shape)}")
        pad = (
            torch.zeros(text.shape[:2], dtype=torch.bool, device=text.device)
            if text_padding is None
            else text_padding.to(torch.bool)
        )
        if pad.shape != text.shape[:2] or bool(pad.all(dim=1).any()):
            raise ModelError(None, "text_padding must be [B, T] and leave at least one token per sample")
        return pad[:, None, :].expand(b, q, pad.shape[1])

    def _predict(self, query: Tensor, mask_feats: Tensor, pad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q = self.out_norm(query)
        logits = torch.einsum("bqd,bsd->bqs", q, mask_feats).masked_fill(pad[:, None, :], EMPTY_LOGIT)
        score = self.score_head(q).squeeze(-1)
        if self.config.attention_masks:
            block = attention_block_mask(logits, pad, self.config.mask_threshold)
        else:
            block = pad[:, None, :].expand_as(logits)
        return logits, score, block

    def _batch(
        self, sp_feats: Tensor | Sequence[Tensor], padding_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Padded features [B, S, C] (padding zeroed) and padding mask [B, S]."""
        c = self.config.in_channels
        if isinstance(sp_feats, Tensor):
            if sp_feats.dim() != 3 or sp_feats.shape[-1] != c:
                raise ModelError(
                    None, f"superpoint features must be [B, S, {c}], got {tuple(sp_feats.shape)}"
                )
            if padding_mask is None:
                pad = torch.zeros(sp_feats.shape[:2], dtype=torch.bool, device=sp_feats.device)
            elif padding_mask.shape != sp_feats.shape[:2]:
                raise ModelError(
                    None,
                    f"padding_mask {tuple(padding_mask.shape)} does not match "
                    f"features {tuple(sp_feats.shape)}",
                )
            else:
                pad = padding_mask.to(torch.bool)
            feats = sp_feats.masked_fill(pad[..., None], 0.0)
        else:
            if padding_mask is not None:
                raise ModelError(None, "padding_mask is only for padded [B, S, C] features, not a list")
            if len(sp_feats) == 0:
                raise ModelError(None, "superpoint features: empty batch")
            for b, f in enumerate(sp_feats):
                if f.dim() != 2 or f.shape[-1] != c:
                    raise ModelError(
                        None, f"superpoint features of sample {b} must be [S, {c}], got {tuple(f.shape)}"
                    )
            feats = nn.utils.rnn.pad_sequence(list(sp_feats), batch_first=True)
            lengths = torch.tensor([f.shape[0] for f in sp_feats], device=feats.device)
            pad = torch.arange(feats.shape[1], device=feats.device)[None, :] >= lengths[:, None]
        empty = (~pad).sum(dim=1) == 0
        if bool(empty.any()):
            raise ModelError(
                None,
                f"sample {int(empty.nonzero()[0])} has no superpoints: a scene needs at least one superpoint",
            )
        return feats, pad
