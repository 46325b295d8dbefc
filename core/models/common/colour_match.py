"""Colour matching, shared by Dense3D's class matching and Ross3D's grounding head.

Why: among objects of the class a description names, the decoder picked at chance (bench/
refseg_failure_modes.py), while half of the descriptions of an object with same-class twins name its
colour. A proposal's colour is not learned: it is the share of its points (Dense3D) or of its patches'
pixels (Ross3D) whose colour reads as each word of `core.scene.colors.COLOR_WORDS`, the rule the pipeline
and the generator name objects' colours by, so it reads real scans the same way. The sentence side is a
classifier over the words plus "no colour", trained on the attribute word of the description
(`asked_colours`: the colour word of the sentence that the target itself carries most, as InstanceRefer
parses the target's attributes), and

    logit(proposal g) += weight * log(p(none | sentence) + sum_w p(w | sentence) * share(w | g) + FLOOR)

so a sentence that names no colour leaves the choice alone.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor

from core.models.common.categories import IGNORE
from core.scene.colors import COLOR_WORDS, sample_word_indices

COLOUR_FLOOR = 1e-3  # added to the colour agreement: a proposal without the colour is unlikely
NO_COLOUR = len(COLOR_WORDS)  # the colour classifier's last class: the sentence names no colour of the target
MIN_SHARE = 0.2  # a colour word of the sentence is the target's when at least this share of its points has it
_COLOUR_PATTERNS = [re.compile(rf"\b{word}\b") for word in COLOR_WORDS]


def colour_loss(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(cross-entropy, accuracy) of colour logits [M, W + 1] against `asked_colours` labels [M] (IGNORE
    rows, queries without a target, left out)."""
    keep = labels != IGNORE
    if not bool(keep.any()):
        return logits.sum() * 0.0, logits.new_zeros(())
    logits, labels = logits[keep].float(), labels[keep]
    return F.cross_entropy(logits, labels), (logits.argmax(-1) == labels).float().mean().detach()


def colour_agreement(shares: Tensor, colour_logits: Tensor, weight: float) -> Tensor:
    """[G]: weight * log(p(none) + sum_w p(w) share(w | g) + COLOUR_FLOOR), detached (module docstring)."""
    asked = colour_logits.detach().float().softmax(-1)
    agree = shares.float() @ asked[:NO_COLOUR] + asked[NO_COLOUR]
    return weight * torch.log(agree + COLOUR_FLOOR)


def asked_colours(texts: list[str], target_shares: Tensor) -> Tensor:
    """[B] long: per description, the colour word it names that the target's points carry most (index into
    `COLOR_WORDS`, when at least MIN_SHARE of them do), NO_COLOUR when it names none of the target's colours,
    IGNORE when there is no target (its shares [B, W] are all 0: a sentence about nothing teaches nothing)."""
    labels = []
    for text, shares in zip(texts, target_shares.tolist()):
        if sum(shares) == 0:
            labels.append(IGNORE)
            continue
        lowered = text.lower()
        named = [w for w, pattern in enumerate(_COLOUR_PATTERNS) if pattern.search(lowered)]
        best = max(named, key=lambda w: shares[w], default=None)
        labels.append(best if best is not None and shares[best] >= MIN_SHARE else NO_COLOUR)
    return torch.tensor(labels, dtype=torch.long, device=target_shares.device)


def colour_word_shares(words: Tensor, region: Tensor, num_regions: int) -> Tensor:
    """[R, W]: per region, the share of its samples whose colour word (`words` [N], indices into
    `COLOR_WORDS`) is each word; `region` [N] ids in [0, num_regions); rows of empty regions are 0."""
    counts = torch.zeros(num_regions, len(COLOR_WORDS), device=region.device)
    ones = torch.ones(words.shape, dtype=counts.dtype, device=region.device)
    counts.index_put_((region, words.to(region.device)), ones, accumulate=True)
    return counts / counts.sum(-1, keepdim=True).clamp(min=1)


def proposal_colours(rgb: Tensor, region: Tensor, num_regions: int) -> Tensor:
    """[R, W]: per region, the share of its points whose colour reads as each word of
    `core.scene.colors.COLOR_WORDS` (rows of regions without points are 0). `rgb` [N, 3] in [-1, 1] (the
    scene batch's convention, `core.data.datasets.loader`); `region` [N] ids in [0, num_regions)."""
    colour = ((rgb.detach().float().cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
    return colour_word_shares(torch.from_numpy(sample_word_indices(colour)), region, num_regions)
