"""Segmentation losses of the query decoder: BCE + Dice on every prediction, IoU-score MSE (Reason3D).

- Targets live on superpoints: `gt_superpoint_mask` turns a point mask into a superpoint mask (a
  superpoint is in the target when more than half of its points are). Multi-target queries are trained on
  the union of the targets; a query with no target has the all-zero target (an empty prediction is the
  right answer).
- BCE: mean over the sample's real superpoints. Dice with +1 smoothing:
  `1 - (2·Σ p·t + 1) / (Σ p + Σ t + 1)`, p = sigmoid(logit). For an empty target this is
  `1 - 1 / (Σ p + 1)`: 0 for an empty prediction, rising towards 1 as predicted mass grows, so "no target"
  is learnable and never divides by zero.
- Score: MSE between sigmoid(score logit) and the actual IoU of the binarised prediction
  (sigmoid >= threshold) with the target, only for predictions whose IoU > `score_iou_threshold`
  (Reason3D); the mean over those, 0 when there are none. The IoU of an empty prediction with an empty
  target is 1 (a correct "no target" answer).
- Every prediction (the pre-layer one and each layer's) is supervised; terms are summed over predictions,
  as in SPFormer / Reason3D, and averaged over (sample, query) pairs. `loss` is the weighted total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.dense3d.query_decoder import QueryDecoderOutput
from core.models.errors import ModelError


def gt_superpoint_mask(point_mask: Tensor, superpoint_ids: Tensor, num_superpoints: int) -> Tensor:
    """Point mask [..., N] (bool or 0/1) + superpoint id per point [N] → float 0/1 mask [..., S].

    A superpoint is 1 when the mean of the point mask over its points is > 0.5; a superpoint without
    points is 0. Leading dimensions (e.g. several targets [T, N]) are kept; union them for a
    multi-target query with `.amax(0)`.
    """
    if point_mask.dim() < 1 or superpoint_ids.dim() != 1 or point_mask.shape[-1] != superpoint_ids.shape[0]:
        raise ModelError(
            None,
            f"point mask {tuple(point_mask.shape)} and superpoint ids {tuple(superpoint_ids.shape)} "
            "must share the last (point) dimension",
        )
    if superpoint_ids.numel():
        lo, hi = int(superpoint_ids.min()), int(superpoint_ids.max())
        if lo < 0 or hi >= num_superpoints:
            raise ModelError(None, f"superpoint ids span [{lo}, {hi}], outside [0, {num_superpoints})")
    ids = superpoint_ids.long()
    lead = point_mask.shape[:-1]
    flat = point_mask.reshape(-1, point_mask.shape[-1]).float()
    sums = flat.new_zeros(flat.shape[0], num_superpoints).index_add_(1, ids, flat)
    counts = torch.bincount(ids, minlength=num_superpoints).to(flat.dtype).clamp(min=1.0)
    return (sums / counts > 0.5).float().reshape(*lead, num_superpoints)


@dataclass
class SegLossConfig:
    """Weights of the terms (Reason3D: 1.0 / 1.0 / 0.5) and the IoU gate of the score loss."""

    bce_weight: float = 1.0
    dice_weight: float = 1.0
    score_weight: float = 0.5
    score_iou_threshold: float = 0.5
    mask_threshold: float = 0.5


def _iou(logits: Tensor, target: Tensor, valid: Tensor, threshold: float) -> Tensor:
    """IoU [B,Q] of the binarised prediction with the target over real superpoints; empty ∩ empty = 1."""
    pred = (logits.sigmoid() >= threshold).to(target.dtype) * valid
    inter = (pred * target).sum(-1)
    union = pred.sum(-1) + target.sum(-1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))


class SegLoss(nn.Module):
    """Returns a dict: `loss` (weighted total), `bce`, `dice`, `score` (each summed over predictions),
    and `iou` (mean IoU of the final prediction, detached, for logging)."""

    def __init__(self, config: SegLossConfig | None = None):
        super().__init__()
        self.config = config or SegLossConfig()

    def forward(
        self,
        output: QueryDecoderOutput,
        targets: Tensor | Sequence[Tensor],
        sample_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """`targets`: per-sample superpoint masks, a list of [S_b] or [Q, S_b], or padded [B, S] /
        [B, Q, S] aligned with `output.padding_mask` (padding values are ignored). `sample_mask` [B]
        bool leaves samples out (e.g. no [SEG] in the labels)."""
        pad = output.padding_mask
        ref = output.mask_logits[0]
        b, q, s = ref.shape
        target = self._targets(targets, pad, q).float()  # float32 sums: bf16 counts exactly only to 256
        valid = (~pad)[:, None, :].expand(b, q, s).float()
        target = target * valid
        n_real = valid.sum(-1)  # [B, Q], >= 1 (the decoder rejects samples without superpoints)
        keep = torch.ones(b, q, dtype=torch.bool, device=ref.device)
        if sample_mask is not None:
            if sample_mask.shape != (b,):
                raise ModelError(None, f"sample_mask must be [B={b}], got {tuple(sample_mask.shape)}")
            keep = keep & sample_mask.to(torch.bool).to(ref.device)[:, None]
        n_keep = keep.sum()

        def mean_kept(x: Tensor) -> Tensor:
            return (x * keep).sum() / n_keep.clamp(min=1)

        cfg = self.config
        zero = (
            sum(x.sum() for x in output.mask_logits) * 0.0 + sum(x.sum() for x in output.score_logits) * 0.0
        )
        bce_total, dice_total, score_total = zero, zero, zero
        iou = None
        for logits, score_logits in zip(output.mask_logits, output.score_logits):
            logits, score_logits = logits.float(), score_logits.float()
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            bce_total = bce_total + mean_kept((bce * valid).sum(-1) / n_real)
            prob = logits.sigmoid() * valid
            dice = 1.0 - (2.0 * (prob * target).sum(-1) + 1.0) / (prob.sum(-1) + target.sum(-1) + 1.0)
            dice_total = dice_total + mean_kept(dice)
            iou = _iou(logits.detach(), target, valid, cfg.mask_threshold)
            gate = keep & (iou > cfg.score_iou_threshold)
            sq_err = (score_logits.sigmoid() - iou) ** 2  # gated mean without a host sync
            score_total = score_total + (sq_err * gate).sum() / gate.sum().clamp(min=1)
        loss = cfg.bce_weight * bce_total + cfg.dice_weight * dice_total + cfg.score_weight * score_total
        final_iou = mean_kept(iou).detach()
        return {"loss": loss, "bce": bce_total, "dice": dice_total, "score": score_total, "iou": final_iou}

    @staticmethod
    def _targets(targets: Tensor | Sequence[Tensor], pad: Tensor, q: int) -> Tensor:
        """Targets as padded [B, Q, S] aligned with the decoder's padding."""
        b, s = pad.shape
        if isinstance(targets, Tensor):
            t = targets if targets.dim() == 3 else targets[:, None, :] if targets.dim() == 2 else None
            if t is None or t.shape[0] != b or t.shape[2] != s or t.shape[1] not in (1, q):
                raise ModelError(
                    None, f"targets must be [B={b}, S={s}] or [B, Q={q}, S], got {tuple(targets.shape)}"
                )
            return t.expand(b, q, s).to(pad.device)
        if len(targets) != b:
            raise ModelError(None, f"got targets for {len(targets)} samples, the decoder output has {b}")
        out = torch.zeros(b, q, s, device=pad.device)
        for i, t in enumerate(targets):
            n = int((~pad[i]).sum())
            t = t.to(pad.device)
            t = t[None, :] if t.dim() == 1 else t
            if t.dim() != 2 or t.shape[1] != n or t.shape[0] not in (1, q):
                raise ModelError(
                    None,
                    f"target of sample {i} must be [{n}] or [Q={q}, {n}] (its superpoints), "
                    f"got {tuple(t.shape)}",
                )
            out[i][:, ~pad[i]] = t.float().expand(q, n)
        return out
