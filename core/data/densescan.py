"""DenseScan records: the one definition of the record the pipeline writes, the review store imports and
exports, the training sets and the app read (`<out>/densescan.json`, the review export).

A JSON list of ScanRefer-compatible records (every ScanRefer field, so a ScanRefer loader reads the file
unchanged) plus typed DenseScan fields, written only when set:

- `level` (object, frame, scene, scenario), `status` (the pipeline's verdict: accepted, flagged,
  rejected), `confidence` (0..1) and `source` (who wrote the text);
- scenario questions: `question`, `answer`, `answer_object_ids` (required at that level);
- the pipeline's evidence: `frame_id` (frame records), `views` / `views_requested` (distinct views an
  object caption rests on, and how many were asked for), `flag_reasons`, `consistency_answer`,
  `fusion_conflicts`, `claims` (object records; see `core.annotate.records`);
- review provenance (the export): `revision`, `reviewer` (the deciding vote), `review_status`, `edited`
  and, for edited items, the pipeline's original text in `pipeline_description` (and
  `pipeline_question` / `pipeline_answer` for scenario questions).

`token` is `core.text.scanrefer_tokens(description)` wherever this project writes it (a file that lacks
it reads with those tokens). Fields this type does not model (a foreign file's own) are kept in `extra`
and written back. Every problem is a `DataError` naming the file, the record and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from core.data.jsonio import Fields, read_json, read_json_list, records, write_json
from core.data.scanrefer import FIELDS as SCANREFER_FIELDS
from core.data.scanrefer import ScanReferRecord, sample_key
from core.text import scanrefer_tokens

Level = Literal["object", "frame", "scene", "scenario"]
Status = Literal["accepted", "flagged", "rejected"]  # the pipeline's verification outcome
ReviewStatusName = Literal["pending", "in_review", "needs_approval", "disputed", "approved", "rejected"]
LEVELS: tuple[str, ...] = get_args(Level)
STATUSES: tuple[str, ...] = get_args(Status)
REVIEW_STATUSES: tuple[str, ...] = get_args(ReviewStatusName)  # review.views.ReviewStatus's values
SCENARIO_FIELDS = ("question", "answer", "answer_object_ids")  # required on scenario records
EVIDENCE_FIELDS = (
    "frame_id", "views", "views_requested", "flag_reasons", "consistency_answer", "fusion_conflicts", "claims"
)  # fmt: skip
PROVENANCE_FIELDS = (
    "revision", "reviewer", "review_status", "edited", "pipeline_description", "pipeline_question",
    "pipeline_answer",
)  # fmt: skip


@dataclass
class DenseScanRecord:
    scene_id: str
    object_id: str  # "-1" for a scene-level record
    object_name: str  # raw label, spaces written as underscores
    ann_id: str
    description: str
    token: list[str]
    level: Level
    status: Status | None = None
    confidence: float | None = None
    source: str | None = None
    question: str | None = None  # scenario level only
    answer: str | None = None
    answer_object_ids: list[int] | None = None
    frame_id: str | None = None  # frame level: the described frame
    views: int | None = None  # object level: distinct views the caption rests on ...
    views_requested: int | None = None  # ... and how many were asked for
    flag_reasons: list[str] | None = None  # object level: codes of core.annotate.verify.FLAG_REASONS
    consistency_answer: str | None = None
    fusion_conflicts: list[str] | None = None
    claims: list[dict[str, Any]] | None = None  # each claim of the caption with its verdict
    revision: int | None = None  # review export: the head revision number
    reviewer: str | None = None  # who made the deciding vote
    review_status: ReviewStatusName | None = None
    edited: bool | None = None  # the exported text is a person's edit of the pipeline's
    pipeline_description: str | None = None  # the pipeline's text, when a person changed it
    pipeline_question: str | None = None
    pipeline_answer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields of foreign files, written back as read

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
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out | {k: v for k, v in self.extra.items() if k not in out}

    @classmethod
    def from_json(
        cls, raw: dict[str, Any], path: str | Path | None = None, index: int | str = 0
    ) -> DenseScanRecord:
        """One record, validated; a `DataError` names `path`, the record `index` and the field."""
        return _parse(Fields(Path(path) if path is not None else None, index, raw))  # type: ignore[arg-type]


OPTIONAL_FIELDS = tuple(f.name for f in fields(DenseScanRecord))[len(SCANREFER_FIELDS) + 1 : -1]
FIELDS = (*SCANREFER_FIELDS, "level", *OPTIONAL_FIELDS)  # every field this type models, in file order


def _choice(f: Fields, name: str, choices: tuple[str, ...], required: bool = False) -> Any:
    value = f.text(name, required=required)
    if value is not None and value not in choices:
        raise f.error(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _count(f: Fields, name: str) -> int | None:
    value = f.integer(name, required=False)
    if value is not None and value < 0:
        raise f.error(name, f"expected a count (0 or more), found {value}")
    return value


def _boolean(f: Fields, name: str) -> bool | None:
    value = f.record.get(name)
    if value is not None and not isinstance(value, bool):
        raise f.error(name, f"expected true or false, found {type(value).__name__} {value!r}")
    return value


def _objects(f: Fields, name: str) -> list[dict[str, Any]] | None:
    value = f.record.get(name)
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
        raise f.error(name, "expected a list of objects")
    return None if value is None else [dict(v) for v in value]


def _parse(f: Fields) -> DenseScanRecord:
    level = _choice(f, "level", LEVELS, required=True)
    description = f.text("description")
    token = f.text_list("token", required=False)
    confidence = f.number("confidence", required=False)
    if confidence is not None and not 0 <= confidence <= 1:
        raise f.error("confidence", f"expected a number in 0..1, found {confidence}")
    if level == "scenario":
        for name in SCENARIO_FIELDS:
            if f.record.get(name) is None:
                raise f.error(name, "missing (required on scenario records)")
    return DenseScanRecord(
        scene_id=f.ident("scene_id"),
        object_id=f.ident("object_id"),
        object_name=f.text("object_name"),
        ann_id=f.ident("ann_id"),
        description=description,
        token=scanrefer_tokens(description) if token is None else token,
        level=level,
        status=_choice(f, "status", STATUSES),
        confidence=confidence,
        source=f.text("source", required=False),
        question=f.text("question", required=False),
        answer=f.text("answer", required=False),
        answer_object_ids=f.int_list("answer_object_ids", required=False),
        frame_id=f.ident("frame_id", required=False),
        views=_count(f, "views"),
        views_requested=_count(f, "views_requested"),
        flag_reasons=f.text_list("flag_reasons", required=False),
        consistency_answer=f.text("consistency_answer", required=False),
        fusion_conflicts=f.text_list("fusion_conflicts", required=False),
        claims=_objects(f, "claims"),
        revision=f.integer("revision", required=False),
        reviewer=f.text("reviewer", required=False),
        review_status=_choice(f, "review_status", REVIEW_STATUSES),
        edited=_boolean(f, "edited"),
        pipeline_description=f.text("pipeline_description", required=False),
        pipeline_question=f.text("pipeline_question", required=False),
        pipeline_answer=f.text("pipeline_answer", required=False),
        extra=f.extra(FIELDS),
    )


def parse_densescan(path: str | Path, data: list[dict]) -> list[DenseScanRecord]:
    """Validate parsed DenseScan records (a `DataError` names the file, record and field)."""
    return [_parse(f) for f in records(path, read_json_list(path, data))]


def read_densescan(path: str | Path) -> list[DenseScanRecord]:
    return parse_densescan(path, read_json(path))


def write_densescan(path: str | Path, items: list[DenseScanRecord], indent: int | None = None) -> Path:
    """Write the records atomically (a reader never sees half a file)."""
    return write_json(path, [r.to_json() for r in items], indent=indent)
