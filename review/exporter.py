"""The reviewed training set: items back in the DenseScan record format, with human decisions applied.

Each record has the ScanRefer fields (`scene_id`, `object_id`, `object_name`, `ann_id`, `description`,
`token`), the DenseScan fields (`level`, `status`, `confidence`, `source`, and for scenario items
`question`, `answer`, `answer_object_ids`), the pipeline's extra fields as they were imported, and its
provenance: `revision` (the head revision number), `reviewer` (who made the deciding vote),
`review_status` and `edited`. Edited text replaces the pipeline's, with `token` recomputed from it.
Rejected items are never exported.

The output path is checked before anything is written: a folder (or a path ending in `/`) is refused
rather than guessed into, and a write that fails (no space, no permission) leaves no temp file behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from core.atomic import atomic_write_json
from core.text import scanrefer_tokens as tokenize
from review.errors import ReviewError
from review.schema import Decision, Item, Revision, User
from review.views import ReviewStatus

EXPORT_CHOICES = ("approved", "all")  # all: every item except rejected ones, each with its review_status


@dataclass
class ExportReport:
    path: Path
    records: int = 0
    edited: int = 0
    by_review_status: dict[str, int] = field(default_factory=dict)
    by_level: dict[str, dict[str, int]] = field(default_factory=dict)  # level -> review status -> count


def _last_voters(session: Session) -> dict[int, str]:
    rows = session.execute(
        select(Decision.item_id, User.username)
        .join(User, User.id == Decision.user_id)
        .where(Decision.undone_at.is_(None), Decision.kind != "skip")
        .order_by(Decision.id)
    ).all()
    return dict(rows)  # later rows overwrite earlier ones: the last vote per item


def export_record(item: Item, head: Revision, reviewer: str | None) -> dict[str, Any]:
    """One item as a DenseScan record with its provenance."""
    edited = (head.description, head.question, head.answer) != (
        item.pipeline_description,
        item.pipeline_question,
        item.pipeline_answer,
    )
    record: dict[str, Any] = {
        "scene_id": item.scene_id,
        "object_id": item.object_id,
        "object_name": item.object_name,
        "ann_id": item.ann_id,
        "description": head.description,
        "token": tokenize(head.description) if edited else list(item.pipeline_token),
        "level": item.level,
        "status": item.pipeline_status,
        "confidence": item.confidence,
        "source": item.source,
    }
    if item.level == "scenario":
        record.update(question=head.question, answer=head.answer, answer_object_ids=item.answer_object_ids)
    for name, value in item.extra.items():
        record.setdefault(name, value)
    record.update(revision=head.number, reviewer=reviewer, review_status=item.review_status, edited=edited)
    return record


def export_records(session: Session, status: str = "approved") -> list[dict[str, Any]]:
    """The records to export, sorted by item key, from one consistent snapshot."""
    if status not in EXPORT_CHOICES:
        raise ReviewError(None, f"unknown export status {status!r} (one of {', '.join(EXPORT_CHOICES)})")
    stmt = select(Item, Revision).join(
        Revision, and_(Revision.item_id == Item.id, Revision.number == Item.head_revision)
    )
    if status == "approved":
        stmt = stmt.where(Item.review_status == ReviewStatus.APPROVED.value)
    else:
        stmt = stmt.where(Item.review_status != ReviewStatus.REJECTED.value)
    stmt = stmt.order_by(Item.scene_id, Item.level, Item.object_id, Item.ann_id)
    voters = _last_voters(session)
    return [export_record(item, head, voters.get(item.id)) for item, head in session.execute(stmt)]


def check_export_path(path: str | Path) -> Path:
    """The export file's path, or a `ReviewError` saying why nothing can be written there."""
    raw = str(path)
    path = Path(path)
    if raw.endswith(("/", os.sep)) or path.is_dir() or path.name in ("", ".", ".."):
        reason = "is a folder: the export needs a file name (for example reviewed.json)"
        raise ReviewError(raw, reason, code="input")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ReviewError(path, f"cannot write the export: {parent} is a file, not a folder", "input")
            break
    return path


def write_export(path: str | Path, records: list[dict[str, Any]]) -> ExportReport:
    """Write the records atomically: a reader never sees half a file."""
    path = check_export_path(path)
    try:
        atomic_write_json(path, records)
    except OSError as exc:
        raise ReviewError(path, f"cannot write the export: {exc.strerror or exc}", code="input") from exc
    report = ExportReport(path=path, records=len(records))
    for record in records:
        report.edited += bool(record["edited"])
        status = record["review_status"]
        report.by_review_status[status] = report.by_review_status.get(status, 0) + 1
        per_level = report.by_level.setdefault(str(record["level"]), {})
        per_level[status] = per_level.get(status, 0) + 1
    return report
