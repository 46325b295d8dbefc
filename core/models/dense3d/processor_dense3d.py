"""Text in and out of Dense3D: the chat prompt around a description, and the answer the LLM learns.

The user turn is `<image>` (where the scene's visual tokens are spliced in) followed by the description;
the assistant turn is the answer template of `core.data.datasets.refseg` ("It is [SEG]."). Prompt and
answer are tokenized apart, so the labels cover exactly the answer and its end token, whatever the
tokenizer's merges; the same prompt is used for generation.
"""

from __future__ import annotations

from typing import Any

from core.models.common.chat_text import TextBatch, chat_prompt, end_text_of, pad_id_of, pad_rows
from core.models.common.tokenizer import IMAGE_TOKEN
from core.models.errors import ModelError


class Dense3DProcessor:
    """Builds token batches from questions (and answers, for training) with the model's tokenizer."""

    def __init__(self, tokenizer: Any, max_question_tokens: int = 96):
        self.tokenizer = tokenizer
        self.max_question_tokens = max_question_tokens
        self.pad_id = pad_id_of(tokenizer)
        self.end_text = end_text_of(tokenizer)

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
        return chat_prompt(self.tokenizer, self._question(question))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def batch(
        self, questions: list[str], answers: list[str] | None = None, padding_side: str = "right"
    ) -> TextBatch:
        """Token ids of prompts (+ answers with labels when `answers` is given), padded to one length."""
        if answers is not None and len(answers) != len(questions):
            raise ModelError(None, f"{len(questions)} questions but {len(answers)} answers")
        prompts = [self._ids(self.prompt(q)) for q in questions]
        answer_ids = [self._ids(a + self.end_text) for a in answers] if answers is not None else None
        return pad_rows(prompts, answer_ids, self.pad_id, padding_side)
