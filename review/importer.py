"""Loading the pipeline's annotations into the store, idempotently.

The whole file is validated before anything is written, and written in one transaction, so a bad file
or a crash imports nothing. Importing a rerun of the pipeline updates the pipeline's fields (status,
confidence, source, extra fields, priority) and never touches human work: when the pipeline's text
changed on an item nobody has reviewed, the new text becomes the head (a new pipeline revision);
when a person already changed or decided it, their state is kept, the item is marked
`pipeline_changed`, and the import reports a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from core.data.densescan import DenseScanRecord
from review.config import ReviewConfig
from review.convert import item_key
from review.records import ItemKey, record_key
from review.revisions import append_revision
from review.schema import Decision, Item, Revision
from review.views import Edit, ReviewStatus


@dataclass(frozen=True)
class ImportConflict:
    key: ItemKey
    review_status: str
    head_revision: int
    reason: str


@dataclass
class ImportReport:
    source: Path
    records: int = 0
    added: int = 0
    updated: int = 0  # pipeline fields changed (text, status, confidence, ...)
    unchanged: int = 0
    text_updated: int = 0  # a new pipeline text became the head (nobody had reviewed the item)
    conflicts: list[ImportConflict] = field(default_factory=list)
    missing: int = 0  # items in the store that this file does not have (kept as they are)

    def summary(self) -> str:
        return (
            f"{self.records} records from {self.source}: {self.added} added, {self.updated} updated "
            f"({self.text_updated} with new text), {self.unchanged} unchanged, "
            f"{len(self.conflicts)} conflicts, {self.missing} items in the store not in this file"
        )


# the record's fields the item keeps in columns of its own; every other field is kept in `extra`
COLUMN_FIELDS = frozenset(
    {
        "scene_id", "level", "object_id", "ann_id", "object_name", "description", "token", "status",
        "confidence", "source", "question", "answer", "answer_object_ids",
    }
)  # fmt: skip


def stored_extra(record: DenseScanRecord) -> dict[str, object]:
    """The record's fields outside the item's columns (evidence, unknown fields), as it writes them."""
    return {k: v for k, v in record.to_json().items() if k not in COLUMN_FIELDS}


def _pipeline_fields(record: DenseScanRecord, config: ReviewConfig) -> dict[str, object]:
    return {
        "object_name": record.object_name,
        "pipeline_status": record.status,
        "confidence": record.confidence,
        "source": record.source,
        "pipeline_token": record.token,
        "answer_object_ids": record.answer_object_ids,
        "extra": stored_extra(record),
        "priority": config.priority(record.status, record.confidence),
    }


def _text(record: DenseScanRecord) -> Edit:
    return Edit(record.description, record.question, record.answer)


def _add(session: Session, records: list[DenseScanRecord], config: ReviewConfig, now: datetime) -> None:
    """Insert new items and their first revision in two bulk statements (an import can be 100k records)."""
    if not records:
        return
    rows = [
        {
            "scene_id": r.scene_id,
            "level": r.level,
            "object_id": r.object_id,
            "ann_id": r.ann_id,
            "pipeline_description": r.description,
            "pipeline_question": r.question,
            "pipeline_answer": r.answer,
            "pipeline_changed": False,
            "reviews_required": config.reviews_required(record_key(r)),
            "review_status": ReviewStatus.PENDING.value,
            "head_revision": 1,
            "last_revision": 1,
            "imported_at": now,
            "updated_at": now,
            **_pipeline_fields(r, config),
        }
        for r in records
    ]
    ids = session.scalars(insert(Item).returning(Item.id, sort_by_parameter_order=True), rows).all()
    first_revisions = [
        {
            "item_id": item_id,
            "number": 1,
            "parent_number": None,
            "author_id": None,
            "kind": "pipeline",
            "description": r.description,
            "question": r.question,
            "answer": r.answer,
            "review_status": ReviewStatus.PENDING.value,
            "created_at": now,
        }
        for item_id, r in zip(ids, records, strict=True)
    ]
    session.execute(insert(Revision), first_revisions)


def _update(
    session: Session,
    item: Item,
    record: DenseScanRecord,
    human_touched: bool,
    config: ReviewConfig,
    now: datetime,
    report: ImportReport,
) -> None:
    changed = False
    for name, value in _pipeline_fields(record, config).items():
        if getattr(item, name) != value:
            setattr(item, name, value)
            changed = True
    new_text = _text(record)
    if new_text != Edit(item.pipeline_description, item.pipeline_question, item.pipeline_answer):
        changed = True
        item.pipeline_description, item.pipeline_question, item.pipeline_answer = (
            new_text.description,
            new_text.question,
            new_text.answer,
        )
        if human_touched:
            item.pipeline_changed = True
            report.conflicts.append(
                ImportConflict(
                    item_key(item),
                    item.review_status,
                    item.head_revision,
                    "the pipeline's text changed after people reviewed the item: kept their version",
                )
            )
        else:
            status = ReviewStatus(item.review_status)
            append_revision(
                session, item, author_id=None, kind="pipeline", text=new_text, status=status, now=now
            )
            report.text_updated += 1
    if changed:
        item.updated_at = now
        report.updated += 1
    else:
        report.unchanged += 1


def import_records(
    session: Session,
    records: list[DenseScanRecord],
    source: Path,
    config: ReviewConfig,
    now: datetime,
    progress: bool = False,
) -> ImportReport:
    """Insert new items and update known ones (the caller's write transaction makes it all-or-nothing)."""
    report = ImportReport(source=source, records=len(records))
    existing = {item_key(item): item for item in session.scalars(select(Item))}
    touched_ids = set(session.scalars(select(Revision.item_id).where(Revision.author_id.is_not(None))))
    touched_ids |= set(session.scalars(select(Decision.item_id).where(Decision.kind != "skip")))
    new: list[DenseScanRecord] = []
    iterator: Iterable[DenseScanRecord] = tqdm(records, desc="import", unit="rec") if progress else records
    for record in iterator:
        item = existing.get(record_key(record))
        if item is None:
            new.append(record)
        else:
            _update(session, item, record, item.id in touched_ids, config, now, report)
    _add(session, new, config, now)
    report.added = len(new)
    report.missing = len(existing.keys() - {record_key(r) for r in records})
    return report
