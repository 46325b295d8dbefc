"""ScanQA (`ScanQA_v1.0_{train,val,test_w_obj,test_wo_obj}.json`): questions about a scene.

Each record: `question_id` ("train-scene0000-0"), `scene_id`, `question`, and on train / val the `answers`
(several acceptable strings), `object_ids` and `object_names` of the objects the question is about. The
test files carry no answers; evaluation needs them and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.jsonio import read_json, read_json_list, records, write_json

FIELDS = ("question_id", "scene_id", "question", "answers", "object_ids", "object_names")


@dataclass
class ScanQARecord:
    question_id: str
    scene_id: str
    question: str
    answers: list[str] = field(default_factory=list)
    object_ids: list[int] = field(default_factory=list)
    object_names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "scene_id": self.scene_id,
            "question": self.question,
            "answers": list(self.answers),
            "object_ids": list(self.object_ids),
            "object_names": list(self.object_names),
            **self.extra,
        }


def parse_scanqa(path: str | Path, data: list[dict]) -> list[ScanQARecord]:
    out = []
    for f in records(path, read_json_list(path, data)):
        out.append(
            ScanQARecord(
                question_id=f.ident("question_id"),
                scene_id=f.ident("scene_id"),
                question=f.text("question"),
                answers=f.text_list("answers", required=False) or [],
                object_ids=f.int_list("object_ids", required=False) or [],
                object_names=f.text_list("object_names", required=False) or [],
                extra=f.extra(FIELDS),
            )
        )
    return out


def read_scanqa(path: str | Path) -> list[ScanQARecord]:
    return parse_scanqa(path, read_json(path))


def write_scanqa(path: str | Path, items: list[ScanQARecord]) -> Path:
    return write_json(path, [r.to_json() for r in items])
