"""The review service as the app uses it: queue and leases, guarded saves, idempotency, approval rules,
undo, drafts, double review, filters and users. Runs on SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_review_data import BACKENDS, PASSWORD, add_users, database_url, loaded_service

from review import Edit, QueueFilter, ReviewConfig, ReviewError, ReviewService, ReviewStatus


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, tmp_path)


class Clock:
    """A clock the test moves forward, to expire leases without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def key() -> str:
    return uuid.uuid4().hex


def service_with_users(url: str, tmp_path: Path, *names: str, **config: object) -> ReviewService:
    service = loaded_service(url, tmp_path, ReviewConfig(**{"double_review_rate": 0.0, **config}))
    add_users(service, list(names))
    return service


def test_queue_gives_flagged_and_low_confidence_first_and_never_the_same_item(
    url: str, tmp_path: Path
) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob")
    alice, bob = service.next_item("alice"), service.next_item("bob")
    assert alice is not None and bob is not None and alice.id != bob.id
    assert alice.pipeline_status == "flagged" and alice.leased_by == "alice"
    assert alice.priority <= bob.priority
    assert service.next_item("alice").id == alice.id  # a page refresh gives the held item back
    order = [(i.priority, i.confidence, i.id) for i in service.list_items(limit=1000)]
    assert order == sorted(order) and len(order) == 45


def test_expired_lease_returns_the_item_to_the_queue(url: str, tmp_path: Path) -> None:
    clock = Clock()
    service = service_with_users(url, tmp_path, "alice", "bob")
    service.clock = clock
    item = service.next_item("alice")
    clock.advance(10)
    assert service.renew_lease("alice", item.id) == clock.now + timedelta(minutes=15)
    clock.advance(14)
    assert service.next_item("bob").id != item.id  # still alice's: the renewal counted
    service.release("bob", service.next_item("bob").id)
    clock.advance(2)  # alice walked away: 16 minutes since her last renewal
    taken = service.next_item("bob")
    assert taken.id == item.id and taken.leased_by == "bob"
    with pytest.raises(ReviewError) as refused:
        service.approve("alice", item.id, item.head_revision, key())
    assert refused.value.code == "leased" and "bob" in refused.value.reason
    with pytest.raises(ReviewError):
        service.renew_lease("alice", item.id)


