"""Copying the box's class name into its Scan2Cap caption (a pointer-generator over class names).

A small LLM trained from scratch writes fluent caption templates but takes the object's name from the
caption prior rather than from the box: the shipped 2-layer model names the right class in about 15-20% of
its val captions, while the grounding head's object classifier names 83% of the same boxes (README,
Models: Ross3D). Captioners that must name detected objects copy the detector's words (pointer-generator
networks; the copying mechanism of novel-object captioning); here the next-token distribution at each
caption position is

    p(w) = (1 - g) p_LM(w) + g sum_c p(c | box) [w = the first token of c's name]

with the gate g = sigmoid(linear(h)) read from the LLM's final hidden state h at that position (the one the
LM head reads) and p(c | box) the object classifier's probabilities over the real classes (detached,
"other" left out and the rest renormalised). The rest of a two-word name ("office chair") is the LM's to
continue. Training uses the mixture's negative log-likelihood on the caption tokens; greedy generation
takes the argmax of the same mixture through `CopyLogits`, so the two agree (a test checks it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import LogitsProcessor

from core.models.errors import ModelError

GATE_BIAS = -3.0  # sigmoid(-3) ~ 0.05: training starts close to the LM alone


def first_name_tokens(tokenizer: Any, categories: list[str] | tuple[str, ...]) -> list[int]:
    """The first token id of each class name as it follows a word in a sentence (" " + name)."""
    ids = []
    for name in categories:
        encoded = tokenizer.encode(" " + name, add_special_tokens=False)
        if not encoded:
            raise ModelError(None, f"caption_copy: the class name {name!r} encodes to no tokens")
        ids.append(int(encoded[0]))
    return ids


class CaptionCopy(nn.Module):
    """The copy gate and the class-name token table (module docstring)."""

    def __init__(self, hidden: int, name_token_ids: list[int]):
        super().__init__()
        self.gate = nn.Linear(hidden, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, GATE_BIAS)
        self.register_buffer("name_ids", torch.tensor(name_token_ids, dtype=torch.long), persistent=False)

    def distribution(self, class_probs: Tensor, vocab_size: int) -> Tensor:
        """[R,V] copy distributions from the object classifier's probabilities [R,1+C] ("other" first)."""
        if class_probs.shape[-1] != self.name_ids.numel() + 1:
            raise ModelError(
                None,
                f"caption_copy: {class_probs.shape[-1]} class probabilities for {self.name_ids.numel()} "
                "class names + other",
            )
        real = class_probs[:, 1:].float()
        real = real / real.sum(-1, keepdim=True).clamp(min=1e-9)
        out = real.new_zeros(real.shape[0], vocab_size)
        return out.index_add_(1, self.name_ids.to(out.device), real)

    def log_probs(self, logits: Tensor, hidden: Tensor, copy: Tensor) -> Tensor:
        """log p(w) of the mixture for logits [...,V], final hidden states [...,H] and copy rows [...,V]."""
        a = self.gate(hidden.to(self.gate.weight.dtype)).float()
        lm = logits.float().log_softmax(-1)
        return torch.logaddexp(F.logsigmoid(-a) + lm, F.logsigmoid(a) + copy.float().clamp(min=1e-30).log())


@contextmanager
def lm_head_inputs(llm: nn.Module) -> Iterator[list[Tensor]]:
    """While open, the hidden states each LM-head call reads are appended to the yielded list (the gate
    reads exactly what the logits were computed from, in training and at each generated token)."""
    seen: list[Tensor] = []

    def hook(_module: nn.Module, inputs: Any) -> None:
        seen.append(inputs[0])

    handle = llm.get_output_embeddings().register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


class CopyLogits(LogitsProcessor):
    """A transformers logits processor for greedy generation with the copy mixture: rows where `active` is
    True get the mixture's log-probabilities, the others their logits unchanged. `seen` is the list
    `lm_head_inputs` fills; its last entry holds the state of the position being predicted."""

    def __init__(self, copy_head: CaptionCopy, copy: Tensor, active: Tensor, seen: list[Tensor]):
        self.copy_head, self.copy, self.active, self.seen = copy_head, copy, active, seen

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if not self.seen:
            raise ModelError(None, "caption_copy: no LM-head input seen before the logits")
        hidden = self.seen[-1][:, -1]
        mixed = self.copy_head.log_probs(scores, hidden, self.copy.to(scores.device))
        return torch.where(self.active.to(scores.device)[:, None], mixed.to(scores.dtype), scores)


def copy_nll(log_probs: Tensor, targets: Tensor) -> Tensor:
    """Mean negative log-likelihood of targets [N] under log-probabilities [N,V] (the LM loss's mean over
    answer tokens)."""
    if targets.numel() == 0:
        return log_probs.sum() * 0.0
    return -log_probs.gather(1, targets[:, None]).mean()
