"""DenseScan records (`<out>/densescan.json` of `python -m core annotate`, and the review export).

A JSON list of ScanRefer-compatible records (every ScanRefer field, so a ScanRefer loader reads the file
unchanged) plus `level` (object, frame, scene, scenario), `status`, `confidence` and `source`. Scenario
questions also carry `question`, `answer` and `answer_object_ids`; the review export adds provenance
(`revision`, `reviewer`). Unknown fields are kept in `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.jsonio import read_json, read_json_list, records, write_json
from core.data.scanrefer import FIELDS as SCANREFER_FIELDS
from core.data.scanrefer import ScanReferRecord, sample_key, scanrefer_fields

LEVELS = ("object", "frame", "scene", "scenario")
FIELDS = SCANREFER_FIELDS + (
    "level",
    "status",
    "confidence",
    "source",
    "question",
    "answer",
    "answer_object_ids",
    "revision",
    "reviewer",
)


@dataclass
class DenseScanRecord:
    scene_id: str
    object_id: str
    object_name: str
    ann_id: str
    description: str
    token: list[str]
    level: str
    status: str | None = None  # accepted / flagged / rejected (pipeline), or the review decision
    confidence: float | None = None
    source: str | None = None
    question: str | None = None  # scenario level only
    answer: str | None = None
    answer_object_ids: list[int] | None = None
    revision: int | None = None  # review export provenance
    reviewer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return sample_key(self.scene_id, self.object_id, self.ann_id)

    def as_scanrefer(self) -> ScanReferRecord:
        return ScanReferRecord(
            self.scene_id, self.object_id, self.object_name, self.ann_id, self.description, list(self.token)
        )

    def to_json(self) -> dict[str, Any]:
        out = self.as_scanrefer().to_json()
        out["level"] = self.level
        for name in FIELDS[len(SCANREFER_FIELDS) + 1 :]:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return {**out, **self.extra}


def parse_densescan(path: str | Path, data: list[dict]) -> list[DenseScanRecord]:
    out = []
    for f in records(path, read_json_list(path, data)):
        level = f.text("level")
        if level not in LEVELS:
            raise f.error("level", f"{level!r} is not one of {', '.join(LEVELS)}")
        out.append(
            DenseScanRecord(
                **scanrefer_fields(f),
                level=level,
                status=f.text("status", required=False),
                confidence=f.number("confidence", required=False),
                source=f.text("source", required=False),
                question=f.text("question", required=False),
                answer=f.text("answer", required=False),
                answer_object_ids=f.int_list("answer_object_ids", required=False),
                revision=f.integer("revision", required=False),
                reviewer=f.text("reviewer", required=False),
                extra=f.extra(FIELDS),
            )
        )
    return out


def read_densescan(path: str | Path) -> list[DenseScanRecord]:
    return parse_densescan(path, read_json(path))


def write_densescan(path: str | Path, items: list[DenseScanRecord]) -> Path:
    return write_json(path, [r.to_json() for r in items])
