"""The review status of an item as a pure function of its decisions (no database here, so it is easy to test).

Rules, applied to the active (not undone) votes in order (skips are not votes):
- no vote: pending;
- the last vote is an edit and second approval is on: needs_approval (someone else must approve it);
- fewer distinct voters than the item requires (double-review sample): in_review;
- double review where the first two people disagreed on approve vs reject, and no third person has
  voted yet: disputed;
- otherwise the last vote decides: approved (approve or edit) or rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from review.views import Action, ReviewStatus


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
