"""What the service hands back: plain frozen dataclasses, detached from the database session.

The app renders these directly; none of them touches the database after it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from review.records import ItemKey


class Role(StrEnum):
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"  # may also settle disputed double reviews
    ADMIN = "admin"


class ReviewStatus(StrEnum):
    PENDING = "pending"  # nobody has decided yet
    IN_REVIEW = "in_review"  # sampled for double review and waiting for the second person
    NEEDS_APPROVAL = "needs_approval"  # the head is an edit that a second person must approve
    DISPUTED = "disputed"  # the two reviewers disagreed; a reviewer or admin decides
    APPROVED = "approved"
    REJECTED = "rejected"


OPEN_STATUSES = (
    ReviewStatus.PENDING,
    ReviewStatus.IN_REVIEW,
    ReviewStatus.NEEDS_APPROVAL,
    ReviewStatus.DISPUTED,
)


class Action(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"  # edit-and-approve: a new revision, approved by its author
    REJECT = "reject"
    SKIP = "skip"


class RejectReason(StrEnum):
    WRONG_OBJECT = "wrong_object"
    HALLUCINATION = "hallucination"  # mentions something that is not there
    WRONG_ATTRIBUTE = "wrong_attribute"  # colour, material, shape, size
    WRONG_RELATION = "wrong_relation"  # spatial relation to other objects
    NOT_VISIBLE = "not_visible"  # the object cannot be judged from the views
    UNGRAMMATICAL = "ungrammatical"
    DUPLICATE = "duplicate"
    OTHER = "other"


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class Edit:
    """The editable text of an item: the caption, and for scenario items the question and answer."""

    description: str
    question: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class ItemView:
    id: int
    key: ItemKey
    object_name: str
    pipeline_status: str
    confidence: float
    source: str
    text: Edit  # the head revision's text
    pipeline_text: Edit  # what the pipeline wrote last (differs from `text` after edits or re-imports)
    answer_object_ids: list[int] | None
    extra: dict[str, Any]
    review_status: ReviewStatus
    head_revision: int
    reviews_required: int
    priority: int
    pipeline_changed: bool
    assignee: str | None
    leased_by: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class RevisionView:
    number: int
    parent_number: int | None
    author: str | None  # None: the pipeline
    kind: str  # pipeline | approve | edit | reject | undo
    text: Edit
    review_status: ReviewStatus
    created_at: datetime


@dataclass(frozen=True)
class DecisionView:
    id: int
    item_id: int
    user: str
    action: Action
    base_revision: int
    revision_number: int
    reason: str | None
    note: str | None
    active_seconds: float
    status_after: ReviewStatus
    created_at: datetime
    undone_at: datetime | None


@dataclass(frozen=True)
class DraftView:
    item_id: int
    user: str
    base_revision: int
    text: Edit
    updated_at: datetime
    stale: bool  # someone saved a newer revision since the draft was started


@dataclass(frozen=True)
class ItemDetail:
    item: ItemView
    revisions: list[RevisionView]
    decisions: list[DecisionView]
    draft: DraftView | None


@dataclass(frozen=True)
class Conflict:
    """A save refused because the annotator started from an older revision: what changed in between."""

    base_revision: int
    head: RevisionView
    revisions_since: list[RevisionView]
    decisions_since: list[DecisionView]

    @property
    def message(self) -> str:
        who = self.head.author or "the pipeline"
        return (
            f"revision {self.head.number} by {who} was saved after revision {self.base_revision}, "
            "which you started from; review their change before saving yours"
        )


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of approve / edit / reject / skip: applied (maybe replayed), or refused with a conflict."""

    applied: bool
    item: ItemView
    decision: DecisionView | None = None
    conflict: Conflict | None = None
    replayed: bool = False  # the idempotency key was seen before: this is the first call's result


@dataclass(frozen=True)
class UndoResult:
    undone: DecisionView
    item: ItemView  # leased again to the user who undid, so they can decide anew
    replayed: bool = False


@dataclass(frozen=True)
class QueueFilter:
    """Which items a user wants next; empty tuples mean no restriction."""

    scene_ids: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # object names
    pipeline_statuses: tuple[str, ...] = ()  # accepted / flagged / rejected
    review_statuses: tuple[ReviewStatus, ...] = ()
    assignee: str | None = None  # only items assigned to this user
    # why the pipeline flagged it: any of these `core.annotate.verify.FLAG_REASONS` codes, or
    # `review.why.NO_REASON` for flagged / rejected items whose record does not say why
    flag_reasons: tuple[str, ...] = ()
