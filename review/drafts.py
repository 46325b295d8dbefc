"""Drafts: an annotator's unsaved edit, kept in the database so that it survives a page refresh or a crash.

A draft is private to its author and is not a revision. It remembers the revision it was started from, so
the app can warn (`stale`) when someone saved a newer one; submitting it goes through the normal
base-revision check. A decision on the item deletes the author's draft.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from review.convert import item_key, username
from review.errors import ReviewError
from review.queue import lease_active, lock_item, renew
from review.schema import Draft, User
from review.views import Edit


def save_draft(
    session: Session,
    user: User,
    item_id: int,
    base_revision: int,
    text: Edit,
    now: datetime,
    lease: timedelta,
) -> Draft:
    """Create or replace the user's draft of the item; saving counts as activity and renews their lease."""
    item = lock_item(session, item_id)
    if lease_active(item, now) and item.leased_by != user.id:
        holder = username(session, item.leased_by)
        raise ReviewError(item_key(item), f"{holder} is working on this item now", code="leased")
    if not 1 <= base_revision <= item.last_revision:
        raise ReviewError(item_key(item), f"there is no revision {base_revision}", code="invalid")
    draft = get_draft(session, user.id, item_id)
    if draft is None:
        draft = Draft(item_id=item_id, user_id=user.id)
        session.add(draft)
    draft.base_revision = base_revision
    draft.description = text.description
    draft.question = text.question
    draft.answer = text.answer
    draft.updated_at = now
    if item.leased_by == user.id:
        renew(session, item, user, now, lease)
    session.flush()
    return draft


def get_draft(session: Session, user_id: int, item_id: int) -> Draft | None:
    return session.scalars(select(Draft).where(Draft.item_id == item_id, Draft.user_id == user_id)).first()


def discard_draft(session: Session, user_id: int, item_id: int) -> bool:
    draft = get_draft(session, user_id, item_id)
    if draft is not None:
        session.delete(draft)
    return draft is not None
