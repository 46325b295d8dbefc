"""The app's logic without a browser: HTML escaping and claim marks, point budgets and figure payloads,
the review flow (decisions, drafts, undo, conflicts), progress numbers and role checks."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
from test_app_data import annotated_demo, fresh_db

from app import stats as dataset_stats
from app import workflow
from app.access import AccessDenied, ensure_local_user, require_role, resolve_user
from app.progress import (
    DecisionRow,
    acceptance_rate,
    done_today,
    queue_by_status,
    votes_per_day,
)
from app.scene_view import MAX_POINTS, SceneView, ids_to_colors, palette_encode, scene_figure
from app.text import caption_html, claim_spans, claims_table_html, conflict_html, other_levels_html
from core.scene.scannet import load_scene
from review import Edit, ReviewService, Role


@pytest.fixture(scope="module")
def demo_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return annotated_demo(synth_root, tmp_path_factory.mktemp("app"))


@pytest.fixture()
def service(demo_root: Path, tmp_path: Path):
    svc = ReviewService(fresh_db(demo_root, tmp_path / "review.db"))
    yield svc
    svc.close()


# text --------------------------------------------------------------------------------------------------


def test_caption_with_markup_is_escaped() -> None:
    out = caption_html('A <script>alert("x")</script> chair & <b>table</b>', [])
    assert "<script>" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out and "&amp;" in out


def test_claims_are_marked_by_verdict() -> None:
    caption = "A gray door. It is next to the box and next to the bed."
    claims = [
        {"text": "gray", "verdict": "supported"},
        {"text": "next to", "verdict": "contradicted"},
        {"text": "next to", "verdict": "unverifiable"},
        {"text": "absent words", "verdict": "supported"},
    ]
    spans = claim_spans(caption, claims)
    assert [(caption[s:e], v) for s, e, v in spans] == [
        ("gray", "supported"),
        ("next to", "contradicted"),
        ("next to", "unverifiable"),
    ]
    out = caption_html(caption, claims)
    assert out.count("<mark") == 3 and 'class="claim-bad"' in out and 'class="claim-unk"' in out


def test_claim_text_with_markup_is_escaped() -> None:
    out = caption_html("<i>x</i> y", [{"text": "<i>x</i>", "verdict": "supported", "kind": "color"}])
    assert "<i>" not in out
    assert "<i>" not in claims_table_html([{"text": "<i>x</i>", "verdict": "supported", "kind": "<k>"}])
    assert "<u>" not in other_levels_html([("frame <u>", "text <u>")])


# 3D views ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_view(synth_root: Path) -> SceneView:
    return SceneView(load_scene(synth_root, "scene0000_00", with_frames=False))


def test_view_keeps_object_at_full_resolution_under_budget(scene_view: SceneView) -> None:
    scene = scene_view.scene
    assert scene.mesh.num_vertices > MAX_POINTS
    object_id = max(scene.instances[2:], key=lambda i: len(i.vertex_indices)).object_id
    selection = scene_view.select(object_id)
    full = np.flatnonzero(scene.vertex_instance == object_id)
    assert selection.total <= MAX_POINTS
    np.testing.assert_array_equal(np.sort(selection.object_indices), full)
    assert not np.isin(selection.background_indices, full).any()
    assert len(selection.background_indices) > 10_000


def test_scene_level_view_has_no_object(scene_view: SceneView) -> None:
    selection = scene_view.select(None)
    assert len(selection.object_indices) == 0 and 0 < selection.total <= MAX_POINTS


def test_figure_payload_is_compact_and_keeps_camera(scene_view: SceneView) -> None:
    object_id = scene_view.scene.instances[5].object_id
    figure = scene_figure(scene_view, object_id, "rgb")
    payload = pio.to_json(figure)
    assert len(payload) < 2_000_000
    background, obj = figure.data[0], figure.data[1]
    assert background.hoverinfo == "skip" and obj.hoverinfo != "skip"
    assert np.asarray(background.x).dtype == np.float32
    recoloured = scene_figure(scene_view, object_id, "instances")
    assert figure.layout.uirevision == recoloured.layout.uirevision == scene_view.scene.scene_id


@pytest.mark.parametrize("layer", ["rgb", "instances", "semantic", "superpoints"])
def test_every_layer_colours_every_vertex(scene_view: SceneView, layer: str) -> None:
    colors = scene_view.layer_colors(layer)
    assert colors.shape == (scene_view.scene.mesh.num_vertices, 3) and colors.dtype == np.uint8


def test_palette_encoding_round_trips_quantised_colours() -> None:
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, size=(1000, 3), dtype=np.uint8)
    index, scale = palette_encode(colors)
    assert len(index) == 1000 and index.max() == len(scale) - 1
    first = scale[int(index[0])][1]
    r, g, b = (int(v) for v in first[4:-1].split(","))
    assert np.abs(np.array([r, g, b]) - colors[0].astype(int)).max() <= 4
    assert ids_to_colors(np.array([-1]))[0].tolist() == [200, 200, 200]


# the review flow ----------------------------------------------------------------------------------------


def test_decisions_move_to_the_next_item_and_are_stored(service: ReviewService) -> None:
    first = workflow.open_next(service, "annotator")
    assert first.item is not None and first.shown is not None
    second = workflow.decide(service, "annotator", first.shown, "approve")
    assert second.kind == "ok" and second.item is not None and second.item.id != first.item.id
    edited = Edit(description=second.item.text.description + " It looks new.")
    if second.item.key.level == "scenario":
        edited = Edit(edited.description, edited.description, second.item.text.answer)
    third = workflow.decide(service, "annotator", second.shown, "edit", edited)
    fourth = workflow.decide(service, "annotator", third.shown, "reject", reason="wrong_attribute")
    fifth = workflow.decide(service, "annotator", fourth.shown, "skip")
    assert fifth.item is not None
    actions = [
        d.action.value for i in (first, second, third, fourth) for d in service.get_item(i.item.id).decisions
    ]
    assert actions == ["approve", "edit", "reject", "skip"]
    assert service.get_item(second.item.id).item.text == edited


def test_double_press_replays_instead_of_deciding_twice(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    workflow.decide(service, "annotator", screen.shown, "approve")
    again = workflow.decide(service, "annotator", screen.shown, "approve")
    assert again.kind == "ok"
    assert len(service.get_item(screen.item.id).decisions) == 1


def test_approve_refuses_to_drop_an_edit(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    again = workflow.decide(service, "annotator", screen.shown, "approve", Edit("changed words"))
    assert again.kind == "error" and again.item.id == screen.item.id and again.editor == Edit("changed words")
    assert service.get_item(screen.item.id).decisions == []


def test_unchanged_edit_is_an_approval(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    workflow.decide(service, "annotator", screen.shown, "edit", screen.item.text)
    assert [d.action.value for d in service.get_item(screen.item.id).decisions] == ["approve"]


def test_draft_survives_a_reload_and_the_lease_returns_the_item(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    status = workflow.save_draft(service, "annotator", screen.shown, Edit("my half-done text"))
    assert status.startswith("draft saved")
    reloaded = workflow.open_next(service, "annotator")  # what a page refresh does
    assert reloaded.item.id == screen.item.id
    assert reloaded.editor == Edit("my half-done text") and "restored" in reloaded.draft_note
    after = workflow.decide(service, "annotator", reloaded.shown, "approve")
    assert service.get_item(screen.item.id, "annotator").draft is None and after.item.id != screen.item.id


def test_undo_brings_the_item_back(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    following = workflow.decide(service, "annotator", screen.shown, "reject", reason="hallucination")
    undone = workflow.undo(service, "annotator", following.shown)
    assert undone.kind == "ok" and undone.item.id == screen.item.id
    assert service.get_item(screen.item.id).decisions[0].undone_at is not None
    nothing = workflow.undo(service, "reviewer", None)
    assert nothing.kind == "error"


def test_conflict_shows_both_versions_and_resolves(service: ReviewService) -> None:
    mine = workflow.open_next(service, "annotator")
    item = mine.item
    service.release("annotator", item.id)
    theirs = Edit(description="their version of the caption")
    if item.key.level == "scenario":
        theirs = Edit(theirs.description, theirs.description, item.text.answer)
    service.edit_and_approve("admin", item.id, item.head_revision, theirs, key="admin-edit")
    service.next_item("annotator")  # take the lease back
    screen = workflow.decide(service, "annotator", mine.shown, "edit", Edit("my version"))
    assert screen.conflict is not None and screen.kind == "error"
    page = conflict_html(screen.conflict, "my version")
    assert "their version of the caption" in page and "my version" in page
    kept = workflow.keep_mine(service, "annotator", screen.shown, screen.conflict, Edit("my version"))
    assert kept.shown.base_revision == screen.conflict.head.number
    taken = workflow.take_theirs(service, "annotator", kept.shown)
    assert taken.editor == service.get_item(item.id).item.text


def test_active_seconds_are_capped() -> None:
    shown = workflow.Shown(1, 1, "t", time.time() - 10_000)
    assert shown.active_seconds() == workflow.MAX_ACTIVE_SECONDS


# progress and roles ---------------------------------------------------------------------------------------


def test_progress_numbers(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    screen = workflow.decide(service, "annotator", screen.shown, "approve")
    screen = workflow.decide(service, "annotator", screen.shown, "reject", reason="other")
    workflow.decide(service, "annotator", screen.shown, "skip")
    rows = service.decision_log()
    assert done_today(rows, "annotator") == 2
    assert acceptance_rate(rows, "annotator") == 0.5
    assert acceptance_rate(rows, "reviewer") is None
    queue = queue_by_status(service.stats())
    assert sum(queue.values()) == service.stats().items and queue["pending"] < service.stats().items


def test_votes_per_day_groups_and_skips_undone() -> None:
    day = date(2026, 1, 2)
    rows = [
        DecisionRow(day, "ann", "chair", "object", "approve", False),
        DecisionRow(day, "ann", "chair", "object", "reject", True),
        DecisionRow(day, "bob", "table", "object", "skip", False),
        DecisionRow(day, "bob", "table", "object", "edit", False),
    ]
    assert votes_per_day(rows) == {"ann": {day: 1}, "bob": {day: 1}}
    assert votes_per_day(rows, by="category") == {"chair": {day: 1}, "table": {day: 1}}
    assert done_today(rows, "ann", day) == 1


def test_roles(service: ReviewService) -> None:
    annotator = resolve_user(service, "annotator")
    with pytest.raises(AccessDenied):
        require_role(annotator, Role.ADMIN)
    assert require_role(resolve_user(service, "admin"), Role.REVIEWER).username == "admin"
    with pytest.raises(AccessDenied):
        resolve_user(service, None)
    with pytest.raises(AccessDenied):
        resolve_user(service, "nobody")
    local = ensure_local_user(service, "local")
    assert local.role == Role.ADMIN and ensure_local_user(service, "local").id == local.id


def test_dataset_statistics() -> None:
    records = [
        {"level": "object", "object_name": "chair", "description": "a red chair", "status": "accepted"},
        {"level": "object", "object_name": "chair", "description": "a chair", "status": "flagged"},
        {"level": "frame", "object_name": "table", "description": "one two three four", "status": "accepted"},
    ]
    assert dataset_stats.captions_per_level(records) == {"object": 2, "frame": 1}
    assert dataset_stats.words_per_caption(records) == {"object": [3, 2], "frame": [4]}
    assert dataset_stats.categories(records) == {"chair": 2}
    assert dataset_stats.pipeline_statuses(records) == {"accepted": 1, "flagged": 1}
    docs = [{"objects": [{"verification": {"claims": [{"kind": "color", "verdict": "supported"}]}}]}]
    assert dataset_stats.claim_verdicts(docs) == {"color": {"supported": 1}}


# explorer and dashboard ------------------------------------------------------------------------------------


def test_explorer_helpers(service: ReviewService, demo_root: Path, synth_root: Path) -> None:
    from app.context import AppContext
    from app.dashboard_tab import dataset_figures, progress_figures, read_records
    from app.explorer_tab import TABLE_COLUMNS, caption_rows, object_choices, object_panel, table_filter
    from app.scene_view import object_at

    ctx = AppContext(service, synth_root, demo_root / "densescan")
    choices = object_choices(ctx, "scene0000_00")
    assert choices and all(isinstance(v, int) for _, v in choices)
    items = service.list_items(table_filter("scene0000_00", "object", "all", "all", "all"), limit=500)
    assert items and {i.key.level for i in items} == {"object"}
    rows = caption_rows(items)
    assert len(rows[0]) == len(TABLE_COLUMNS) and rows[0][6] == items[0].text.description
    object_id = int(items[0].key.object_id)
    panel, frames = object_panel(ctx, "scene0000_00", object_id)
    assert "caption" in panel and frames
    bev = ctx.bev("scene0000_00")
    rows_, cols_ = np.nonzero(bev.instance == object_id)
    assert object_at(bev, int(cols_[0]), int(rows_[0])) == object_id
    assert object_at(bev, -1, 0) is None
    docs = [ctx.doc(s) for s in ctx.scene_ids()]
    assert len(dataset_figures(read_records(ctx), docs)) == 5 and len(progress_figures(ctx)) == 3
