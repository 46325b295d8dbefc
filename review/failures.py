"""Model failures as review items: a sample an evaluation scored badly goes to a person, who can fix a
wrong description (or reject it) like any pipeline caption.

A failure names its sample (task, report, key), what the model answered and why it is sent. When the
sample IS an item of the store (a DenseScan evaluation: `Failure.item_key`), the failure is attached to
that item; otherwise it becomes a new item, keyed `(scene, level, object, "<task>:<sample key>")` so that
it never collides with a pipeline caption, with the sample's text as its first revision, pipeline status
"flagged" (reviewed first) and source `eval:<task>`. Either way the item's `extra` lists its `failures`
and its `flag_reasons` hold `FAILURE_REASON`, which the queue's reason filter finds. Sending the same
sample of the same report twice adds nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.data.densescan import DenseScanRecord
from core.text import scanrefer_tokens
from review.config import ReviewConfig
from review.errors import ReviewError
from review.records import MAX_LENGTHS, ItemKey, parse_record, record_key
from review.schema import Item, Revision, User
from review.views import ReviewStatus
from review.why import MODEL_FAILURE

if TYPE_CHECKING:  # the store itself never reads reports: only `failure_from_sample` does (pandas)
    from core.eval.samples import SampleTable

FAILURE_REASON = MODEL_FAILURE  # the flag reason of items sent from failure analysis
SOURCE_PREFIX = "eval:"


@dataclass(frozen=True)
class Failure:
    """One failing sample of an evaluation report, as failure analysis sends it."""

    task: str  # the eval task (refseg, scanqa, ...)
    report: str  # the report's file name
    sample_key: str  # the sample's key in the report
    scene_id: str
    object_id: str  # "-1" when the sample has no target object
    object_name: str
    level: str  # object | scenario
    description: str  # the text a person checks (the description, or the question's caption)
    model_output: str
    reason: str  # why it is sent, in words ("IoU 0.12 < 0.25", a person's note)
    metric: str = ""
    value: float | None = None
    question: str | None = None  # scenario items
    answer: str | None = None
    answer_object_ids: tuple[int, ...] = ()
    item_key: ItemKey | None = None  # the store's own item this sample is (DenseScan), if any

    def key(self) -> ItemKey:
        """The item the failure goes to: its own item, or one of its own outside the pipeline's keys."""
        if self.item_key is not None:
            return self.item_key
        ann_id = f"{self.task}:{self.sample_key}"
        if len(ann_id) > MAX_LENGTHS["ann_id"]:
            ann_id = f"{self.task}:{hashlib.sha256(self.sample_key.encode()).hexdigest()[:24]}"
        return ItemKey(self.scene_id, self.level, self.object_id, ann_id)

    def note(self, by: str, now: datetime) -> dict[str, Any]:
        """What the item records of this failure."""
        fields = asdict(self)
        fields.pop("item_key")
        fields["answer_object_ids"] = list(self.answer_object_ids)
        return {**fields, "sent_by": by, "sent_at": now.isoformat()}

    def record(self) -> DenseScanRecord:
        """The new item's first revision as a DenseScan record, checked as an import would check it."""
        key = self.key()
        raw: dict[str, Any] = {
            "scene_id": key.scene_id,
            "object_id": key.object_id,
            "object_name": self.object_name.replace(" ", "_") or "unknown",
            "ann_id": key.ann_id,
            "description": self.description,
            "token": scanrefer_tokens(self.description),
            "level": key.level,
            "status": "flagged",
            "confidence": 0.0,
            "source": f"{SOURCE_PREFIX}{self.task}",
            "flag_reasons": [FAILURE_REASON],
        }
        if key.level == "scenario":
            raw |= {"question": self.question, "answer": self.answer}
            raw["answer_object_ids"] = list(self.answer_object_ids)
        try:
            return parse_record(raw)
        except ValueError as exc:
            raise ReviewError(f"sample {self.sample_key}", str(exc), code="input") from None


def _same(note: dict[str, Any], failure: Failure) -> bool:
    return (note.get("task"), note.get("report"), note.get("sample_key")) == (
        failure.task,
        failure.report,
        failure.sample_key,
    )


