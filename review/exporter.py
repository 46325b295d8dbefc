"""The reviewed training set: items back as DenseScan records (`core.data.densescan.DenseScanRecord`,
the one record type), with human decisions applied.

Each record has the ScanRefer fields, the DenseScan fields (`level`, `status`, `confidence`, `source`,
and for scenario items `question`, `answer`, `answer_object_ids`), the pipeline's evidence and extra
fields as they were imported, and its provenance as typed fields: `revision` (the head revision number),
`reviewer` (who made the deciding vote), `review_status`, `edited` and, when a person changed the text,
the pipeline's original in `pipeline_description` (`pipeline_question` / `pipeline_answer`). Edited text
replaces the pipeline's, with `token` recomputed by `core.text.scanrefer_tokens`, the tokenizer the
pipeline writes with, so an edited and an unedited record of the same text carry the same tokens.
Rejected items are never exported. The file is written by `core.data.densescan.write_densescan`.

The output path is checked before anything is written: a folder (or a path ending in `/`) is refused
rather than guessed into, and a write that fails (no space, no permission) leaves no temp file behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from core.data.densescan import DenseScanRecord, write_densescan
from core.data.errors import DataError
from core.text import scanrefer_tokens
from review.convert import item_key
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


def stored_record(item: Item) -> DenseScanRecord:
    """The item as the pipeline gave it: its columns and the evidence kept in `extra`."""
    raw = {
        **item.extra,
        "scene_id": item.scene_id,
        "object_id": item.object_id,
        "object_name": item.object_name,
        "ann_id": item.ann_id,
        "description": item.pipeline_description,
        "token": list(item.pipeline_token),
        "level": item.level,
        "status": item.pipeline_status,
        "confidence": item.confidence,
        "source": item.source,
    }
    if item.level == "scenario":
        raw |= {
            "question": item.pipeline_question,
            "answer": item.pipeline_answer,
            "answer_object_ids": item.answer_object_ids,
        }
    try:
        return DenseScanRecord.from_json(raw, index=str(item_key(item)))
    except DataError as exc:
        raise ReviewError(None, f"item {item_key(item)} cannot be exported: {exc}") from None


def export_record(item: Item, head: Revision, reviewer: str | None) -> DenseScanRecord:
    """One item as a DenseScan record with its provenance."""
    stored = stored_record(item)
    edited = (head.description, head.question, head.answer) != (
        item.pipeline_description,
        item.pipeline_question,
        item.pipeline_answer,
    )
    return replace(
        stored,
        description=head.description,
        token=scanrefer_tokens(head.description) if edited else stored.token,
        question=head.question if item.level == "scenario" else None,
        answer=head.answer if item.level == "scenario" else None,
        revision=head.number,
        reviewer=reviewer,
        review_status=item.review_status,
        edited=edited,
        pipeline_description=item.pipeline_description if edited else None,
        pipeline_question=item.pipeline_question if edited else None,
        pipeline_answer=item.pipeline_answer if edited else None,
    )


def export_records(session: Session, status: str = "approved") -> list[DenseScanRecord]:
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


def write_export(path: str | Path, records: list[DenseScanRecord]) -> ExportReport:
    """Write the records atomically (`write_densescan`): a reader never sees half a file."""
    path = check_export_path(path)
    try:
        write_densescan(path, records)
    except OSError as exc:
        raise ReviewError(path, f"cannot write the export: {exc.strerror or exc}", code="input") from exc
    report = ExportReport(path=path, records=len(records))
    for record in records:
        report.edited += bool(record.edited)
        status = str(record.review_status)
        report.by_review_status[status] = report.by_review_status.get(status, 0) + 1
        per_level = report.by_level.setdefault(record.level, {})
        per_level[status] = per_level.get(status, 0) + 1
    return report
