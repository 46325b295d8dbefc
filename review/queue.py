"""The work queue and its leases: which item a user gets next, and how two people never get the same one.

A claim picks the first open item in priority order that is not leased (or whose lease has expired),
that the user has not already decided in its current revision, and that matches the user's filters;
it then writes the lease onto the item row. On SQLite the whole claim runs under the write lock taken
by `BEGIN IMMEDIATE`; on PostgreSQL the candidate row is locked with `FOR UPDATE SKIP LOCKED`, so
concurrent claimants skip each other's rows instead of waiting or double-leasing. A user holds at most
one lease: asking for the next item returns the one they hold (a page refresh) or lets it go.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast, exists, false, func, or_, select, update
from sqlalchemy.orm import Session

from review.convert import item_key
from review.errors import ReviewError
from review.schema import Assignment, Decision, Item, User
from review.users import find_user
from review.views import OPEN_STATUSES, QueueFilter, ReviewStatus, Role
from review.why import NO_REASON


def lock_item(session: Session, item_id: int) -> Item:
    """The item row, locked for this transaction (PostgreSQL; SQLite already holds the write lock)."""
    item = session.scalars(
        select(Item).where(Item.id == item_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if item is None:
        raise ReviewError(f"item {item_id}", "no such item", code="not_found")
    return item


def lease_active(item: Item, now: datetime) -> bool:
    return item.leased_by is not None and item.lease_expires_at is not None and item.lease_expires_at > now


QUEUE_ORDER = (Item.priority, Item.confidence, Item.id)  # who gets what first: claims, peeks and listings


def _has_reason(codes: tuple[str, ...]) -> ColumnElement[bool]:
    """Items whose recorded `flag_reasons` hold any of the codes (`NO_REASON`: flagged, none recorded).

    The list lives in the JSON column `extra`; read back as JSON text (`["color_contradicted", ...]`) on
    SQLite and PostgreSQL alike, a code matches as a quoted element. Codes are word characters only
    (checked), so a quoted code cannot match inside another element.
    """
    bad = [c for c in codes if not c.isidentifier()]
    if bad:
        raise ReviewError(", ".join(bad), "a flag reason is a code such as color_contradicted", "input")
    listed = func.coalesce(cast(Item.extra["flag_reasons"], Text), "")
    quoted = ['%"' + code.replace("_", "!_") + '"%' for code in codes if code != NO_REASON]  # `_`: literal
    conditions = [listed.like(pattern, escape="!") for pattern in quoted]
    if NO_REASON in codes:
        conditions.append(Item.pipeline_status.in_(("flagged", "rejected")) & ~listed.like("[%"))
    return or_(*conditions) if conditions else false()


def apply_filter(stmt: Select[Any], session: Session, f: QueueFilter) -> Select[Any]:
    """Narrow an items query to the filter's scenes, levels, categories, statuses, reasons and assignee."""
    if f.scene_ids:
        stmt = stmt.where(Item.scene_id.in_(f.scene_ids))
    if f.levels:
        stmt = stmt.where(Item.level.in_(f.levels))
    if f.categories:
        stmt = stmt.where(Item.object_name.in_(f.categories))
    if f.pipeline_statuses:
        stmt = stmt.where(Item.pipeline_status.in_(f.pipeline_statuses))
    if f.review_statuses:
        stmt = stmt.where(Item.review_status.in_([ReviewStatus(s).value for s in f.review_statuses]))
    if f.flag_reasons:
        stmt = stmt.where(_has_reason(f.flag_reasons))
    if f.assignee is not None:
        stmt = stmt.where(Item.assignee_id == find_user(session, f.assignee).id)
    return stmt


def _claimable(session: Session, user: User, f: QueueFilter, now: datetime) -> Select[Any]:
    statuses = [s.value for s in OPEN_STATUSES]
    if user.role == Role.ANNOTATOR:
        statuses.remove(ReviewStatus.DISPUTED.value)  # disputes go to reviewers and admins
    decided_head = exists().where(
        Decision.item_id == Item.id,
        Decision.user_id == user.id,
        Decision.revision_number == Item.head_revision,
        Decision.undone_at.is_(None),
    )
    stmt = select(Item).where(
        Item.review_status.in_(statuses),
        or_(Item.leased_by.is_(None), Item.lease_expires_at <= now),
        ~decided_head,
    )
    if f.assignee is None:
        stmt = stmt.where(or_(Item.assignee_id.is_(None), Item.assignee_id == user.id))
    return apply_filter(stmt, session, f)


