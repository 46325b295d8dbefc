"""The review database tables (SQLAlchemy 2 typed ORM): users, items, revisions, decisions, leases, drafts.

An item is one caption to review. Its identity is the tuple (scene_id, level, object_id, ann_id), as
written by the pipeline: `object_id` and `ann_id` are strings (ScanRefer style) and `level` says which
kind of caption it is, so an object caption and a scenario question about the same object never collide.

The item's state lives in `revisions`, an append-only log: revision 1 is the pipeline's text, and every
change after it (an approve, an edit, a reject, an undo, a re-imported pipeline text) adds one with the
full text and status, who made it and the revision it started from (`parent_number`);
`items.head_revision` points at the current one. The revision number is therefore the item's version,
and a save based on an older one is refused. Nothing in `revisions` or `decisions` is ever deleted: an
undo marks its decision `undone_at` and adds a revision that restores the state before it.
The current lease is kept on the item row itself, so that one row lock (PostgreSQL) or the write lock
(SQLite) covers the whole claim; `assignments` keeps the history of leases.
All timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite has no time zones: store naive UTC there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the review store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # annotator | reviewer | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("scene_id", "level", "object_id", "ann_id", name="uq_item_key"),
        Index("ix_items_queue", "review_status", "priority", "confidence", "id"),
        Index("ix_items_leased_by", "leased_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scene_id: Mapped[str] = mapped_column(String(64), index=True)
    level: Mapped[str] = mapped_column(String(16))  # object | frame | scene | scenario
    object_id: Mapped[str] = mapped_column(String(64))
    ann_id: Mapped[str] = mapped_column(String(64))
    object_name: Mapped[str] = mapped_column(String(128), index=True)  # the category
    # what the pipeline wrote (updated by a re-import)
    pipeline_status: Mapped[str] = mapped_column(String(16))  # accepted | flagged | rejected
    confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(128))
    pipeline_description: Mapped[str] = mapped_column(Text)
    pipeline_question: Mapped[str | None] = mapped_column(Text)
    pipeline_answer: Mapped[str | None] = mapped_column(Text)
    pipeline_token: Mapped[list[Any]]
    answer_object_ids: Mapped[list[Any] | None]
    extra: Mapped[dict[str, Any]]  # every record field the store does not model (claims, frame_id, ...)
    pipeline_changed: Mapped[bool] = mapped_column(default=False)  # re-import changed text under human work
    # review state
    priority: Mapped[int] = mapped_column(Integer)  # lower is reviewed sooner
    reviews_required: Mapped[int] = mapped_column(Integer, default=1)  # 2 when sampled for double review
    review_status: Mapped[str] = mapped_column(String(16))
    head_revision: Mapped[int] = mapped_column(Integer)
    last_revision: Mapped[int] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    leased_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    lease_expires_at: Mapped[datetime | None]
    assignment_id: Mapped[int | None] = mapped_column(Integer)  # the assignments row of the current lease
    imported_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Revision(Base):
    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("item_id", "number", name="uq_revision_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    number: Mapped[int] = mapped_column(Integer)
    parent_number: Mapped[int | None] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the pipeline
    kind: Mapped[str] = mapped_column(String(16))  # pipeline | approve | edit | reject | undo
    description: Mapped[str] = mapped_column(Text)
    question: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    review_status: Mapped[str] = mapped_column(String(16))  # the item's status from this revision on
    created_at: Mapped[datetime]


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_item", "item_id", "id"),
        Index("ix_decisions_user", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))  # approve | edit | reject | skip
    base_revision: Mapped[int] = mapped_column(Integer)  # what the annotator saw
    revision_number: Mapped[int] = mapped_column(Integer)  # the revision it made (a skip: the one it saw)
    reason: Mapped[str | None] = mapped_column(String(32))  # reject reason tag
    note: Mapped[str | None] = mapped_column(Text)
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    status_after: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    undone_at: Mapped[datetime | None]
    undo_key: Mapped[str | None] = mapped_column(String(128), unique=True)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_item", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(16))  # decided | released | expired


class Draft(Base):
    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("item_id", "user_id", name="uq_draft_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    base_revision: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    question: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
