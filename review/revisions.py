"""The append-only revision log of an item: adding a revision, moving the head, and reading history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review.convert import decision_view, get_revision, revision_view
from review.schema import Decision, Item, Revision
from review.views import Conflict, Edit, ReviewStatus


def append_revision(
    session: Session,
    item: Item,
    *,
    author_id: int | None,
    kind: str,
    text: Edit,
    status: ReviewStatus,
    now: datetime,
) -> Revision:
    """Add the next revision on top of the head and make it the head (the caller holds the item's lock)."""
    number = item.last_revision + 1
    revision = Revision(
        item_id=item.id,
        number=number,
        parent_number=item.head_revision,
        author_id=author_id,
        kind=kind,
        description=text.description,
        question=text.question,
        answer=text.answer,
        review_status=status.value,
        created_at=now,
    )
    session.add(revision)
    item.head_revision = item.last_revision = number
    item.review_status = status.value
    item.updated_at = now
    return revision


def history(session: Session, item_id: int) -> list[Revision]:
    return list(
        session.scalars(select(Revision).where(Revision.item_id == item_id).order_by(Revision.number))
    )


def conflict_since(session: Session, item: Item, base_revision: int) -> Conflict:
    """What happened to the item after `base_revision`: shown to the person whose save was refused."""
    revisions = session.scalars(
        select(Revision)
        .where(Revision.item_id == item.id, Revision.number > base_revision)
        .order_by(Revision.number)
    ).all()
    decisions = session.scalars(
        select(Decision)
        .where(Decision.item_id == item.id, Decision.revision_number > base_revision)
        .order_by(Decision.id)
    ).all()
    head = revision_view(session, get_revision(session, item.id, item.head_revision))
    return Conflict(
        base_revision,
        head,
        [revision_view(session, r) for r in revisions],
        [decision_view(session, d) for d in decisions],
    )