def _end_lease(session: Session, item: Item, reason: str, now: datetime) -> None:
    if item.assignment_id is not None:
        session.execute(
            update(Assignment)
            .where(Assignment.id == item.assignment_id, Assignment.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )
    item.leased_by = None
    item.lease_expires_at = None
    item.assignment_id = None


def release(session: Session, item: Item, reason: str, now: datetime) -> None:
    """Take the lease off an item: `decided` or `released` by its holder, `expired` when taken over."""
    if item.leased_by is not None:
        _end_lease(session, item, reason, now)


def grant_lease(session: Session, item: Item, user: User, now: datetime, duration: timedelta) -> None:
    """Lease the (locked) item to the user, closing the previous holder's lease if there was one."""
    release(session, item, "released" if lease_active(item, now) else "expired", now)
    assignment = Assignment(item_id=item.id, user_id=user.id, claimed_at=now, expires_at=now + duration)
    session.add(assignment)
    session.flush()
    item.leased_by = user.id
    item.lease_expires_at = assignment.expires_at
    item.assignment_id = assignment.id


def release_held(session: Session, user: User, now: datetime, keep: int | None = None) -> None:
    """Let go of every lease the user holds (but `keep`): a user works on one item at a time."""
    for item in session.scalars(select(Item).where(Item.leased_by == user.id)).all():
        if item.id != keep:
            release(session, item, "released", now)


def _resume(session: Session, user: User, f: QueueFilter, now: datetime, duration: timedelta) -> Item | None:
    """The item the user holds if it is open and matches the filter (a page refresh); frees the rest."""
    held = session.scalars(select(Item).where(Item.leased_by == user.id).with_for_update()).all()
    if not held:
        return None
    resumable = apply_filter(
        select(Item.id).where(
            Item.id.in_([i.id for i in held]),
            Item.lease_expires_at > now,
            Item.review_status.in_([s.value for s in OPEN_STATUSES]),
        ),
        session,
        f,
    )
    keep = session.scalars(resumable.limit(1)).first()
    for item in held:
        if item.id == keep:
            renew(session, item, user, now, duration)
        else:
            release(session, item, "released", now)
    return next((i for i in held if i.id == keep), None)


def claim_next(
    session: Session, user: User, f: QueueFilter, now: datetime, duration: timedelta
) -> Item | None:
    """Lease the user the next item (or renew the one they hold); None when the queue is empty for them."""
    if session.get_bind().dialect.name != "sqlite":  # SQLite's write lock already serialises claims
        # One claim per user at a time (a double click sends two): lock the user's row. NO KEY UPDATE
        # does not block the foreign-key checks of other transactions that reference this user.
        session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    held = _resume(session, user, f, now, duration)
    if held is not None:
        return held
    stmt = (
        _claimable(session, user, f, now)
        .order_by(*QUEUE_ORDER)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    item = session.scalars(stmt).first()
    if item is None:
        return None
    grant_lease(session, item, user, now, duration)
    return item


def renew(session: Session, item: Item, user: User, now: datetime, duration: timedelta) -> datetime:
    """Extend the user's lease (the app calls this while the annotator is active); re-lease if it lapsed."""
    if item.leased_by != user.id:
        if lease_active(item, now):
            holder = session.get(User, item.leased_by)
            raise ReviewError(
                item_key(item), f"leased by {holder.username if holder else '?'} now", code="leased"
            )
        if item.review_status not in {s.value for s in OPEN_STATUSES}:
            raise ReviewError(item_key(item), f"the item is {item.review_status} already", code="conflict")
        grant_lease(session, item, user, now, duration)
        return now + duration
    item.lease_expires_at = now + duration
    if item.assignment_id is not None:
        session.execute(
            update(Assignment)
            .where(Assignment.id == item.assignment_id)
            .values(expires_at=item.lease_expires_at)
        )
    return item.lease_expires_at


def peek_next(session: Session, user: User, f: QueueFilter, now: datetime, limit: int) -> list[Item]:
    """The items `claim_next` would hand the user next, in its order, without leasing any: what the app
    prefetches. Same predicate and order as the claim, so the guess fails only when others claim first."""
    stmt = _claimable(session, user, f, now).order_by(*QUEUE_ORDER)
    return list(session.scalars(stmt.limit(limit)))


def list_items(session: Session, f: QueueFilter, limit: int, offset: int) -> list[Item]:
    stmt = apply_filter(select(Item), session, f).order_by(*QUEUE_ORDER)
    return list(session.scalars(stmt.limit(limit).offset(offset)))
