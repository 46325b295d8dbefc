"""Agreement measures, the status rules, tokenization, and the statistics the app and `stats` show."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_review_data import BACKENDS, add_users, database_url, loaded_service

from review import Action, Edit, ReviewConfig, ReviewStatus
from review.agreement import cohen_kappa, edit_distance, normalized_edit_distance
from review.cli import format_stats
from review.policy import Vote, resolve_status
from review.records import tokenize


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
    text = format_stats(stats)  # the table `python -m review stats` prints
    assert "alice" in text and "kappa 0.500" in text and "disputed" in text
