"""Agreement measures, the status rules, tokenization, and the statistics the app and `stats` show."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from test_review_data import BACKENDS, add_users, database_url, loaded_service

from core.text import scanrefer_tokens as tokenize
from review import Action, Edit, ReviewConfig, ReviewService, ReviewStatus, Role
from review.agreement import cohen_kappa, edit_distance, normalized_edit_distance
from review.cli import format_stats
from review.policy import MAX_ACTIVE_SECONDS, Vote, resolve_status, role_allows, role_refusal, work_seconds
from review.schema import utcnow
from review.stats import (
    DecisionRow,
    acceptance_rate,
    done_today,
    queue_by_status,
    user_acceptance_rate,
    votes_by_action,
    votes_per_day,
)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, tmp_path)


def test_cohen_kappa_matches_the_textbook_example() -> None:
    # 50 items: both yes 20, only A yes 5, only B yes 10, both no 15 -> observed 0.7, chance 0.5, kappa 0.4
    pairs = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([(True, True), (False, False)]) == pytest.approx(1.0)
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)
    assert cohen_kappa([(True, True)] * 5) is None  # one label only: chance agreement is 1
    assert cohen_kappa([]) is None


def test_edit_distance() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == edit_distance("abc", "") == 3
    assert edit_distance("a brown chair", "a brown chair") == 0
    assert edit_distance("flaw", "lawn") == edit_distance("lawn", "flaw") == 2
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert normalized_edit_distance("", "") == 0.0


@pytest.mark.parametrize(
    ("votes", "required", "second_approval", "expected"),
    [
        ([], 1, True, ReviewStatus.PENDING),
        ([(1, Action.APPROVE)], 1, True, ReviewStatus.APPROVED),
        ([(1, Action.REJECT)], 1, True, ReviewStatus.REJECTED),
        ([(1, Action.EDIT)], 1, True, ReviewStatus.NEEDS_APPROVAL),
        ([(1, Action.EDIT)], 1, False, ReviewStatus.APPROVED),
        ([(1, Action.EDIT), (2, Action.APPROVE)], 1, True, ReviewStatus.APPROVED),
        ([(1, Action.EDIT), (2, Action.REJECT)], 1, True, ReviewStatus.REJECTED),
        ([(1, Action.APPROVE)], 2, True, ReviewStatus.IN_REVIEW),
        ([(1, Action.APPROVE), (2, Action.APPROVE)], 2, True, ReviewStatus.APPROVED),
        ([(1, Action.APPROVE), (2, Action.REJECT)], 2, True, ReviewStatus.DISPUTED),
        ([(1, Action.REJECT), (2, Action.EDIT)], 2, False, ReviewStatus.DISPUTED),
        ([(1, Action.APPROVE), (2, Action.REJECT), (3, Action.APPROVE)], 2, True, ReviewStatus.APPROVED),
        ([(1, Action.APPROVE), (2, Action.REJECT), (3, Action.EDIT)], 2, True, ReviewStatus.NEEDS_APPROVAL),
        ([(1, Action.EDIT), (2, Action.APPROVE)], 2, True, ReviewStatus.APPROVED),
    ],
)
def test_status_rules(
    votes: list[tuple[int, Action]], required: int, second_approval: bool, expected: str
) -> None:
    assert resolve_status([Vote(u, a) for u, a in votes], required, second_approval) == expected


def test_tokens_follow_scanrefer() -> None:
    assert tokenize("This is a brown chair. It's next to the L-shaped desk, by the door!") == [
        "this", "is", "a", "brown", "chair", ".", "it", "'s", "next", "to", "the", "l-shaped", "desk", ",",
        "by", "the", "door", "!",
    ]  # fmt: skip
    assert tokenize("the 'red' chair") == ["the", "'", "red", "'", "chair"]


def test_statistics_per_annotator_category_and_agreement(url: str, tmp_path: Path) -> None:
    service = loaded_service(url, tmp_path, ReviewConfig(double_review_rate=1.0, second_approval=False))
    add_users(service, ["alice", "bob"])
    plan = [  # (alice, bob) on four double-reviewed items
        (Action.APPROVE, Action.APPROVE),
        (Action.APPROVE, Action.REJECT),
        (Action.REJECT, Action.REJECT),
        (Action.EDIT, Action.EDIT),
    ]
    for actions in plan:
        item = service.next_item("alice")
        for user, action in zip(("alice", "bob"), actions, strict=True):
            if user == "bob":
                assert service.next_item("bob").id == item.id
            head = service.get_item(item.id).item.head_revision
            key = uuid.uuid4().hex
            if action == Action.APPROVE:
                service.approve(user, item.id, head, key, active_seconds=30)
            elif action == Action.REJECT:
                service.reject(user, item.id, head, "wrong_object", key, active_seconds=30)
            else:
                text = "A small brown chair." if user == "alice" else "A small black chair."
                service.edit_and_approve(user, item.id, head, Edit(text), key, active_seconds=30)
    skipped = service.next_item("alice")
    service.skip("alice", skipped.id, uuid.uuid4().hex, active_seconds=6)

    stats = service.stats()
    alice, bob = stats.annotators
    counts = (alice.votes, alice.approved, alice.edited, alice.rejected, alice.skipped)
    assert alice.name == "alice" and counts == (4, 2, 1, 1, 1)
    assert alice.active_seconds == 126 and alice.throughput_per_hour == pytest.approx(
        4 / (126 / 3600), rel=1e-3
    )
    assert alice.acceptance_rate == 0.75 and alice.edit_rate == 0.25
    assert bob.acceptance_rate == 0.5 and bob.edit_rate == 0.25
    a = stats.agreement
    expected_kappa = cohen_kappa([(True, True), (True, False), (False, False), (True, True)])
    assert (
        a.double_reviewed == 4 and a.observed_agreement == 0.75 and a.kappa == pytest.approx(expected_kappa)
    )
    assert a.both_edited == 1 and a.mean_edit_distance == edit_distance(
        "A small brown chair.", "A small black chair."
    )
    assert sum(c.votes for c in stats.categories) == 8
    assert stats.items == 45 and sum(stats.items_by_pipeline_status.values()) == 45
    assert sum(stats.items_by_level["object"].values()) == 30
    assert stats.items_by_level["object"]["disputed"] == 1
    rows = service.decision_log()  # the progress numbers use the same definitions as the rates above
    assert user_acceptance_rate(rows, "alice") == alice.acceptance_rate
    assert user_acceptance_rate(rows, "bob") == bob.acceptance_rate
    assert done_today(rows, "alice") == alice.votes and done_today(rows, "nobody") == 0
    queue = queue_by_status(stats)
    assert sum(queue.values()) == stats.items and queue["disputed"] == 1
    # the workspace's progress line: the same numbers from aggregate queries, an undone vote left out
    extra = service.next_item("bob")
    service.approve("bob", extra.id, service.get_item(extra.id).item.head_revision, uuid.uuid4().hex)
    service.undo("bob", uuid.uuid4().hex, extra.id)
    rows, queue = service.decision_log(), queue_by_status(service.stats())
    for name in ("alice", "bob", "nobody"):
        mine = service.progress(name)
        assert (mine.done_today, mine.acceptance_rate, mine.queue) == (
            done_today(rows, name),
            user_acceptance_rate(rows, name),
            queue,
        )
    assert service.progress("bob").done_today == 4 and service.progress("bob").acceptance_rate == 0.5
    tomorrow = ReviewService(service.db, clock=lambda: utcnow() + timedelta(days=1))
    assert tomorrow.progress("alice").done_today == 0 and tomorrow.progress("alice").acceptance_rate == 0.75
    text = format_stats(stats)  # the table `python -m review stats` prints
    assert "alice" in text and "kappa 0.500" in text and "disputed" in text


def test_acceptance_rate_counts_votes_not_skips() -> None:
    assert acceptance_rate([Action.APPROVE, Action.EDIT, Action.REJECT, Action.REJECT]) == 0.5
    assert acceptance_rate(["approve", "skip", "skip"]) == 1.0  # the app's rows carry plain strings
    assert acceptance_rate([Action.SKIP]) is None and acceptance_rate([]) is None


def test_progress_counts_votes_in_force_per_day_user_and_category() -> None:
    day = date(2026, 1, 2)
    rows = [
        DecisionRow(day, "ann", "chair", "object", "approve", False),
        DecisionRow(day, "ann", "chair", "object", "reject", True),  # undone: not counted
        DecisionRow(day, "bob", "table", "object", "skip", False),  # a skip is no vote
        DecisionRow(day, "bob", "table", "object", "edit", False),
        DecisionRow(date(2026, 1, 3), "ann", "table", "object", "reject", False),
    ]
    assert votes_per_day(rows) == {"ann": {day: 1, date(2026, 1, 3): 1}, "bob": {day: 1}}
    assert votes_per_day(rows, by="category") == {"chair": {day: 1}, "table": {day: 1, date(2026, 1, 3): 1}}
    assert done_today(rows, "ann", day) == 1 and done_today(rows, "bob", day) == 1
    assert user_acceptance_rate(rows, "ann") == 0.5 and user_acceptance_rate(rows, "cy") is None
    assert votes_by_action(rows) == {
        "ann": {"approve": 1, "edit": 0, "reject": 1},
        "bob": {"approve": 0, "edit": 1, "reject": 0},
    }


def test_work_time_is_capped_by_the_service(url: str, tmp_path: Path) -> None:
    assert work_seconds(10_000) == MAX_ACTIVE_SECONDS and work_seconds(-5) == 0.0
    assert work_seconds(float("nan")) == 0.0 and work_seconds(42.5) == 42.5
    service = loaded_service(url, tmp_path, ReviewConfig(double_review_rate=0.0))
    add_users(service, ["alice"])
    item = service.next_item("alice")
    service.approve("alice", item.id, item.head_revision, uuid.uuid4().hex, active_seconds=10_000)
    item = service.next_item("alice")
    service.skip("alice", item.id, uuid.uuid4().hex, active_seconds=-3)
    (alice,) = service.stats().annotators
    assert alice.active_seconds == MAX_ACTIVE_SECONDS  # left open for hours: counts as the cap


def test_role_permissions() -> None:
    assert role_allows(Role.ADMIN) and role_allows("admin", Role.ANNOTATOR)  # admins may do everything
    assert role_allows(Role.REVIEWER, Role.REVIEWER) and not role_allows(Role.REVIEWER)
    assert not role_allows(Role.ANNOTATOR, Role.REVIEWER)
    assert role_allows("annotator", "annotator", "reviewer")
    refusal = role_refusal("ann", Role.ANNOTATOR, Role.REVIEWER)
    assert refusal == "ann (annotator) may not do this: needs reviewer"
    assert role_refusal("rev", Role.REVIEWER) == "rev (reviewer) may not do this: needs admin"
    assert role_refusal("boss", Role.ADMIN, Role.REVIEWER) is None