def test_a_save_from_a_stale_revision_is_refused_with_the_other_change(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob", second_approval=False)
    item = service.list_items(limit=1)[0]
    first = service.edit_and_approve("alice", item.id, item.head_revision, Edit("A tall brown chair."), key())
    assert first.applied and first.item.head_revision == item.head_revision + 1
    late = service.edit_and_approve("bob", item.id, item.head_revision, Edit("A short chair."), key())
    assert not late.applied and late.conflict is not None
    assert (
        late.conflict.head.author == "alice" and late.conflict.head.text.description == "A tall brown chair."
    )
    assert [d.user for d in late.conflict.decisions_since] == ["alice"]
    assert "alice" in late.conflict.message
    detail = service.get_item(item.id)
    assert detail.item.text.description == "A tall brown chair."
    assert [r.kind for r in detail.revisions] == ["pipeline", "edit"]


def test_a_retried_submit_applies_once(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice")
    item = service.next_item("alice")
    request_key = key()
    first = service.reject(
        "alice", item.id, item.head_revision, "hallucination", request_key, active_seconds=12
    )
    again = service.reject(
        "alice", item.id, item.head_revision, "hallucination", request_key, active_seconds=12
    )
    assert first.applied and again.applied and again.replayed and not first.replayed
    assert again.decision == first.decision
    assert len(service.get_item(item.id).decisions) == 1
    with pytest.raises(ReviewError) as reused:
        service.approve("alice", item.id, item.head_revision, request_key)
    assert reused.value.code == "conflict"


def test_edits_need_a_second_person_unless_configured_off(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob")
    item = service.next_item("alice")
    edited = service.edit_and_approve("alice", item.id, item.head_revision, Edit("A blue lamp."), key())
    assert edited.item.review_status == ReviewStatus.NEEDS_APPROVAL
    with pytest.raises(ReviewError) as own:
        service.approve("alice", item.id, edited.item.head_revision, key())
    assert own.value.code == "forbidden"
    assert service.next_item("alice").id != item.id  # not offered back to its editor
    approved = service.approve("bob", item.id, edited.item.head_revision, key())
    assert approved.item.review_status == ReviewStatus.APPROVED

    relaxed = ReviewService(url, ReviewConfig(second_approval=False))
    other = relaxed.next_item("bob")
    done = relaxed.edit_and_approve("bob", other.id, other.head_revision, Edit("A red sofa."), key())
    assert done.item.review_status == ReviewStatus.APPROVED


def test_undo_restores_the_state_before_ones_own_last_decision(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob", second_approval=False)
    item = service.next_item("alice")
    original = item.text.description
    edited = service.edit_and_approve("alice", item.id, item.head_revision, Edit("A green chair."), key())
    assert edited.item.review_status == ReviewStatus.APPROVED
    undo_key = key()
    undone = service.undo("alice", undo_key)
    assert undone.undone.id == edited.decision.id
    assert undone.item.text.description == original and undone.item.review_status == ReviewStatus.PENDING
    assert undone.item.leased_by == "alice"  # back with her to decide again
    assert service.undo("alice", undo_key).replayed
    with pytest.raises(ReviewError):
        service.undo("alice", key())  # nothing left to undo
    again = service.approve("alice", item.id, undone.item.head_revision, key())
    assert again.applied
    history = service.get_item(item.id).revisions
    assert [r.kind for r in history] == ["pipeline", "edit", "undo", "approve"]
    assert [r.parent_number for r in history] == [None, 1, 2, 3]


def test_undo_is_refused_once_someone_else_acted(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob")
    item = service.next_item("alice")
    edited = service.edit_and_approve("alice", item.id, item.head_revision, Edit("A wooden door."), key())
    service.approve("bob", item.id, edited.item.head_revision, key())
    with pytest.raises(ReviewError) as refused:
        service.undo("alice", key())
    assert refused.value.code == "conflict" and "bob" in refused.value.reason
    assert service.get_item(item.id).item.review_status == ReviewStatus.APPROVED


def test_drafts_survive_a_restart_and_say_when_they_went_stale(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob", second_approval=False)
    item = service.next_item("alice")
    service.save_draft("alice", item.id, item.head_revision, Edit("A half-written capt"))
    restarted = ReviewService(url, ReviewConfig(second_approval=False))
    draft = restarted.get_item(item.id, "alice").draft
    assert draft is not None and draft.text.description == "A half-written capt" and not draft.stale
    assert restarted.get_item(item.id, "bob").draft is None  # drafts are private
    restarted.release("alice", item.id)
    restarted.approve("bob", item.id, item.head_revision, key())
    assert restarted.get_item(item.id, "alice").draft.stale
    other = restarted.next_item("alice")
    restarted.save_draft("alice", other.id, other.head_revision, Edit("A new caption."))
    restarted.edit_and_approve("alice", other.id, other.head_revision, Edit("A new caption."), key())
    assert restarted.get_item(other.id, "alice").draft is None  # the decision used it up


def test_double_review_disagreement_goes_to_a_reviewer(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob", "carol", double_review_rate=1.0)
    add_users(service, ["dave"], role="reviewer")
    item = service.next_item("alice")
    assert item.reviews_required == 2
    first = service.approve("alice", item.id, item.head_revision, key())
    assert first.item.review_status == ReviewStatus.IN_REVIEW
    assert service.next_item("alice").id != item.id
    with pytest.raises(ReviewError):
        service.approve("alice", item.id, first.item.head_revision, key())  # one vote per person
    bob_item = service.next_item("bob")
    assert bob_item.id == item.id  # the half-reviewed item keeps its place in the queue
    second = service.reject("bob", item.id, bob_item.head_revision, "wrong_attribute", key())
    assert second.item.review_status == ReviewStatus.DISPUTED
    assert service.next_item("carol", QueueFilter(review_statuses=(ReviewStatus.DISPUTED,))) is None
    settled = service.next_item("dave", QueueFilter(review_statuses=(ReviewStatus.DISPUTED,)))
    assert settled.id == item.id
    final = service.approve("dave", item.id, settled.head_revision, key())
    assert final.item.review_status == ReviewStatus.APPROVED


def test_skip_passes_the_item_to_someone_else(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob")
    item = service.next_item("alice")
    skipped = service.skip("alice", item.id, key(), active_seconds=3)
    assert (
        skipped.applied
        and skipped.item.leased_by is None
        and skipped.item.review_status == ReviewStatus.PENDING
    )
    assert service.next_item("alice").id != item.id
    assert service.next_item("bob").id == item.id


def test_queue_filters(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice", "bob")
    add_users(service, ["root"], role="admin")
    scenario = service.next_item("alice", QueueFilter(levels=("scenario",), scene_ids=("scene0001_00",)))
    assert scenario.key.level == "scenario" and scenario.key.scene_id == "scene0001_00"
    assert scenario.text.question and scenario.answer_object_ids
    accepted = service.next_item("alice", QueueFilter(pipeline_statuses=("accepted",)))
    assert accepted.pipeline_status == "accepted"
    assert service.list_items(QueueFilter(levels=("scenario",)), limit=100)[0].key.level == "scenario"
    chairs = service.list_items(QueueFilter(categories=("chair",)), limit=100)
    assert chairs and all(i.object_name == "chair" for i in chairs)
    reserved = [i.id for i in service.list_items(QueueFilter(levels=("scene",)), limit=100)]
    with pytest.raises(ReviewError):
        service.assign("alice", reserved, "bob")
    assert service.assign("root", reserved, "bob") == len(reserved)
    assert service.next_item("alice", QueueFilter(levels=("scene",))) is None
    mine = service.next_item("bob", QueueFilter(assignee="bob"))
    assert mine.id in reserved and mine.assignee == "bob"


def test_users_roles_and_login(url: str, tmp_path: Path) -> None:
    service = ReviewService(url)
    service.add_user("alice", PASSWORD, "reviewer")
    with pytest.raises(ReviewError):
        service.add_user("alice", PASSWORD)
    with pytest.raises(ReviewError):
        service.add_user("bob", "short")
    with pytest.raises(ReviewError):
        service.add_user("bob", PASSWORD, "superuser")
    user = service.login("alice", PASSWORD)
    assert user is not None and user.role == "reviewer"
    assert service.login("alice", "wrong password") is None
    assert service.login("nobody", PASSWORD) is None
    assert [u.username for u in service.list_users()] == ["alice"]
    with pytest.raises(ReviewError) as unknown:
        service.next_item("nobody")
    assert unknown.value.code == "not_found"


def test_bad_requests_are_refused_with_the_reason(url: str, tmp_path: Path) -> None:
    service = service_with_users(url, tmp_path, "alice")
    item = service.next_item("alice")
    with pytest.raises(ReviewError, match="reject reason"):
        service.reject("alice", item.id, item.head_revision, "meh", key())
    with pytest.raises(ReviewError, match="does not change"):
        service.edit_and_approve("alice", item.id, item.head_revision, item.text, key())
    with pytest.raises(ReviewError, match="question"):
        service.edit_and_approve("alice", item.id, item.head_revision, Edit("x", question="why?"), key())
    with pytest.raises(ReviewError) as missing:
        service.approve("alice", 10**6, 1, key())
    assert missing.value.code == "not_found"
    assert service.get_item(item.id).decisions == []  # nothing half-applied


def test_upcoming_items_are_the_ones_the_next_claims_lease(url: str, tmp_path: Path) -> None:
    """The app prefetches `upcoming`: it must skip what the queue would skip (items the user already
    voted on under double review, items others hold), or the prefetch builds the wrong items."""
    service = service_with_users(url, tmp_path, "alice", "bob", double_review_rate=1.0)
    held_by_bob = service.next_item("bob")
    voted = set()
    for _ in range(3):  # alice's approvals stay open, waiting for a second vote
        item = service.next_item("alice")
        service.approve("alice", item.id, item.head_revision, key())
        voted.add(item.id)
    head = [i.id for i in service.list_items(limit=10)]
    assert voted & set(head[:4]), "the test needs voted items at the head of the plain list"
    predicted = [i.id for i in service.upcoming("alice", limit=3)]
    assert not (set(predicted) & voted) and held_by_bob.id not in predicted
    claimed = []
    for _ in range(3):
        item = service.next_item("alice")
        claimed.append(item.id)
        service.skip("alice", item.id, key())
    assert claimed == predicted
