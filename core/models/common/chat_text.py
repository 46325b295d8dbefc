"""Token batches for chat-style prompts with a labelled answer: what Dense3D's and Ross3D's processors share.

Prompt and answer are tokenized apart, so the labels cover exactly the answer and its end token whatever
the tokenizer's merges; rows are padded on either side (left for batched generation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from core.models.common.llm import IGNORE_INDEX
from core.models.common.tokenizer import IM_END, IMAGE_TOKEN


@dataclass
class TextBatch:
    input_ids: Tensor  # [B, L] padded on `padding_side`
    attention_mask: Tensor  # [B, L]
    labels: Tensor | None  # [B, L], IGNORE_INDEX outside the answers (None for generation prompts)


def pad_id_of(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def end_text_of(tokenizer: Any) -> str:
    """The text that ends an assistant turn: `<|im_end|>` when the vocabulary has it, else the EOS."""
    return IM_END if IM_END in tokenizer.get_vocab() else (tokenizer.eos_token or "")


def chat_prompt(tokenizer: Any, user_text: str) -> str:
    """The chat prompt of one user turn (`<image>` then the text) up to where the answer starts."""
    messages = [{"role": "user", "content": f"{IMAGE_TOKEN}\n{user_text}"}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return f"USER: {messages[0]['content']}\nASSISTANT: "


def pad_rows(
    prompts: list[list[int]], answers: list[list[int]] | None, pad_id: int, padding_side: str = "right"
) -> TextBatch:
    """Prompt ids (+ answer ids, labelled, when `answers` is given) padded to one length."""
    rows = prompts if answers is None else [p + a for p, a in zip(prompts, answers)]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long) if answers is not None else None
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if padding_side == "right" else slice(length - len(row), length)
        ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
        if labels is not None:
            labels[i, span] = torch.tensor([IGNORE_INDEX] * len(prompts[i]) + answers[i])
    return TextBatch(ids, mask, labels)
