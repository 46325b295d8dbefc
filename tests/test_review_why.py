"""Why an item was flagged: reasons recorded by a real pipeline run, imported into the review store,
filtered in SQL (SQLite, and PostgreSQL when REVIEW_TEST_PG_URL is set), shown in the why panel; the
message after each decision outcome; what an empty filter says; the explorer across all scenes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_app_data import annotated_demo
from test_review_data import BACKENDS, database_url

from app import text
from app.context import AppContext
from app.explorer_tab import ALL, TABLE_COLUMNS, category_choices, object_panel, table_filter, table_view
from app.workflow import decide, open_next, show
from core.annotate.document import read_annotation
from core.annotate.facts import pool_colors
from core.annotate.fusion import fuse_views
from core.annotate.records import WHY_FIELDS, scene_records
from core.annotate.verify import FLAG_REASONS, Verdict, flag_reasons
from core.annotate.verify import decide as decide_status
from review import Action, Edit, QueueFilter, ReviewConfig, ReviewError, ReviewService, ReviewStatus
from review.why import MODEL_FAILURE, NO_REASON, NO_REASON_TEXT, reason_label, why_of

SCENES = ("scene0000_00", "scene0001_00")


@pytest.fixture(scope="module")
def demo(sensor_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's output over the session's synthetic scenes with the sensor model on (a real run of
    every stage; sensor noise makes some objects' views disagree, so some captions are flagged)."""
    return annotated_demo(sensor_root, tmp_path_factory.mktemp("app")) / "densescan"


def _records(demo: Path) -> list[dict[str, Any]]:
    return json.loads((demo / "densescan.json").read_text(encoding="utf-8"))


