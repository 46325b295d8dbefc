"""[SEG] hidden states → decoder query (Reason3D head), with the zero / several [SEG] conventions.

The LLM marks the object it means with a `[SEG]` token; the last hidden state there becomes the query
of the 3D query decoder. Conventions (REFERENCE §4, Reason3D):

- Position rule: `core.models.common.llm.seg_positions` (the [SEG] position itself by default, LISA's
  "position that predicts [SEG]" on request), computed after the visual tokens are spliced in, the same
  in training (labels) and inference (generated ids); `gather_seg` there averages the states.
- Several [SEG] in one sample: the hidden states are averaged *before* the MLP (Reason3D's inference
  rule), so one sample gives one query.
- No [SEG] in a sample: the pooled state is the zero vector (Reason3D) and `has_seg` is False. The query
  made from it is still well defined, but the sample's answer is the empty mask: callers pass the mask
  logits through `empty_mask_where_missing(logits, has_seg)`, which pushes those rows to
  `EMPTY_LOGIT` (sigmoid 0, so no point is predicted). In training, leave such samples out of the loss
  with `SegLoss(..., sample_mask=has_seg)`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.models.common.llm import gather_seg
from core.models.errors import ModelError

EMPTY_LOGIT = -1.0e4
"""Mask logit that means "certainly not in the mask": finite (safe in BCE and in fp16/bf16), sigmoid 0."""


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

    def queries_from_hidden(self, hidden_states: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Hidden states [B,T,H] + [SEG] positions [B,T] bool (`core.models.common.llm.seg_positions`)
        → (query [B,1,d_model], has_seg [B])."""
        if positions.shape != hidden_states.shape[:2]:
            raise ModelError(
                None,
                f"[SEG] positions {tuple(positions.shape)} != hidden states {tuple(hidden_states.shape[:2])}",
            )
        pooled, counts = gather_seg(hidden_states, positions)
        return self(pooled)[:, None, :], counts > 0


def empty_mask_where_missing(mask_logits: Tensor, has_seg: Tensor) -> Tensor:
    """Mask logits [B,...] with every row of a sample without [SEG] set to `EMPTY_LOGIT` (empty mask)."""
    if has_seg.shape != mask_logits.shape[:1]:
        raise ModelError(
            None, f"has_seg has shape {tuple(has_seg.shape)}, logits have batch {mask_logits.shape[0]}"
        )
    missing = (~has_seg.to(torch.bool)).reshape(-1, *([1] * (mask_logits.dim() - 1)))
    return mask_logits.masked_fill(missing, EMPTY_LOGIT)
