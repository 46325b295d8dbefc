"""Undo and plain approvals in the corners a team hits on day one: an undone skip never hands an annotator
a disputed (or already decided) item, and whitespace around a scenario's text never blocks an approval.

Runs on SQLite, and on PostgreSQL (in a private schema) when `REVIEW_TEST_PG_URL` is set.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_schema import PG_URL, private_schema
from test_review_data import add_users, make_records, write_annotations

from app import workflow
from review import Edit, QueueFilter, ReviewConfig, ReviewError, ReviewService, ReviewStatus
from review.policy import same_text, vote_refusal

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run")),
]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'review.db'}"
        return
    with private_schema("undo") as schema_url:
        yield schema_url


def key() -> str:
    return uuid.uuid4().hex


def team(url: str, tmp_path: Path, records: list[dict] | None = None, **config: object) -> ReviewService:
    """Annotators a, b, c and reviewer d over the generated records."""
    service = ReviewService(url, ReviewConfig(**{"double_review_rate": 0.0, **config}))
    service.import_annotations(write_annotations(tmp_path / "annotations", records or make_records()))
    add_users(service, ["a", "b", "c"])
    add_users(service, ["d"], role="reviewer")
    return service


def test_undone_skip_does_not_hand_an_annotator_a_disputed_item(url: str, tmp_path: Path) -> None:
    """Double review 1.0: a skips, b approves, c rejects, a undoes the skip."""
    service = team(url, tmp_path, double_review_rate=1.0)
    try:
        item = service.next_item("a")
        service.skip("a", item.id, key())
        assert service.next_item("b").id == item.id
        approved = service.approve("b", item.id, item.head_revision, key())
        assert approved.item.review_status == ReviewStatus.IN_REVIEW
        assert service.next_item("c").id == item.id
        rejected = service.reject("c", item.id, approved.item.head_revision, "hallucination", key())
        assert rejected.item.review_status == ReviewStatus.DISPUTED

        undone = service.undo("a", key())
        assert undone.undone.action.value == "skip" and undone.undone.item_id == item.id
        assert undone.item.leased_by is None  # not handed to a, who may not settle it
        assert service.get_item(item.id).item.leased_by is None
        with pytest.raises(ReviewError) as refused:
            service.approve("a", item.id, rejected.item.head_revision, key())
        assert refused.value.code == "forbidden"
        assert service.next_item("a").id != item.id

        # a reviewer settles it as before
        settling = service.next_item("d", QueueFilter(review_statuses=(ReviewStatus.DISPUTED,)))
        assert settling.id == item.id
        final = service.approve("d", item.id, settling.head_revision, key())
        assert final.item.review_status == ReviewStatus.APPROVED
    finally:
        service.close()


def test_the_workspace_moves_on_and_says_why_after_such_an_undo(url: str, tmp_path: Path) -> None:
    service = team(url, tmp_path, double_review_rate=1.0)
    try:
        screen = workflow.open_next(service, "a")
        disputed = screen.item.id
        after_skip = workflow.decide(service, "a", screen.shown, "skip")
        assert after_skip.item.id != disputed
        b = workflow.open_next(service, "b")
        assert b.item.id == disputed
        workflow.decide(service, "b", b.shown, "approve")
        c = workflow.open_next(service, "c")
        assert c.item.id == disputed
        workflow.decide(service, "c", c.shown, "reject", reason="wrong_relation")

        undone = workflow.undo(service, "a", after_skip.shown)
        assert undone.item is not None and undone.item.id != disputed
        assert undone.item.leased_by == "a"  # the next item a may decide, not the disputed one
        assert f"item {disputed}" in undone.message and "disputed" in undone.message
        assert workflow.decide(service, "a", undone.shown, "approve").kind == "ok"
    finally:
        service.close()


def test_a_reviewer_who_undoes_a_skip_gets_the_disputed_item_back(url: str, tmp_path: Path) -> None:
    service = team(url, tmp_path, double_review_rate=1.0)
    try:
        item = service.next_item("d")
        service.skip("d", item.id, key())
        approved = service.approve("b", item.id, service.next_item("b").head_revision, key())
        assert service.next_item("c").id == item.id
        service.reject("c", item.id, approved.item.head_revision, "other", key())
        undone = service.undo("d", key())
        assert undone.item.id == item.id and undone.item.leased_by == "d"
        final = service.approve("d", item.id, undone.item.head_revision, key())
        assert final.item.review_status == ReviewStatus.APPROVED
    finally:
        service.close()


def test_an_undone_skip_of_an_item_decided_since_is_not_leased(url: str, tmp_path: Path) -> None:
    service = team(url, tmp_path)
    try:
        screen = workflow.open_next(service, "a")
        item_id = screen.item.id
        after_skip = workflow.decide(service, "a", screen.shown, "skip")
        b = workflow.open_next(service, "b")
        assert b.item.id == item_id
        workflow.decide(service, "b", b.shown, "approve")
        undone = workflow.undo(service, "a", after_skip.shown)
        assert undone.item.id != item_id and "approved now" in undone.message
        assert service.get_item(item_id).item.leased_by is None
    finally:
        service.close()


# whitespace ------------------------------------------------------------------------------------------------


def _scenario_records(question_suffix: str = "") -> list[dict]:
    """Generated records whose scenario items look like the pipeline's: the caption is the question."""
    records = make_records(scenes=1)
    for record in records:
        if record["level"] == "scenario":
            record["description"] = record["question"]
            record["question"] += question_suffix
    return records


