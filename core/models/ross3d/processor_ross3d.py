"""Ross3D's inputs and text: one sample (`Ross3DSample`), a task-grouped batch, and the chat prompts.

The user turn is `<image>` (where the frames' visual tokens are spliced in) followed by the task's text:

- ScanQA: the question + "Answer the question using a single word or phrase." (Video-3D-LLM's phrasing);
- SQA3D: the situation, then the question, then the same instruction;
- Scan2Cap: "Describe the object at <coord> in the scene." with the queried box written as text after
  `<coord>` ("<coord> [cx, cy, cz, dx, dy, dz]" in metres, 2 decimals), the box coming from
  `sample.box` or, when absent, the sample's first target proposal;
- ScanRefer / Multi3DRefer: the description + "Which object does this description refer to?"; the answer
  is "It is <ground>." unless the sample carries its own (which must hold `<ground>`).

Prompt and answer are tokenized apart, so the labels cover exactly the answer and its end token.
Task tokens in the user's text (`<image>`, `<ground>`, `[SEG]`, and `<coord>` outside Scan2Cap) are
removed so that a description cannot add a placeholder; long texts are cut to `max_question_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from core.models.common.chat_text import TextBatch, chat_prompt, end_text_of, pad_id_of, pad_rows
from core.models.common.image_tokens import FrameInputs
from core.models.common.tokenizer import COORD_TOKEN, GROUND_TOKEN, IMAGE_TOKEN, SEG_TOKEN
from core.models.errors import ModelError

TASKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")
GROUNDING_TASKS = ("scanrefer", "multi3drefer")
QA_INSTRUCTION = "Answer the question using a single word or phrase."
CAPTION_PROMPT = f"Describe the object at {COORD_TOKEN} in the scene."
GROUND_INSTRUCTION = "Which object does this description refer to?"
GROUND_ANSWER = f"It is {GROUND_TOKEN}."


@dataclass
class Ross3DSample:
    """One training / evaluation item: a question about a scene, its frames and (for training) targets."""

    scene_id: str
    task: str  # one of TASKS
    question: str  # the benchmark text: question or description (the processor adds the rest)
    answer: str | None
    frames: FrameInputs
    proposals: Tensor | None = None  # [K,6] boxes (cx,cy,cz,dx,dy,dz)
    proposal_ids: list[int] = field(default_factory=list)  # object ids of the proposals
    proposal_labels: list[str] = field(default_factory=list)  # their raw labels ([]: unknown, a detector's)
    targets: list[int] = field(default_factory=list)  # indices into proposals; [] = no object
    view_targets: Tensor | None = None  # [F,T,C] latent tokens of every frame
    bev_target: Tensor | None = None  # [T,C]
    bev_mask: Tensor | None = None  # [T] bool: non-empty BEV cells
    situation: str | None = None  # SQA3D
    box: list[float] | None = None  # Scan2Cap's queried box; default proposals[targets[0]]
    bev_image: Tensor | None = None  # [3,S,S] in [-1, 1]: the BEV render, for reconstruct()'s score
    sample_id: str | None = None
    question_type: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(
                None,
                f"sample {self.sample_id or self.scene_id}: task must be one of {TASKS}, not {self.task!r}",
            )

    def to(self, device: torch.device | str) -> Ross3DSample:
        def move(t: Tensor | None) -> Tensor | None:
            return t.to(device) if t is not None else None

        return replace(
            self,
            frames=self.frames.to(device),
            proposals=move(self.proposals),
            view_targets=move(self.view_targets),
            bev_target=move(self.bev_target),
            bev_mask=move(self.bev_mask),
            bev_image=move(self.bev_image),
        )


@dataclass
class Ross3DBatch:
    """Samples of one task (the loader groups batches by task)."""

    samples: list[Ross3DSample]

    def __post_init__(self) -> None:
        if not self.samples:
            raise ModelError(None, "Ross3DBatch: no samples")
        tasks = sorted({s.task for s in self.samples})
        if len(tasks) > 1:
            raise ModelError(None, f"Ross3DBatch: one task per batch (group batches by task), got {tasks}")

    @property
    def task(self) -> str:
        return self.samples[0].task

    @property
    def is_grounding(self) -> bool:
        return self.task in GROUNDING_TASKS

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device | str) -> Ross3DBatch:
        return Ross3DBatch([s.to(device) for s in self.samples])


def box_text(box: Any) -> str:
    values = [float(v) for v in (box.tolist() if isinstance(box, Tensor) else box)]
    if len(values) != 6:
        raise ModelError(None, f"Scan2Cap box must be [cx, cy, cz, dx, dy, dz], got {values}")
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def caption_box(sample: Ross3DSample) -> list[float]:
    """The box a Scan2Cap sample asks about: `sample.box`, else its first target proposal."""
    box = sample.box
    if box is None and sample.proposals is not None and sample.targets:
        box = sample.proposals[sample.targets[0]].tolist()
    if box is None:
        raise ModelError(None, f"Scan2Cap sample {sample.sample_id or sample.scene_id}: no box to describe")
    return [float(v) for v in box]


class Ross3DProcessor:
    """Builds token batches from samples with the model's tokenizer (module docstring)."""

    def __init__(self, tokenizer: Any, max_question_tokens: int = 128):
        self.tokenizer = tokenizer
        self.max_question_tokens = max_question_tokens
        self.pad_id = pad_id_of(tokenizer)
        self.end_text = end_text_of(tokenizer)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _clean(self, text: str, keep_coord: bool = False) -> str:
        text = " ".join(str(text).split())
        for token in (IMAGE_TOKEN, GROUND_TOKEN, SEG_TOKEN) + (() if keep_coord else (COORD_TOKEN,)):
            text = text.replace(token, " ")
        text = " ".join(text.split())
        ids = self._ids(text)
        if len(ids) > self.max_question_tokens:
            text = self.tokenizer.decode(ids[: self.max_question_tokens])
        return text

    def user_text(self, sample: Ross3DSample) -> str:
        """The task's user text (without `<image>`)."""
        task = sample.task
        if task == "scanqa":
            return f"{self._clean(sample.question)} {QA_INSTRUCTION}"
        if task == "sqa3d":
            situation = f"{self._clean(sample.situation)} " if sample.situation else ""
            return f"{situation}{self._clean(sample.question)} {QA_INSTRUCTION}"
        if task == "scan2cap":
            box = caption_box(sample)
            text = (
                self._clean(sample.question, keep_coord=True)
                if COORD_TOKEN in sample.question
                else CAPTION_PROMPT
            )
            return text.replace(COORD_TOKEN, f"{COORD_TOKEN} {box_text(box)}", 1)
        return f"{self._clean(sample.question)} {GROUND_INSTRUCTION}"

    def answer_text(self, sample: Ross3DSample) -> str:
        if sample.task in GROUNDING_TASKS:
            answer = sample.answer if sample.answer is not None else GROUND_ANSWER
            if GROUND_TOKEN not in answer:
                raise ModelError(
                    None, f"{sample.task} sample {sample.sample_id}: the answer must hold {GROUND_TOKEN}"
                )
            return answer
        if sample.answer is None:
            raise ModelError(
                None, f"{sample.task} sample {sample.sample_id or sample.scene_id}: no answer to train on"
            )
        return " ".join(sample.answer.replace(GROUND_TOKEN, " ").split())

    def prompt(self, sample: Ross3DSample) -> str:
        """The chat prompt up to where the assistant's answer starts."""
        return chat_prompt(self.tokenizer, self.user_text(sample))

    def batch(
        self, samples: list[Ross3DSample], with_answers: bool = True, padding_side: str = "right"
    ) -> TextBatch:
        """Prompt ids (+ answer ids, labelled, when `with_answers`), padded to one length."""
        prompts = [self._ids(self.prompt(sample)) for sample in samples]
        answers = [self._ids(self.answer_text(s) + self.end_text) for s in samples] if with_answers else None
        return pad_rows(prompts, answers, self.pad_id, padding_side)
