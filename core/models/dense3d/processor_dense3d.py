"""Text in and out of Dense3D: the chat prompt around a description, and the answer the LLM learns.

The user turn is `<image>` (where the scene's visual tokens are spliced in) followed by the description;
the assistant turn is the answer template of `core.data.datasets.refseg` ("It is [SEG]."). Prompt and
answer are tokenized apart, so the labels cover exactly the answer and its end token, whatever the
tokenizer's merges; the same prompt is used for generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from core.models.common.llm import IGNORE_INDEX
from core.models.common.tokenizer import IM_END, IMAGE_TOKEN
from core.models.errors import ModelError


@dataclass
class TextBatch:
    input_ids: Tensor  # [B, L] padded on `padding_side`
    attention_mask: Tensor  # [B, L]
    labels: Tensor | None  # [B, L], IGNORE_INDEX outside the answers (None for generation prompts)


class Dense3DProcessor:
    """Builds token batches from questions (and answers, for training) with the model's tokenizer."""

    def __init__(self, tokenizer: Any, max_question_tokens: int = 96):
        self.tokenizer = tokenizer
        self.max_question_tokens = max_question_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        vocab = tokenizer.get_vocab()
        self.end_text = IM_END if IM_END in vocab else (tokenizer.eos_token or "")

    def _question(self, question: str) -> str:
        """The description, cut to `max_question_tokens` tokens (and never holding a task token)."""
        text = " ".join(question.split())
        for token in (IMAGE_TOKEN, "[SEG]"):
            text = text.replace(token, " ")
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) > self.max_question_tokens:
            text = self.tokenizer.decode(ids[: self.max_question_tokens])
        return text

    def prompt(self, question: str) -> str:
        """The chat prompt up to where the assistant's answer starts."""
        messages = [{"role": "user", "content": f"{IMAGE_TOKEN}\n{self._question(question)}"}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return f"USER: {messages[0]['content']}\nASSISTANT: "

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def batch(
        self, questions: list[str], answers: list[str] | None = None, padding_side: str = "right"
    ) -> TextBatch:
        """Token ids of prompts (+ answers with labels when `answers` is given), padded to one length."""
        if answers is not None and len(answers) != len(questions):
            raise ModelError(None, f"{len(questions)} questions but {len(answers)} answers")
        rows, label_rows = [], []
        for i, question in enumerate(questions):
            prompt = self._ids(self.prompt(question))
            if answers is None:
                rows.append(prompt)
                continue
            answer = self._ids(answers[i] + self.end_text)
            rows.append(prompt + answer)
            label_rows.append([IGNORE_INDEX] * len(prompt) + answer)
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = (
            torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long) if answers is not None else None
        )
        for i, row in enumerate(rows):
            span = slice(0, len(row)) if padding_side == "right" else slice(length - len(row), length)
            ids[i, span] = torch.tensor(row)
            mask[i, span] = 1
            if labels is not None:
                labels[i, span] = torch.tensor(label_rows[i])
        return TextBatch(ids, mask, labels)