def _editor(item_text: Edit) -> tuple[str, str]:
    """What the workspace's two boxes show for a scenario item: the caption (its question) and the answer."""
    return item_text.description, item_text.answer or ""


def _box_edit(description: str, answer: str) -> Edit:
    """The boxes' values as the workspace sends them for a scenario item (`app.review_tab.editor_of`)."""
    return Edit(description=description, question=description, answer=answer)


def test_a_trailing_newline_in_an_edited_question_does_not_block_the_second_approval(
    url: str, tmp_path: Path
) -> None:
    service = team(url, tmp_path)
    try:
        flt = QueueFilter(levels=("scenario",))
        a = workflow.open_next(service, "a", flt)
        question = "Where would I put my cup down while I sit on the bed?\n"  # Enter typed in the box
        typed = _box_edit(question, "the table\n")
        edited = workflow.decide(service, "a", a.shown, "edit", typed, filters=flt)
        assert edited.kind == "ok", edited.message
        head = service.get_item(a.item.id).item
        assert head.review_status == ReviewStatus.NEEDS_APPROVAL
        assert head.text == Edit(question.strip(), question.strip(), "the table")  # stored without it

        b = workflow.open_next(service, "b", flt)
        assert b.item.id == a.item.id
        approved = workflow.decide(service, "b", b.shown, "approve", _box_edit(*_editor(b.item.text)))
        assert approved.kind == "ok", approved.message
        assert service.get_item(a.item.id).item.review_status == ReviewStatus.APPROVED
    finally:
        service.close()


def test_a_trailing_newline_in_an_imported_question_does_not_block_a_plain_approve(
    url: str, tmp_path: Path
) -> None:
    service = team(url, tmp_path, records=_scenario_records("\n"))
    try:
        flt = QueueFilter(levels=("scenario",))
        a = workflow.open_next(service, "a", flt)
        assert a.item.text.question.endswith("\n")  # as imported
        boxes = _box_edit(*_editor(a.item.text))
        approved = workflow.decide(service, "a", a.shown, "approve", boxes, filters=flt)
        assert approved.kind == "ok", approved.message
        assert service.get_item(a.item.id).item.review_status == ReviewStatus.APPROVED
        # an "edit" that only adds or drops whitespace is a plain approval too
        nxt = approved
        padded = _box_edit(nxt.item.text.description + "  \n", nxt.item.text.answer or "")
        again = workflow.decide(service, "a", nxt.shown, "edit", padded, filters=flt)
        assert again.kind == "ok", again.message
        assert [d.action.value for d in service.get_item(nxt.item.id).decisions] == ["approve"]
    finally:
        service.close()


def test_policy_helpers() -> None:
    assert same_text(Edit("Q?", "Q?\n", "the bed "), Edit("Q?", "Q?", "the bed"))
    assert same_text(Edit("A chair."), Edit("A chair.", "", ""))
    assert not same_text(Edit("A chair."), Edit("A red chair."))
    assert vote_refusal("disputed", "annotator") is not None
    assert vote_refusal("disputed", "reviewer") is None
    assert vote_refusal("approved", "admin") == "the item is approved already"
    assert vote_refusal("needs_approval", "annotator") is None
