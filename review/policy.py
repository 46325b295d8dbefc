"""The review status of an item as a pure function of its decisions (no database here, so it is easy to test).

Rules, applied to the active (not undone) votes in order (skips are not votes):
- no vote: pending;
- the last vote is an edit and second approval is on: needs_approval (someone else must approve it);
- fewer distinct voters than the item requires (double-review sample): in_review;
- double review where the first two people disagreed on approve vs reject, and no third person has
  voted yet: disputed;
- otherwise the last vote decides: approved (approve or edit) or rejected.

Who may vote: an item is open until approved or rejected; a disputed one is settled by a reviewer or an
admin, never by an annotator (the queue does not offer it to them, a vote is refused, and an undo does not
hand it back to them).

Who may do what else: an admin may do everything; any other role only what names it (`role_allows`).

Work time: the time a decision reports is capped at `MAX_ACTIVE_SECONDS` (an item left open over lunch
counts as that much work, not as an hour), and never negative (`work_seconds`).

Text comparison: surrounding whitespace is not a change (a trailing newline typed into the editor must not
turn a plain approval into an edit, nor block one later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from review.views import OPEN_STATUSES, Action, Edit, ReviewStatus, Role

MAX_ACTIVE_SECONDS = 600.0  # the most work time one decision may report


def work_seconds(seconds: float) -> float:
    """The work time a decision counts: `seconds` clamped to 0..MAX_ACTIVE_SECONDS (NaN counts as 0)."""
    return min(max(float(seconds), 0.0), MAX_ACTIVE_SECONDS) if seconds == seconds else 0.0


def role_allows(role: Role | str, *roles: Role | str) -> bool:
    """Whether a user of `role` may do what `roles` may do: admins may do everything, and with no
    `roles` given only admins may."""
    role = Role(role)
    return role == Role.ADMIN or role in {Role(r) for r in roles}


def role_refusal(username: str, role: Role | str, *roles: Role | str) -> str | None:
    """Why `username` may not do what `roles` may do; None when they may."""
    if role_allows(role, *roles):
        return None
    needed = ", ".join(Role(r).value for r in roles) or Role.ADMIN.value
    return f"{username} ({Role(role).value}) may not do this: needs {needed}"


@dataclass(frozen=True)
class Vote:
    user_id: int
    action: Action  # approve, edit or reject


def accepts(action: Action) -> bool:
    """Approve vs reject: an edit-and-approve accepts the (corrected) caption."""
    return action in (Action.APPROVE, Action.EDIT)


def resolve_status(votes: Sequence[Vote], reviews_required: int, second_approval: bool) -> ReviewStatus:
    if not votes:
        return ReviewStatus.PENDING
    last = votes[-1]
    if last.action == Action.EDIT and second_approval:
        return ReviewStatus.NEEDS_APPROVAL
    first_votes: dict[int, Vote] = {}
    for vote in votes:
        first_votes.setdefault(vote.user_id, vote)
    if len(first_votes) < reviews_required:
        return ReviewStatus.IN_REVIEW
    if reviews_required >= 2:
        first, second = list(first_votes.values())[:2]
        settled_by_third = last.user_id not in (first.user_id, second.user_id)
        if accepts(first.action) != accepts(second.action) and not settled_by_third:
            return ReviewStatus.DISPUTED
    return ReviewStatus.APPROVED if accepts(last.action) else ReviewStatus.REJECTED


def vote_refusal(status: ReviewStatus | str, role: Role | str) -> str | None:
    """Why a user of `role` may not vote on an item in `status` now; None when they may."""
    status, role = ReviewStatus(status), Role(role)
    if status not in OPEN_STATUSES:
        return f"the item is {status.value} already"
    if status == ReviewStatus.DISPUTED and role == Role.ANNOTATOR:
        return "a disputed item is settled by a reviewer or an admin"
    return None


def normalize_text(text: Edit) -> Edit:
    """The text as stored: each field without surrounding whitespace (question / answer may be None)."""
    return Edit(
        text.description.strip(),
        text.question.strip() if text.question is not None else None,
        text.answer.strip() if text.answer is not None else None,
    )


def same_text(a: Edit, b: Edit) -> bool:
    """Whether two texts say the same once surrounding whitespace is ignored ("" and None alike)."""
    fields = [(t.description, t.question or "", t.answer or "") for t in map(normalize_text, (a, b))]
    return fields[0] == fields[1]
