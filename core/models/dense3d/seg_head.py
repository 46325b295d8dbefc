"""[SEG] hidden states → decoder query (Reason3D head), with the zero / several [SEG] conventions.

The LLM marks the object it means with a `[SEG]` token; the last hidden state there becomes the query
of the 3D query decoder. Conventions (REFERENCE §4, Reason3D):

- Position rule: `seg_token_mask(ids, seg_id, rule=...)` gives the positions. `rule="token"` (default)
  takes the [SEG] position itself; `rule="predicting"` takes the position whose logits *predict* [SEG]
  (LISA style). Compute it on the ids after the visual tokens are spliced in, and use the same rule in
  training (labels) and inference (generated ids).
- Several [SEG] in one sample: the hidden states are averaged *before* the MLP (Reason3D's inference
  rule), so one sample gives one query.
- No [SEG] in a sample: the pooled state is the zero vector (Reason3D) and `has_seg` is False. The query
  made from it is still well defined, but the sample's answer is the empty mask: callers pass the mask
  logits through `empty_mask_where_missing(logits, has_seg)`, which pushes those rows to
  `EMPTY_LOGIT` (sigmoid 0, so no point is predicted). In training, leave such samples out of the loss
  with `SegLoss(..., sample_mask=has_seg)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from core.models.errors import ModelError

EMPTY_LOGIT = -1.0e4
"""Mask logit that means "certainly not in the mask": finite (safe in BCE and in fp16/bf16), sigmoid 0."""


def seg_token_mask(input_ids: Tensor, seg_token_id: int, rule: str = "token") -> Tensor:
    """Bool [B,T] mask of the positions whose hidden state drives the query.

    `rule="token"`: the [SEG] positions; `rule="predicting"`: the position just before each [SEG], whose
    output predicts it (LISA). A [SEG] at position 0 has no predicting position and is skipped.
    """
    if input_ids.dim() != 2:
        raise ModelError(None, f"input_ids must be [B,T], got shape {tuple(input_ids.shape)}")
    is_seg = input_ids == seg_token_id
    if rule == "token":
        return is_seg
    if rule == "predicting":
        out = torch.zeros_like(is_seg)
        out[:, :-1] = is_seg[:, 1:]
        return out
    raise ModelError(None, f"seg position rule must be 'token' or 'predicting', got {rule!r}")


def pool_seg_states(
    hidden_states: Tensor, positions: Tensor | Sequence[Sequence[int] | Tensor]
) -> tuple[Tensor, Tensor]:
    """Average the hidden states at each sample's [SEG] positions.

    `hidden_states` [B,T,H]; `positions` either a bool mask [B,T] (e.g. from `seg_token_mask`) or, per
    sample, a list / 1-D tensor of indices into T (may be empty). Returns `(pooled [B,H], has_seg [B])`:
    the mean over the sample's positions, or the zero vector with `has_seg` False when it has none.
    """
    if hidden_states.dim() != 3:
        raise ModelError(None, f"hidden_states must be [B,T,H], got shape {tuple(hidden_states.shape)}")
    b, t, _ = hidden_states.shape
    if isinstance(positions, Tensor) and positions.dtype == torch.bool:
        if positions.shape != (b, t):
            raise ModelError(
                None, f"seg position mask has shape {tuple(positions.shape)}, hidden states are [{b},{t},H]"
            )
        weights = positions.to(hidden_states.dtype)
    else:
        if len(positions) != b:
            raise ModelError(None, f"got seg positions for {len(positions)} samples, hidden states have {b}")
        weights = hidden_states.new_zeros(b, t)
        for i, pos in enumerate(positions):
            idx = torch.as_tensor(pos, dtype=torch.long, device=hidden_states.device).reshape(-1)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= t):
                raise ModelError(None, f"seg position out of range [0,{t}) in sample {i}: {idx.tolist()}")
            weights[i, idx] = 1.0  # a position listed twice counts once
    counts = weights.sum(dim=1)
    pooled = torch.einsum("bt,bth->bh", weights, hidden_states) / counts.clamp(min=1.0)[:, None]
    return pooled, counts > 0


class SegHead(nn.Module):
    """Reason3D's head: Linear(H,H)-ReLU-Linear(H,proj_dim) then Linear(proj_dim, d_model)."""

    def __init__(self, hidden_size: int, d_model: int = 256, proj_dim: int = 512):
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("d_model", d_model), ("proj_dim", proj_dim)):
            if value <= 0:
                raise ModelError(None, f"SegHead.{name} must be positive, got {value}")
        self.hidden_size = hidden_size
        self.text_hidden_fcs = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(inplace=True), nn.Linear(hidden_size, proj_dim)
        )
        self.to_query = nn.Linear(proj_dim, d_model)

    def forward(self, seg_states: Tensor) -> Tensor:
        """[..., H] pooled [SEG] states → [..., d_model] queries."""
        if seg_states.shape[-1] != self.hidden_size:
            raise ModelError(
                None, f"[SEG] states have width {seg_states.shape[-1]}, the head expects {self.hidden_size}"
            )
        return self.to_query(self.text_hidden_fcs(seg_states))

    def queries_from_hidden(
        self, hidden_states: Tensor, positions: Tensor | Sequence[Sequence[int] | Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Hidden states [B,T,H] + per-sample [SEG] positions → (query [B,1,d_model], has_seg [B])."""
        pooled, has_seg = pool_seg_states(hidden_states, positions)
        return self(pooled)[:, None, :], has_seg


def empty_mask_where_missing(mask_logits: Tensor, has_seg: Tensor) -> Tensor:
    """Mask logits [B,...] with every row of a sample without [SEG] set to `EMPTY_LOGIT` (empty mask)."""
    if has_seg.shape != mask_logits.shape[:1]:
        raise ModelError(
            None, f"has_seg has shape {tuple(has_seg.shape)}, logits have batch {mask_logits.shape[0]}"
        )
    missing = (~has_seg.to(torch.bool)).reshape(-1, *([1] * (mask_logits.dim() - 1)))
    return mask_logits.masked_fill(missing, EMPTY_LOGIT)
