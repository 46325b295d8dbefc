"""Relation matching: "the chair next to the desk" picks the chair that is near a desk.

Why: after class and colour matching the model picks among a class's copies well above chance but reads no
relation (bench/refseg_failure_modes.py), while most generated descriptions of an object with same-class
copies name another object it is on, next to or near: on the val rooms 79% do, and the copy nearest to an
object of that class is the target 67% of the time against 34% by chance (`bench/relation_probe.py`, ground
truth boxes). So, as the class and colour priors do, a prior on the proposal choice:

    near(g) = max over other proposals q of p(anchor class | q) * exp(-gap(g, q) / scale)
    logit(proposal g) += weight * log(near(g) + FLOOR)

`gap` is the distance between the proposals' axis-aligned boxes (0 when they touch or overlap), so a chair
beside a long table is near it although the table's centre is far; p(class | q) is the model's own
proposal classifier. The anchor class is read from the sentence by `AnchorReader` (the first object name
of the vocabulary it mentions that is not the class the model read as the target): a parser, as the
two-stage grounders parse anchors, not a learned head. Only proximity is read: "farthest from", left /
right and "between" are not. A sentence without an anchor leaves the choice alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from core.models.common.categories import OTHER

RELATION_FLOOR = 1e-3  # added to the agreement: a proposal near no such anchor is unlikely, not impossible


def _name_patterns(vocabulary: Sequence[str]) -> list[tuple[int, re.Pattern]]:
    """(class id, whole-word pattern of its name with spaces or underscores), longest names first so that
    "coffee table" is found before "table"."""
    order = sorted(range(len(vocabulary)), key=lambda i: -len(vocabulary[i]))
    out = []
    for i in order:
        words = re.split(r"[ _]+", vocabulary[i].strip().lower())
        out.append((i + 1, re.compile(r"\b" + r"[ _]".join(map(re.escape, words)) + r"s?\b")))
    return out


class AnchorReader:
    """Reads the anchor class of a sentence: the first vocabulary name it mentions (whole words, plural "s"
    allowed, longest names first so that "coffee table" is not read as "table") that is not the class of the
    target itself."""

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = list(vocabulary)
        self.patterns = _name_patterns(self.vocabulary)

    def __call__(self, text: str, target_class: int) -> int:
        """Class id of the anchor (1..K), OTHER when the sentence names no other class."""
        lowered, found = text.lower(), []
        taken = [False] * len(lowered)
        for cid, pattern in self.patterns:
            for m in pattern.finditer(lowered):
                if not any(taken[m.start() : m.end()]):
                    taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                    if cid != target_class:
                        found.append((m.start(), cid))
        return min(found)[1] if found else OTHER

    def name(self, class_id_: int) -> str | None:
        return None if class_id_ == OTHER else self.vocabulary[class_id_ - 1]


def proposal_boxes(xyz: Tensor, region: Tensor, num_regions: int) -> Tensor:
    """[R, 6] (min xyz, max xyz) of each region's points (`region` [N] ids in [0, num_regions)); a region
    without points gets an empty box far away."""
    xyz = xyz.detach().float()
    index = region[:, None].expand(-1, 3)
    low = xyz.new_full((num_regions, 3), 1e6).scatter_reduce(0, index, xyz, "amin")
    high = xyz.new_full((num_regions, 3), 1e6).scatter_reduce(0, index, xyz, "amax", include_self=False)
    return torch.cat([low, high], dim=1)


def box_gaps(boxes: Tensor) -> Tensor:
    """[R, R] Euclidean distance between axis-aligned boxes [R, 6] (min xyz, max xyz; 0 when they overlap or
    touch), the batched form of `core.scene.relations.box_gap` that the generator says "near" by; the
    diagonal is +inf (a proposal is not its own anchor)."""
    low, high = boxes[:, :3], boxes[:, 3:]
    apart = (low[None] - high[:, None]).clamp(min=0) + (low[:, None] - high[None]).clamp(min=0)
    gaps = apart.norm(dim=-1)
    return gaps.fill_diagonal_(float("inf"))


def centre_size_gaps(boxes: Tensor) -> Tensor:
    """`box_gaps` of boxes given as [R, 6] centre and size (the benchmarks' and Ross3D's box format)."""
    centre, half = boxes[:, :3].float(), boxes[:, 3:6].float() / 2
    return box_gaps(torch.cat([centre - half, centre + half], dim=1))


def relation_agreement(
    proposal_logits: Tensor, gaps: Tensor, anchor: int, weight: float, scale: float
) -> Tensor:
    """[G]: weight * log(near(g, anchor) + FLOOR) from the proposals' class logits [G, K + 1] and their box
    gaps [G, G] (`box_gaps`); zeros when the sentence names no anchor (`anchor` == OTHER). Detached."""
    if anchor == OTHER:
        return proposal_logits.new_zeros(proposal_logits.shape[0], dtype=torch.float32)
    anchors = proposal_logits.detach().float().softmax(-1)[:, anchor]  # [G]: p(q is of the anchor class)
    closeness = torch.exp(-gaps.float().to(anchors.device) / scale)  # [G, G], 0 on the diagonal
    near = (closeness * anchors[None]).amax(dim=1)
    return weight * torch.log(near + RELATION_FLOOR)