def _annotations(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "densescan.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def _service(url: str, folder: Path, config: ReviewConfig | None = None) -> ReviewService:
    service = ReviewService(url, config or ReviewConfig(double_review_rate=0.0))
    service.import_annotations(folder)
    return service


def _users(service: ReviewService, *names: str, role: str = "annotator") -> None:
    for name in names:
        service.add_user(name, "correct horse battery", role)


# the pipeline records why ------------------------------------------------------------------------------


def _verdict(kind: str, verdict: str) -> Verdict:
    return Verdict(kind, kind, kind, verdict, [])


def test_flag_reasons_name_every_cause_of_a_flag_and_match_the_status() -> None:
    ok = [_verdict("category", "supported"), _verdict("color", "supported")]
    assert flag_reasons(ok, True) == [] and decide_status(ok, True, 4, 4)[0] == "accepted"
    color = [_verdict("category", "supported"), _verdict("color", "contradicted")]
    assert (
        flag_reasons(color, None) == ["color_contradicted"]
        and decide_status(color, None, 4, 4)[0] == "flagged"
    )
    assert flag_reasons(ok, False) == ["views_inconsistent"]
    unverified = [_verdict("relation", "unverifiable")]
    assert flag_reasons(unverified, True) == ["nothing_verified"]
    wrong = [
        _verdict("category", "contradicted"),
        _verdict("size", "contradicted"),
        _verdict("x", "contradicted"),
    ]
    assert flag_reasons(wrong, False) == [
        "category_contradicted", "size_contradicted", "x_contradicted", "views_inconsistent",
        "nothing_verified",
    ]  # fmt: skip
    assert decide_status(wrong, False, 4, 4)[0] == "rejected"
    assert (
        reason_label("x_contradicted") == "a x claim is contradicted"
        and reason_label(NO_REASON) == NO_REASON_TEXT
    )
    # every status but "accepted" has at least one reason, over every combination of two verdicts
    kinds, verdicts = ("category", "color", "relation"), ("supported", "contradicted", "unverifiable")
    for k1 in kinds:
        for v1 in verdicts:
            for v2 in verdicts:
                for consistent in (True, False, None):
                    claims = [_verdict(k1, v1), _verdict("size", v2)]
                    status, _ = decide_status(claims, consistent, 4, 4)
                    assert (status == "accepted") == (flag_reasons(claims, consistent) == [])


def test_fusion_conflicts_read_as_the_views_counts() -> None:
    texts = ["A beige bed."] * 4 + ["A brown bed."] * 4 + ["A beige bed. It is near the pillow."]
    colors = pool_colors([{"beige": 0.6, "brown": 0.4}] * 9)
    fused = fuse_views(texts[:8], "bed", ["bed", "pillow"], colors, 3)
    assert fused.conflicts == ["views disagree on the color: beige in 4 views (kept), brown in 4 views"]
    fused = fuse_views(texts, "bed", ["bed", "pillow"], colors, 3)
    assert fused.conflicts[0].startswith("views disagree on the color: beige in 5 views (kept)")
    assert "'near the pillow' dropped: only 1 view" in fused.conflicts


def test_a_real_run_records_why_each_object_caption_was_flagged(demo: Path) -> None:
    records = _records(demo)
    objects = [r for r in records if r["level"] == "object"]
    assert objects and all(set(WHY_FIELDS) <= r.keys() for r in objects)
    assert not any(set(WHY_FIELDS) & r.keys() for r in records if r["level"] != "object")
    for r in objects:
        assert (r["status"] == "accepted") == (r["flag_reasons"] == []), r
        assert set(r["flag_reasons"]) <= set(FLAG_REASONS)
    flagged = [r for r in objects if r["status"] == "flagged"]
    assert flagged, "the synthetic scenes give the pipeline at least one caption to flag"
    # the records say what the scene documents say: the same reasons, answer and conflicts
    for scene_id in SCENES:
        doc = read_annotation(demo / "scenes" / scene_id / "annotation.json")
        rebuilt = {r.object_id: r for r in scene_records(doc) if r.level == "object"}
        for obj in doc.objects:
            if obj.caption:
                mine, check = rebuilt[str(obj.object_id)], obj.verification
                assert check is not None and obj.fusion is not None
                assert mine.consistency_answer == check.consistency_answer
                assert mine.fusion_conflicts == obj.fusion.conflicts and mine.claims == check.claims
                assert ("views_inconsistent" in (mine.flag_reasons or [])) == (check.consistent is False)


# the store filters by it --------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _python_filter(items: list[Any], code: str) -> set[int]:
    if code == NO_REASON:
        return {i.id for i in items if i.pipeline_status != "accepted" and not why_of(i).recorded}
    return {i.id for i in items if code in why_of(i).reasons}


def _reasons_everywhere(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The real run's records with every reason in use: object captions take turns carrying each code (as
    a run of a weaker captioner would), and one old-format flagged record carries none of the fields."""
    objects = [r for r in records if r["level"] == "object" and r["status"] == "accepted"]
    codes = list(FLAG_REASONS)
    for n, record in enumerate(objects[: 2 * len(codes)]):
        record["status"] = "rejected" if n % 2 else "flagged"
        record["flag_reasons"] = [codes[n % len(codes)], codes[(n + 1) % len(codes)]]
    old = objects[2 * len(codes)]
    old["status"] = "flagged"
    for name in WHY_FIELDS:
        del old[name]
    return records


def test_the_queue_filters_by_reason_exactly_as_recorded(demo: Path, tmp_path: Path, backend: str) -> None:
    records = _reasons_everywhere(_records(demo))
    service = _service(database_url(backend, tmp_path), _annotations(tmp_path / "ann", records))
    try:
        items = service.list_items(limit=10_000)
        assert len(items) == len(records)
        for code in [*FLAG_REASONS, NO_REASON]:
            found = {i.id for i in service.list_items(QueueFilter(flag_reasons=(code,)), limit=10_000)}
            assert found and found == _python_filter(items, code), code
        both = service.list_items(QueueFilter(flag_reasons=("size_contradicted", NO_REASON)), limit=10_000)
        assert {i.id for i in both} == _python_filter(items, "size_contradicted") | _python_filter(
            items, NO_REASON
        )
        # a code matches whole: no prefix, no `_` wildcard, nothing in captions or claims
        for near in ("color", "contradicted", "color_contradicte", "colorXcontradicted", "flag_reasons"):
            assert service.list_items(QueueFilter(flag_reasons=(near,)), limit=10_000) == [], near
        with pytest.raises(ReviewError, match="flag reason"):
            service.list_items(QueueFilter(flag_reasons=('x" OR 1=1 --',)))
        # the filter combines with the others, and with the claim of the next item
        _users(service, "ann")
        leveled = QueueFilter(levels=("frame",), flag_reasons=("views_inconsistent",))
        assert service.list_items(leveled) == [] and service.next_item("ann", leveled) is None
        wanted = QueueFilter(scene_ids=(SCENES[0],), flag_reasons=("color_contradicted",))
        expected = {i.id for i in service.list_items(wanted, limit=10_000)}
        got = set()
        while (item := service.next_item("ann", wanted)) is not None:
            assert item.id not in got and "color_contradicted" in why_of(item).reasons
            got.add(item.id)
            service.skip("ann", item.id, f"skip-{item.id}")
        assert got == expected and expected
    finally:
        service.close()


def test_old_annotation_files_read_as_no_reason_recorded(demo: Path, tmp_path: Path) -> None:
    records = _records(demo)
    for record in records:
        for name in WHY_FIELDS:
            record.pop(name, None)
    service = _service(f"sqlite:///{tmp_path / 'old.db'}", _annotations(tmp_path / "old", records))
    try:
        flagged = service.list_items(QueueFilter(pipeline_statuses=("flagged", "rejected")), limit=10_000)
        assert flagged
        unrecorded = service.list_items(QueueFilter(flag_reasons=(NO_REASON,)), limit=10_000)
        assert {i.id for i in unrecorded} == {i.id for i in flagged}
        for code in FLAG_REASONS:
            assert service.list_items(QueueFilter(flag_reasons=(code,))) == []
        why = why_of(flagged[0])
        assert not why.recorded and why.reason_labels == [NO_REASON_TEXT]
        page = text.why_html(why)
        assert NO_REASON_TEXT in page and 'data-status="unrecorded"' in page and "Consistency" not in page
        # the scene document, where the app has it, still gives the evidence, never a guessed reason
        entry = AppContext(service, None, demo).object_entry(
            flagged[0].key.scene_id, int(flagged[0].key.object_id)
        )
        assert entry is not None
        from_doc = why_of(flagged[0], entry)
        assert not from_doc.recorded and from_doc.reason_labels == [NO_REASON_TEXT]
        assert entry.verification is not None and entry.fusion is not None
        assert from_doc.consistency_answer == entry.verification.consistency_answer.strip()
        assert from_doc.conflicts == tuple(entry.fusion.conflicts) and from_doc.conflicts
        # re-importing the new run's file brings the reasons in
        service.import_annotations(demo)
        assert service.list_items(QueueFilter(flag_reasons=(NO_REASON,))) == []
    finally:
        service.close()


# the why panel -----------------------------------------------------------------------------------------


def test_the_why_panel_shows_the_answer_the_conflicts_and_the_claims(demo: Path, tmp_path: Path) -> None:
    service = _service(f"sqlite:///{tmp_path / 'w.db'}", demo)
    try:
        flagged = service.list_items(QueueFilter(pipeline_statuses=("flagged",)), limit=10_000)
        record = {(r["scene_id"], r["level"], r["object_id"], r["ann_id"]): r for r in _records(demo)}
        for item in flagged:
            why = why_of(item)
            raw = record[(item.key.scene_id, item.key.level, item.key.object_id, item.key.ann_id)]
            page = text.why_html(why)
            assert f"Why flagged:</b> {'; '.join(reason_label(r) for r in raw['flag_reasons'])}" in page
            assert text.escape(raw["consistency_answer"]) in page and "Consistency check" in page
            for conflict in raw["fusion_conflicts"]:
                assert text.escape(conflict) in page
            for claim in raw["claims"]:
                if claim["verdict"] in ("contradicted", "unverifiable"):
                    assert f">{text.escape(claim['text'])}</li>" in page
        inconsistent = [i for i in flagged if "views_inconsistent" in why_of(i).reasons]
        assert inconsistent and re.search(r" in \d+ views? \(kept\)", text.why_html(why_of(inconsistent[0])))
        accepted = service.list_items(QueueFilter(pipeline_statuses=("accepted",), levels=("object",)))[0]
        assert "found nothing to flag" in text.why_html(why_of(accepted))
        frame = service.list_items(QueueFilter(levels=("frame",)))[0]
        assert 'data-status="unchecked"' in text.why_html(why_of(frame))
    finally:
        service.close()


def test_the_why_panel_escapes_what_the_model_wrote(demo: Path) -> None:
    from review.why import Why

    evil = "<script>window.__x = 1</script>"
    page = text.why_html(Why("flagged", True, True, ("views_inconsistent",), evil, (evil,), (evil,), ()))
    assert "<script>" not in page and page.count("&lt;script&gt;") == 3


# what a decision did --------------------------------------------------------------------------------------


def test_each_outcome_has_its_own_message(demo: Path, tmp_path: Path) -> None:
    """Every outcome the service can return, produced for real, and the sentence the user reads."""
    double = _service(f"sqlite:///{tmp_path / 'd.db'}", demo, ReviewConfig(double_review_rate=1.0))
    single = _service(f"sqlite:///{tmp_path / 's.db'}", demo, ReviewConfig(double_review_rate=0.0))
    try:
        for service in (double, single):
            _users(service, "a", "b")
            _users(service, "rev", role="reviewer")
        said: dict[tuple[str, str], str] = {}

        def act(
            service: ReviewService, user: str, action: Action, item_id: int | None = None, **kw: Any
        ) -> int:
            """One decision through the app's flow on the user's next item (or on `item_id`)."""
            item = service.next_item(user) if item_id is None else service.get_item(item_id).item
            assert item is not None
            shown = show(item, service, user).shown
            assert shown is not None
            edit = Edit(item.text.description + " It looks new.") if action == Action.EDIT else None
            screen = decide(service, user, shown, action, edit, kw.get("reason"))
            status = service.get_item(item.id).item.review_status
            said[(action.value, status.value)] = screen.message
            assert screen.kind == "ok" and screen.message.startswith(
                text.decision_message(action, status, item.id)
            ), screen.message
            return item.id

        act(single, "a", Action.APPROVE)
        edited = act(single, "a", Action.EDIT)
        act(single, "b", Action.APPROVE, edited)  # b approves a's edit
        act(single, "a", Action.REJECT, reason="hallucination")
        act(single, "a", Action.SKIP)
        approved_once = act(double, "a", Action.APPROVE)
        act(double, "b", Action.REJECT, approved_once, reason="wrong_object")
        act(double, "rev", Action.APPROVE, approved_once)  # a reviewer settles the dispute
    finally:
        double.close()
        single.close()
    assert set(said) == {
        ("approve", "approved"), ("edit", "needs_approval"), ("reject", "rejected"), ("skip", "pending"),
        ("approve", "in_review"), ("reject", "disputed"),
    }  # fmt: skip
    assert (
        said[("edit", "needs_approval")]
        == f"Edited item {edited}; waits for a second approval by someone else."
    )
    assert said[("approve", "in_review")].startswith(f"Approved item {approved_once}; sent to double review")
    assert said[("reject", "disputed")].startswith(f"Rejected item {approved_once}; the two reviews disagree")
    assert said[("approve", "approved")] in (f"Approved item {edited}.", f"Approved item {approved_once}.")


def test_decision_message_wording_per_outcome() -> None:
    cases = {
        (Action.APPROVE, ReviewStatus.APPROVED): "Approved item 7.",
        (
            Action.APPROVE,
            ReviewStatus.IN_REVIEW,
        ): "Approved item 7; sent to double review: a second person decides too.",
        (
            Action.EDIT,
            ReviewStatus.NEEDS_APPROVAL,
        ): "Edited item 7; waits for a second approval by someone else.",
        (Action.EDIT, ReviewStatus.APPROVED): "Edited and approved item 7.",
        (
            Action.EDIT,
            ReviewStatus.IN_REVIEW,
        ): "Edited item 7; sent to double review: a second person decides too.",
        (Action.REJECT, ReviewStatus.REJECTED): "Rejected item 7.",
        (Action.REJECT, ReviewStatus.DISPUTED): (
            "Rejected item 7; the two reviews disagree: a reviewer or an admin settles it."
        ),
        (Action.APPROVE, ReviewStatus.REJECTED): "Approved item 7; it is rejected.",
        (Action.SKIP, ReviewStatus.PENDING): "Skipped item 7; it goes back to the queue for someone else.",
        (Action.SKIP, ReviewStatus.IN_REVIEW): "Skipped item 7; it stays in double review for someone else.",
    }
    for (action, status), expected in cases.items():
        assert text.decision_message(action, status, 7) == expected
    assert text.decision_message("approve", "approved", 7, replayed=True) == "Already saved: Approved item 7."
    assert len({text.decision_message(a, s, 7) for a in Action for s in ReviewStatus}) == len(Action) * len(
        ReviewStatus
    )


# empty filters and the explorer ---------------------------------------------------------------------------


def test_empty_filters_say_which_filter_left_nothing(demo: Path, sensor_root: Path, tmp_path: Path) -> None:
    service = _service(f"sqlite:///{tmp_path / 'e.db'}", demo)
    ctx = AppContext(service, sensor_root, demo)
    try:
        _users(service, "ann")
        rows, note = table_view(ctx, table_filter(SCENES[0], ALL, ALL, "rejected", ALL))
        assert rows == [] and "no rejected items in this scene" in note
        rows, note = table_view(ctx, table_filter(SCENES[0], "frame", "flagged", ALL, ALL))
        assert rows == [] and "no flagged items at level frame in this scene" in note
        rows, note = table_view(ctx, table_filter(ALL, "frame", "flagged", ALL, ALL))
        assert rows == [] and note.endswith(">no flagged items at level frame</p>")
        rows, note = table_view(ctx, table_filter(ALL, ALL, ALL, ALL, ALL, "color_contradicted"))
        assert rows == [] and "no items flagged because a color claim is contradicted" in note
        assert text.empty_filter_text(QueueFilter(flag_reasons=(NO_REASON,))) == (
            "no items flagged with no reason recorded"
        )
        filters = QueueFilter(levels=("frame",), pipeline_statuses=("flagged",))
        screen = open_next(service, "ann", filters)
        assert screen.item is None and screen.message == (
            "Nothing left for you to review: no flagged items at level frame."
        )
        assert open_next(service, "ann", QueueFilter(scene_ids=("nowhere",))).message == (
            "Nothing left for you to review: no items in scene nowhere."
        )
    finally:
        service.close()


def test_the_explorer_lists_every_scene(demo: Path, sensor_root: Path, tmp_path: Path) -> None:
    service = _service(f"sqlite:///{tmp_path / 'x.db'}", demo)
    ctx = AppContext(service, sensor_root, demo)
    try:
        rows, note = table_view(ctx, table_filter(ALL, ALL, ALL, ALL, ALL))
        scene_at = TABLE_COLUMNS.index("scene")
        assert {r[scene_at] for r in rows} == set(SCENES) and len(rows) == len(_records(demo))
        assert f"{len(rows)} items" in note
        one, _ = table_view(ctx, table_filter(SCENES[1], ALL, ALL, ALL, ALL))
        assert one and {r[scene_at] for r in one} == {SCENES[1]}
        flagged, _ = table_view(ctx, table_filter(ALL, ALL, ALL, ALL, ALL, "views_inconsistent"))
        assert flagged and all(r[TABLE_COLUMNS.index("pipeline")] == "flagged" for r in flagged)
        names = dict(category_choices(ctx, ALL))
        both = {r[TABLE_COLUMNS.index("category")] for r in rows}
        assert set(names.values()) == {ALL, *both}
        # a category with a space in its label filters by the stored name (underscores)
        spaced = [v for v in names.values() if "_" in v]
        assert spaced  # coffee_table: the old explorer offered "coffee table", which matched nothing
        for value in spaced:
            some, _ = table_view(ctx, table_filter(ALL, ALL, ALL, ALL, value))
            assert some, value
        panel, frames = object_panel(ctx, ALL, None)
        assert "pick a scene" in panel and frames == []
        flagged_item = service.list_items(QueueFilter(pipeline_statuses=("flagged",)))[0]
        panel, _ = object_panel(ctx, flagged_item.key.scene_id, int(flagged_item.key.object_id))
        assert "Why flagged:</b> " in panel and "Consistency check" in panel
    finally:
        service.close()


def test_reason_choices_cover_every_reason() -> None:
    values = [v for _, v in text.reason_filter_choices()]
    assert values == [text.ALL_REASONS, *FLAG_REASONS, MODEL_FAILURE, NO_REASON]
    assert text.reason_filter(text.ALL_REASONS) == () and text.reason_filter("nothing_verified") == (
        "nothing_verified",
    )
