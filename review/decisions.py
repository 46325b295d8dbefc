"""Approve, edit-and-approve, reject, skip and undo: the writes that record a person's decision.

Every decision runs in one write transaction with the item locked, and applies in full or not at all:
- an idempotency key makes a retried or double-clicked request return the first call's result;
- a decision based on an older revision than the head is refused with what changed in between
  (never a silent overwrite); skip is the exception, as it changes nothing;
- approve, edit and reject each add a revision (the item's new version); undo adds one that restores
  the state before the undone decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from review.config import ReviewConfig
from review.convert import decision_view, get_revision, item_key, item_view, username
from review.errors import ReviewError
from review.policy import Vote, normalize_text, resolve_status, same_text, vote_refusal, work_seconds
from review.queue import grant_lease, lease_active, lock_item, release, release_held
from review.revisions import append_revision, conflict_since
from review.schema import Decision, Draft, Item, Revision, User
from review.views import OPEN_STATUSES, Action, Edit, RejectReason, ReviewStatus, SubmitResult, UndoResult


@dataclass(frozen=True)
class Request:
    """One decision as the app sends it."""

    item_id: int
    action: Action
    base_revision: int  # the revision the annotator was looking at
    key: str  # idempotency key: the same key twice applies once
    edit: Edit | None = None  # for edit-and-approve
    reason: RejectReason | None = None  # for reject
    note: str | None = None
    active_seconds: float = 0.0  # time the annotator actively spent on the item
    require_lease: bool = False  # refuse unless the user holds the item's lease (the app's decisions)


def active_decisions(session: Session, item_id: int) -> list[tuple[int, Action, int]]:
    """(user id, action, revision number) of the item's decisions that are not undone, oldest first."""
    rows = session.execute(
        select(Decision.user_id, Decision.kind, Decision.revision_number)
        .where(Decision.item_id == item_id, Decision.undone_at.is_(None))
        .order_by(Decision.id)
    ).all()
    return [(user_id, Action(kind), number) for user_id, kind, number in rows]


def votes_of(decisions: list[tuple[int, Action, int]]) -> list[Vote]:
    """The decisions that count towards the status: all but skips."""
    return [Vote(user_id, action) for user_id, action, _ in decisions if action != Action.SKIP]


def active_votes(session: Session, item_id: int) -> list[Vote]:
    return votes_of(active_decisions(session, item_id))


def check_edit(item: Item, edit: Edit | None, head: Edit) -> Edit:
    """The edit's full text (scenario question / answer default to the head's), or why it is invalid."""
    if edit is None or (not edit.description.strip() and item.level != "scenario"):
        raise ReviewError(item_key(item), "an edit needs the corrected description")
    if item.level != "scenario" and (edit.question is not None or edit.answer is not None):
        raise ReviewError(item_key(item), "only scenario items have a question and an answer")
    full = normalize_text(
        Edit(
            edit.description,
            (edit.question if edit.question is not None else head.question),
            (edit.answer if edit.answer is not None else head.answer),
        )
    )
    if item.level == "scenario" and not (full.question or "").strip():
        raise ReviewError(item_key(item), "a scenario item needs a question")
    return full


def _replay(session: Session, prior: Decision, user: User, request: Request, item: Item) -> SubmitResult:
    if prior.user_id != user.id or prior.item_id != item.id or prior.kind != request.action.value:
        raise ReviewError(request.key, "this idempotency key was used for another request", code="conflict")
    return SubmitResult(True, item_view(session, item), decision_view(session, prior), replayed=True)


def _check_allowed(
    session: Session,
    item: Item,
    head: Revision,
    decisions: list[tuple[int, Action, int]],
    user: User,
    request: Request,
    config: ReviewConfig,
    now: datetime,
) -> None:
    key = item_key(item)
    if lease_active(item, now) and item.leased_by != user.id:
        holder = username(session, item.leased_by)
        raise ReviewError(
            key, f"{holder} holds this item until {item.lease_expires_at:%H:%M:%S} UTC", "leased"
        )
    if item.review_status not in {s.value for s in OPEN_STATUSES}:
        raise ReviewError(key, f"the item is {item.review_status} already", code="conflict")
    if request.action == Action.SKIP:
        return
    refusal = vote_refusal(item.review_status, user.role)
    if refusal is not None:
        raise ReviewError(key, refusal, code="forbidden")
    own_edit = head.kind == Action.EDIT.value and head.author_id == user.id
    if request.action == Action.APPROVE and config.second_approval and own_edit:
        raise ReviewError(key, "the last edit is your own: another person approves it", code="forbidden")
    if request.action == Action.REJECT and request.reason is None:
        raise ReviewError(key, "a rejection needs a reason tag")
    decided = any(
        uid == user.id and action != Action.SKIP and number == item.head_revision
        for uid, action, number in decisions
    )
    if decided:
        raise ReviewError(key, f"you already decided revision {item.head_revision}", code="conflict")


