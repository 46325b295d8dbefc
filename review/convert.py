"""Rows to views: turns ORM rows into the detached dataclasses of `review.views`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from review.records import ItemKey
from review.schema import Decision, Draft, Item, Revision, User
from review.views import (
    Action,
    DecisionView,
    DraftView,
    Edit,
    ItemView,
    ReviewStatus,
    RevisionView,
    Role,
    UserView,
)


def username(session: Session, user_id: int | None) -> str | None:
    """The name of a user id (the session's identity map makes repeated lookups free)."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.username if user else None


def user_view(user: User) -> UserView:
    return UserView(user.id, user.username, Role(user.role), user.active, user.created_at)


def item_key(item: Item) -> ItemKey:
    return ItemKey(item.scene_id, item.level, item.object_id, item.ann_id)


def get_revision(session: Session, item_id: int, number: int) -> Revision:
    return session.scalars(
        select(Revision).where(Revision.item_id == item_id, Revision.number == number)
    ).one()


def head_of(session: Session, item: Item) -> Revision:
    return get_revision(session, item.id, item.head_revision)


def item_view(session: Session, item: Item, head: Revision | None = None) -> ItemView:
    head = head or head_of(session, item)
    return ItemView(
        id=item.id,
        key=item_key(item),
        object_name=item.object_name,
        pipeline_status=item.pipeline_status,
        confidence=item.confidence,
        source=item.source,
        text=Edit(head.description, head.question, head.answer),
        pipeline_text=Edit(item.pipeline_description, item.pipeline_question, item.pipeline_answer),
        answer_object_ids=list(item.answer_object_ids) if item.answer_object_ids is not None else None,
        extra=dict(item.extra),
        review_status=ReviewStatus(item.review_status),
        head_revision=item.head_revision,
        reviews_required=item.reviews_required,
        priority=item.priority,
        pipeline_changed=item.pipeline_changed,
        assignee=username(session, item.assignee_id),
        leased_by=username(session, item.leased_by),
        lease_expires_at=item.lease_expires_at,
    )


def revision_view(session: Session, rev: Revision) -> RevisionView:
    return RevisionView(
        number=rev.number,
        parent_number=rev.parent_number,
        author=username(session, rev.author_id),
        kind=rev.kind,
        text=Edit(rev.description, rev.question, rev.answer),
        review_status=ReviewStatus(rev.review_status),
        created_at=rev.created_at,
    )


def decision_view(session: Session, d: Decision) -> DecisionView:
    return DecisionView(
        id=d.id,
        item_id=d.item_id,
        user=username(session, d.user_id) or "?",
        action=Action(d.kind),
        base_revision=d.base_revision,
        revision_number=d.revision_number,
        reason=d.reason,
        note=d.note,
        active_seconds=d.active_seconds,
        status_after=ReviewStatus(d.status_after),
        created_at=d.created_at,
        undone_at=d.undone_at,
    )


def draft_view(session: Session, draft: Draft, head_revision: int) -> DraftView:
    return DraftView(
        item_id=draft.item_id,
        user=username(session, draft.user_id) or "?",
        base_revision=draft.base_revision,
        text=Edit(draft.description, draft.question, draft.answer),
        updated_at=draft.updated_at,
        stale=draft.base_revision != head_revision,
    )