def add_failure(
    session: Session, failure: Failure, user: User, config: ReviewConfig, now: datetime
) -> tuple[Item, bool]:
    """(the item, whether it is new); the caller's write transaction makes it all-or-nothing."""
    key = failure.key()
    item = session.scalars(
        select(Item)
        .where(
            Item.scene_id == key.scene_id,
            Item.level == key.level,
            Item.object_id == key.object_id,
            Item.ann_id == key.ann_id,
        )
        .with_for_update()
    ).first()
    note = failure.note(user.username, now)
    if item is not None:
        extra = dict(item.extra)
        notes = list(extra.get("failures") or [])
        if any(isinstance(n, dict) and _same(n, failure) for n in notes):
            return item, False
        reasons = list(extra.get("flag_reasons") or [])
        extra["failures"] = [*notes, note]
        extra["flag_reasons"] = reasons if FAILURE_REASON in reasons else [*reasons, FAILURE_REASON]
        item.extra = extra  # a new dict: the JSON column sees the change
        item.updated_at = now
        return item, False
    record = failure.record()
    assert record_key(record) == key
    item = Item(
        scene_id=key.scene_id,
        level=key.level,
        object_id=key.object_id,
        ann_id=key.ann_id,
        object_name=record.object_name,
        pipeline_status="flagged",
        confidence=0.0,
        source=record.source or "",
        pipeline_description=record.description,
        pipeline_question=record.question,
        pipeline_answer=record.answer,
        pipeline_token=list(record.token),
        answer_object_ids=record.answer_object_ids,
        extra={"flag_reasons": [FAILURE_REASON], "failures": [note]},
        pipeline_changed=False,
        priority=config.priority("flagged", 0.0),
        reviews_required=config.reviews_required(key),
        review_status=ReviewStatus.PENDING.value,
        head_revision=1,
        last_revision=1,
        imported_at=now,
        updated_at=now,
    )
    session.add(item)
    session.flush()  # the item's id, for its first revision
    session.add(
        Revision(
            item_id=item.id,
            number=1,
            parent_number=None,
            author_id=None,
            kind="pipeline",
            description=record.description,
            question=record.question,
            answer=record.answer,
            review_status=ReviewStatus.PENDING.value,
            created_at=now,
        )
    )
    return item, True


def failure_from_sample(table: SampleTable, key: str, metric: str, note: str = "") -> Failure:
    """The failure of one sample of an evaluation report: its text, the model's output, and why it is sent
    (the metric's value, then the person's `note`)."""
    from core.eval.samples import QA_TASKS, prediction_text, sample_text, target_objects

    sample = table.sample(key)
    task = table.task
    value = table.scores[metric].iloc[table.position(key)] if metric in table.scores.columns else None
    value = None if value is None or value != value else float(value)  # NaN: no score
    reason = f"{task} {metric} = {value:.3f}" if value is not None else f"{task}: no {metric} score"
    if note.strip():
        reason = f"{reason}; {note.strip()}"
    objects = target_objects(task, sample)
    level = "scenario" if task in QA_TASKS or sample.get("level") == "scenario" else "object"
    row = table.frame.iloc[table.position(key)]
    item_key = None
    if task == "densescan" and sample.get("ann_ids"):
        first = str(sample["ann_ids"][0])
        item_key = ItemKey(str(sample["scene_id"]), str(sample["level"]), str(sample["object_id"]), first)
    answers = [str(a) for a in sample.get("answers") or []]
    return Failure(
        task=task,
        report=table.path.name,
        sample_key=key,
        scene_id=str(sample.get("scene_id", "")),
        object_id=str(objects[0]) if objects else "-1",
        object_name=str(row["class"]) or "unknown",
        level=level,
        description=sample_text(task, sample),  # a scenario item's caption is its question
        model_output=prediction_text(task, sample),
        reason=reason,
        metric=metric,
        value=value,
        question=sample_text(task, sample) if level == "scenario" else None,
        answer=answers[0] if level == "scenario" and answers else None,
        answer_object_ids=tuple(objects) if level == "scenario" else (),
        item_key=item_key,
    )
