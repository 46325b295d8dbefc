"""The app's logic without a browser: HTML escaping and claim marks, point budgets and figure payloads,
the review flow (decisions, drafts, undo, conflicts), progress numbers and role checks."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from test_app_data import annotated_demo, fresh_db

from app import workflow
from app.access import AccessDenied, ensure_local_user, require_role, resolve_user
from app.review_tab import SKIP
from app.scene_view import (
    MAX_POINTS,
    REVIEW_POINTS,
    Framing,
    SceneView,
    cut_away,
    figure_spec,
    frame_object,
    ids_to_colors,
    palette_encode,
    scene_figure,
    to_scene_coords,
)
from app.text import caption_html, claim_spans, claims_table_html, conflict_html, other_levels_html
from core.scene.scannet import load_scene
from review import Edit, QueueFilter, ReviewError, ReviewService, Role
from review.policy import MAX_ACTIVE_SECONDS


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
    table = claims_table_html(
        [
            {"kind": "relation", "text": "next to the lamp", "anchors": ["lamp"], "verdict": "supported"},
            {"kind": "relation", "text": "near the chair", "verdict": "unverifiable", "note": "ambig <3>"},
        ]
    )
    assert "next to the lamp</td>" in table  # an anchor the claim already names is not repeated
    assert '<td class="muted">ambig &lt;3&gt;</td>' in table  # the checker's note, escaped
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
    assert len(figure.plot) < 2_000_000
    spec = json.loads(figure.plot)
    points = [t for t in spec["data"] if t["mode"] == "markers"]
    assert points[0]["x"]["dtype"] == "f4" and "bdata" in points[0]["x"]  # typed arrays, not number lists
    label = next(i.label for i in scene_view.scene.instances if i.object_id == object_id)
    names = [t["name"] for t in points]
    assert any(n.startswith(f"{label} · id {object_id}") for n in names)
    assert all(t["hovertemplate"].startswith(t["name"]) for t in points)  # hover names class and id
    recoloured = json.loads(scene_figure(scene_view, object_id, "instances").plot)
    assert spec["layout"]["uirevision"] == recoloured["layout"]["uirevision"] == scene_view.scene.scene_id


def _marker_traces(spec: dict) -> list[dict]:
    return [t for t in spec["data"] if t["mode"] == "markers"]


def _decode(array: dict) -> np.ndarray:
    dtype = {"f4": np.float32, "u2": np.uint16}[array["dtype"]]
    return np.frombuffer(base64.b64decode(array["bdata"]), dtype=dtype)


def test_review_view_is_light_and_frames_the_object_from_inside_the_room(scene_view: SceneView) -> None:
    scene = scene_view.scene
    chair = next(
        i for i in scene.instances if i.label not in ("wall", "floor") and len(i.vertex_indices) > 200
    )
    spec = figure_spec(
        scene_view, chair.object_id, "rgb", "t", budget=REVIEW_POINTS, framed=True, meta={"item": 7}
    )
    total = sum(len(_decode(t["x"])) for t in _marker_traces(spec))
    assert total <= REVIEW_POINTS
    layout = spec["layout"]
    assert layout["meta"] == {"item": 7}
    buttons = [b["label"] for b in layout["updatemenus"][0]["buttons"]]
    assert buttons == ["object", "top", "reset"]
    camera = layout["scene"]["camera"]
    lo, hi = scene_view.bounds
    box = scene_view.boxes[chair.object_id]
    # the camera looks at the object's centre and stands inside the room
    assert camera["center"] == to_scene_coords(scene_view, box[:3])
    framing = frame_object(scene_view, chair.object_id)
    assert framing is not None and np.all(framing.eye > lo) and np.all(framing.eye < hi)
    assert camera["eye"] == to_scene_coords(scene_view, framing.eye)
    # scene coordinates: the box's corners map onto +-aspect/2 (with the fixed axis ranges)
    aspect = layout["scene"]["aspectratio"]
    corner = to_scene_coords(scene_view, hi)
    assert corner["x"] == pytest.approx(aspect["x"] / 2, abs=1e-3)
    assert layout["scene"]["xaxis"]["range"] == pytest.approx([lo[0], hi[0]])


def test_cut_away_drops_what_stands_between_camera_and_object() -> None:
    framing = Framing(eye=np.array([0.0, 0.0, 1.5]), target=np.array([4.0, 0.0, 0.5]))
    box = np.array([4.0, 0.0, 0.5, 0.6, 0.6, 1.0])
    points = np.array(
        [
            [2.0, 0.0, 1.0],  # on the line of sight: cut
            [2.0, 2.0, 1.0],  # beside it: kept
            [4.0, 0.0, 0.5],  # the object: kept
            [6.0, 0.0, 0.0],  # behind the object: kept
            [-1.0, 0.0, 1.75],  # behind the camera: kept
        ]
    )
    assert cut_away(points, framing, box).tolist() == [True, False, False, False, False]


@pytest.mark.parametrize(("layer", "expect"), [("instances", "id"), ("semantic", "category")])
def test_instance_and_semantic_layers_have_a_legend(scene_view: SceneView, layer: str, expect: str) -> None:
    spec = json.loads(scene_figure(scene_view, None, layer).plot)
    assert spec["layout"]["showlegend"] is True
    names = {t["name"] for t in _marker_traces(spec)}
    categories = {i.label for i in scene_view.scene.instances}
    if expect == "category":
        assert names <= categories | {"unannotated"} and len(names) >= len(categories) - 1
    else:
        assert all(" · id " in n or n == "unannotated" for n in names)
    assert all(t["showlegend"] for t in _marker_traces(spec))
    assert json.loads(scene_figure(scene_view, None, "rgb").plot)["layout"]["showlegend"] is False


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
    assert shown.active_seconds() == MAX_ACTIVE_SECONDS  # the cap is review.policy's rule


def test_a_decision_must_name_the_item_and_revision_on_screen(service: ReviewService) -> None:
    screen = workflow.open_next(service, "annotator")
    shown = screen.shown
    assert workflow.screen_refusal(shown, f"{shown.item_id}:{shown.base_revision}") is None
    assert "still loading" in workflow.screen_refusal(shown, "")
    other = workflow.screen_refusal(shown, f"{shown.item_id + 1}:{shown.base_revision}")
    assert f"showed item {shown.item_id + 1}" in other and f"your item is {shown.item_id}" in other
    assert "revision" in workflow.screen_refusal(shown, f"{shown.item_id}:{shown.base_revision + 1}")
    assert "unreadable" in workflow.screen_refusal(shown, "<b>")
    assert "no item on screen" in workflow.screen_refusal(None, "3:1")


def test_the_service_refuses_a_decision_outside_the_users_lease(service: ReviewService) -> None:
    held = workflow.open_next(service, "annotator")
    other = next(i for i in service.list_items(limit=20) if i.id != held.item.id and i.leased_by is None)
    with pytest.raises(ReviewError, match=f"item {other.id} is not your current item"):
        service.approve("annotator", other.id, other.head_revision, "k1", require_lease=True)
    with pytest.raises(ReviewError, match="not your current item"):
        service.skip("annotator", other.id, "k2", require_lease=True)
    assert service.get_item(other.id).decisions == []
    # the lease moved to someone else: the annotator's screen is stale, the decision is refused
    service.release("annotator", held.item.id)
    taken = service.next_item("reviewer")
    assert taken is not None and taken.id == held.item.id
    refused = workflow.decide(service, "annotator", held.shown, "approve", require_lease=True)
    assert refused.kind == "error" and "reviewer holds it now" in refused.message
    assert service.get_item(held.item.id).decisions == []
    # without the requirement (an admin's direct call) the old rule stays: someone else's live lease
    with pytest.raises(ReviewError, match="reviewer holds this item"):
        service.approve("annotator", held.item.id, held.item.head_revision, "k3")


def test_every_panel_of_a_step_belongs_to_the_same_item(
    service: ReviewService, demo_root: Path, synth_root: Path
) -> None:
    from app.context import AppContext
    from app.item_media import MediaCache
    from app.review_tab import PANEL_NAMES, render_screen

    ctx = AppContext(service, synth_root, demo_root / "densescan")
    media = MediaCache(ctx)
    screen = workflow.open_next(service, "annotator")
    panels = render_screen(ctx, media, screen, "annotator")
    item = screen.item
    values = {name: getattr(panels, name) for name in PANEL_NAMES}
    marked = [n for n, v in values.items() if isinstance(v, str) and "data-review-panel" in v]
    assert set(marked) >= {"header", "caption", "claims", "others", "plot", "crops", "highlights"}
    for name in marked:
        assert f'data-item-id="{item.id}"' in getattr(panels, name), name
    assert f'data-revision="{item.head_revision}"' in panels.header
    figure = json.loads(html.unescape(re.search(r'data-json="([^"]*)"', panels.plot).group(1)))
    assert figure["layout"]["meta"]["item"] == item.id
    assert figure["layout"]["title"]["text"].endswith(f"item {item.id}")
    # a step that stays on the same item sends no evidence again (the page shows it already)
    again = render_screen(ctx, media, screen, "annotator", before=screen.shown)
    assert again.plot is SKIP and again.crops is SKIP and again.highlights is SKIP
    assert again.header != panels.header  # a fresh render mark: the page knows the answer came


def test_next_items_are_prefetched_while_the_current_one_is_read(
    service: ReviewService, demo_root: Path, synth_root: Path
) -> None:
    from app.context import AppContext
    from app.item_media import MediaCache

    ctx = AppContext(service, synth_root, demo_root / "densescan")
    media = MediaCache(ctx)
    screen = workflow.open_next(service, "annotator")
    media.prefetch_next(service, "annotator", QueueFilter(), screen.item.id)
    media.wait_idle(timeout=120)
    following = workflow.decide(service, "annotator", screen.shown, "approve")
    assert following.item is not None and media.cached(following.item.id)
    started = time.perf_counter()
    built = media.get(following.item)
    assert time.perf_counter() - started < 0.05 and built.item_id == following.item.id


def test_thumbnails_keep_the_whole_image_and_outline_the_object(tmp_path: Path) -> None:
    from PIL import Image

    from app.item_media import OUTLINE_RGB, Picture, gallery_html, thumbnail

    path = tmp_path / "frame.jpg"
    Image.new("RGB", (1296, 968), (90, 90, 90)).save(path)
    box = (400, 300, 600, 500)
    uri = thumbnail(path, path.stat().st_mtime, 320, box)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    assert image.size == (320, 239)  # shrunk as a whole: nothing cut off
    scale = 320 / 1296
    x0, y0 = round(box[0] * scale), round(box[1] * scale)
    edge = np.asarray(image)[y0 + 20, x0 - 2 : x0 + 1].astype(int)  # the outline's left side, 3 px wide
    assert np.abs(edge - np.array(OUTLINE_RGB)).max(axis=1).min() < 60
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    pictures = [Picture(path, 'frame "1" <b>', box), Picture(broken, "frame 2")]
    page = gallery_html(7, "highlights", "highlighted frames", pictures, 320)
    assert 'data-item-id="7"' in page and "<b>" not in page and "/gradio_api/file=" in page
    assert page.count("<img") == 1 and "not shown (unreadable): broken.jpg" in page


# progress and roles ---------------------------------------------------------------------------------------


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
    caption_at = TABLE_COLUMNS.index("caption")
    assert len(rows[0]) == len(TABLE_COLUMNS) and rows[0][caption_at] == items[0].text.description
    object_id = int(items[0].key.object_id)
    panel, frames = object_panel(ctx, "scene0000_00", object_id)
    assert "caption" in panel and frames
    bev = ctx.bev("scene0000_00")
    rows_, cols_ = np.nonzero(bev.instance == object_id)
    assert object_at(bev, int(cols_[0]), int(rows_[0])) == object_id
    assert object_at(bev, -1, 0) is None
    docs = [ctx.doc(s) for s in ctx.scene_ids()]
    assert len(dataset_figures(read_records(ctx), docs)) == 5 and len(progress_figures(ctx)) == 4
