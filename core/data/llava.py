"""LLaVA-style conversation records, the training format of Video-3D-LLM and Ross3D.

`{"id", "video": "scannet/<scene_id>", "conversations": [{"from": "human", "value": "<image> ..."},
{"from": "gpt", "value": ...}], "metadata": {"dataset", "question_type", ...}}`. Grounding samples carry
`box` = [cx, cy, cz, dx, dy, dz] (or a list of such boxes) and answer with the `<ground>` token; Scan2Cap
prompts carry a `<coord>` token. A `.jsonl` file (one record per line) reads too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.errors import DataError
from core.data.jsonio import Fields, read_json, read_json_list, records, write_json

SPEAKERS = ("human", "gpt", "system")
GROUND_TOKEN = "<ground>"
COORD_TOKEN = "<coord>"
IMAGE_TOKEN = "<image>"
FIELDS = ("id", "video", "conversations", "metadata", "box")


@dataclass
class Turn:
    speaker: str  # "from": human / gpt (/ system)
    text: str  # "value"

    def to_json(self) -> dict[str, str]:
        return {"from": self.speaker, "value": self.text}


@dataclass
class ConversationRecord:
    id: str
    conversations: list[Turn]
    video: str | None = None  # "scannet/<scene_id>"
    metadata: dict[str, Any] = field(default_factory=dict)
    box: list[float] | list[list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scene_id(self) -> str | None:
        return self.video.rstrip("/").rsplit("/", 1)[-1] if self.video else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.video is not None:
            out["video"] = self.video
        out["conversations"] = [t.to_json() for t in self.conversations]
        out["metadata"] = dict(self.metadata)
        if self.box is not None:
            out["box"] = self.box
        return {**out, **self.extra}


def _is_box(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 6
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def _box(f: Fields) -> list[float] | list[list[float]] | None:
    value = f.record.get("box")
    if value is None:
        return None
    if _is_box(value):
        return [float(v) for v in value]
    if isinstance(value, list) and all(_is_box(b) for b in value):
        return [[float(v) for v in b] for b in value]
    raise f.error("box", "expected [cx, cy, cz, dx, dy, dz] or a list of such boxes")


def _turns(f: Fields) -> list[Turn]:
    value = f.record.get("conversations")
    if not isinstance(value, list) or not value:
        raise f.error("conversations", "expected a non-empty list of turns")
    turns = []
    for i, turn in enumerate(value):
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in SPEAKERS
            or not isinstance(turn.get("value"), str)
        ):
            raise f.error("conversations", f"turn {i} must be {{'from': human|gpt|system, 'value': str}}")
        turns.append(Turn(turn["from"], turn["value"]))
    return turns


def parse_conversations(path: str | Path, data: list[dict]) -> list[ConversationRecord]:
    out = []
    for f in records(path, read_json_list(path, data)):
        out.append(
            ConversationRecord(
                id=f.ident("id"),
                conversations=_turns(f),
                video=f.text("video", required=False),
                metadata=f.obj("metadata", required=False) or {},
                box=_box(f),
                extra=f.extra(FIELDS),
            )
        )
    return out


def _read_jsonl(path: Path) -> list[Any]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(path, f"line {number}: malformed JSON ({exc.msg})") from None
            except RecursionError:
                raise DataError(path, f"line {number}: malformed JSON (nested too deeply)") from None
            except ValueError as exc:  # an integer of thousands of digits
                raise DataError(path, f"line {number}: malformed JSON ({exc})") from None
    return out


def read_conversations(path: str | Path) -> list[ConversationRecord]:
    path = Path(path)
    data = _read_jsonl(path) if path.suffix == ".jsonl" else read_json(path)
    return parse_conversations(path, data)


def write_conversations(path: str | Path, items: list[ConversationRecord]) -> Path:
    return write_json(path, [r.to_json() for r in items])