def submit(
    session: Session, user: User, request: Request, config: ReviewConfig, now: datetime
) -> SubmitResult:
    """Apply one decision (the caller's write transaction commits it)."""
    item = lock_item(session, request.item_id)
    prior = session.scalars(select(Decision).where(Decision.idempotency_key == request.key)).first()
    if prior is not None:
        return _replay(session, prior, user, request, item)
    if request.require_lease and item.leased_by != user.id:
        holder = f"{username(session, item.leased_by)} holds it now" if item.leased_by else "nobody holds it"
        raise ReviewError(
            item_key(item),
            f"item {item.id} is not your current item ({holder}): reload to get your item",
            code="leased",
        )
    if request.action != Action.SKIP and request.base_revision != item.head_revision:
        return SubmitResult(
            False, item_view(session, item), conflict=conflict_since(session, item, request.base_revision)
        )
    head = get_revision(session, item.id, item.head_revision)
    decisions = active_decisions(session, item.id)
    _check_allowed(session, item, head, decisions, user, request, config, now)

    status = ReviewStatus(item.review_status)
    if request.action != Action.SKIP:
        head_text = Edit(head.description, head.question, head.answer)
        text = check_edit(item, request.edit, head_text) if request.action == Action.EDIT else head_text
        if request.action == Action.EDIT and same_text(text, head_text):
            raise ReviewError(item_key(item), "the edit does not change the text: approve it instead")
        votes = [*votes_of(decisions), Vote(user.id, request.action)]
        status = resolve_status(votes, item.reviews_required, config.second_approval)
        head = append_revision(
            session, item, author_id=user.id, kind=request.action.value, text=text, status=status, now=now
        )
        session.execute(delete(Draft).where(Draft.item_id == item.id, Draft.user_id == user.id))
    decision = Decision(
        item_id=item.id,
        user_id=user.id,
        kind=request.action.value,
        base_revision=request.base_revision if request.action != Action.SKIP else item.head_revision,
        revision_number=head.number,
        reason=request.reason.value if request.reason else None,
        note=request.note,
        active_seconds=work_seconds(request.active_seconds),
        idempotency_key=request.key,
        status_after=status.value,
        created_at=now,
    )
    session.add(decision)
    release(session, item, "decided", now)
    session.flush()
    return SubmitResult(True, item_view(session, item, head), decision_view(session, decision))


def undo(
    session: Session, user: User, key: str, config: ReviewConfig, now: datetime, item_id: int | None = None
) -> UndoResult:
    """Undo the user's most recent active decision (on `item_id` if given), if nobody acted on it since."""
    prior = session.scalars(select(Decision).where(Decision.undo_key == key)).first()
    if prior is not None:
        if prior.user_id != user.id:
            raise ReviewError(key, "this idempotency key was used for another request", code="conflict")
        return UndoResult(
            decision_view(session, prior), item_view(session, session.get_one(Item, prior.item_id)), True
        )
    stmt = select(Decision).where(Decision.user_id == user.id, Decision.undone_at.is_(None))
    if item_id is not None:
        stmt = stmt.where(Decision.item_id == item_id)
    last = session.scalars(stmt.order_by(Decision.id.desc()).limit(1)).first()
    if last is None:
        raise ReviewError(user.username, "you have no decision to undo", code="not_found")
    item = lock_item(session, last.item_id)
    session.refresh(last)  # the row as of now that the item is locked
    if last.undone_at is not None:
        raise ReviewError(item_key(item), "this decision was undone already", code="conflict")
    if lease_active(item, now) and item.leased_by != user.id:
        holder = username(session, item.leased_by)
        raise ReviewError(item_key(item), f"{holder} is working on this item now", code="leased")
    if last.kind != Action.SKIP.value:
        if item.head_revision != last.revision_number:
            newer = get_revision(session, item.id, item.head_revision)
            who = username(session, newer.author_id) or "the pipeline"
            raise ReviewError(
                item_key(item),
                f"{who} changed the item after your decision (revision {newer.number})",
                "conflict",
            )
        last.undone_at = now
        session.flush()
        before = get_revision(session, item.id, last.base_revision)
        status = resolve_status(active_votes(session, item.id), item.reviews_required, config.second_approval)
        text = Edit(before.description, before.question, before.answer)
        append_revision(session, item, author_id=user.id, kind="undo", text=text, status=status, now=now)
    last.undone_at = now
    last.undo_key = key
    # An undone skip may find the item decided since, or disputed, which an annotator may not settle:
    # then the skip is undone but the item is not handed back to them (they would hold an item every
    # vote on which is refused).
    if vote_refusal(item.review_status, user.role) is None:
        release_held(session, user, now, keep=item.id)
        if item.leased_by != user.id:
            grant_lease(session, item, user, now, config.lease)
    session.flush()
    return UndoResult(decision_view(session, last), item_view(session, item))
