"""The scene explorer: a scene's 3D view with switchable layers, its BEV image (click an object), an
object's captions at every level with its best frames and claims, and a table of the scene's captions
(or of every scene's, with the scene "all"), filtered by level, statuses, category and flag reason; an
empty table says which filter left it empty."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app import text as html
from app.context import AppContext
from app.review_tab import TabLoad, acting_user
from app.scene_view import LAYERS, bev_picture, object_at, scene_figure
from review import ItemView, QueueFilter, ReviewStatus
from review.why import why_of

TABLE_COLUMNS = ["scene", "level", "object", "category", "pipeline", "confidence", "review", "caption"]
ALL = "all"
TABLE_LIMIT = 5000  # rows shown at most; the note says when there are more


def object_choices(ctx: AppContext, scene_id: str | None) -> list[tuple[str, int]]:
    loaded = ctx.loaded(scene_id) if scene_id else None
    if loaded is None:
        return []
    return [(f"{o.object_id}: {o.label}", o.object_id) for o in loaded.scene.objects()]


def caption_rows(items: list[ItemView]) -> list[list[Any]]:
    """One table row per item, in TABLE_COLUMNS order (the table escapes its cells)."""
    return [
        [
            i.key.scene_id,
            i.key.level,
            int(i.key.object_id) if i.key.object_id.lstrip("-").isdigit() else i.key.object_id,
            i.object_name,
            i.pipeline_status,
            round(i.confidence, 3),
            str(i.review_status),
            i.text.description if i.key.level != "scenario" else f"{i.text.question} → {i.text.answer}",
        ]
        for i in items
    ]


def table_filter(
    scene_id: str, level: str, pipeline: str, review: str, category: str, reason: str = ALL
) -> QueueFilter:
    """The table's filter; the scene `ALL` lists every scene."""
    return QueueFilter(
        scene_ids=(scene_id,) if scene_id != ALL else (),
        flag_reasons=html.reason_filter(reason),
        levels=(level,) if level != ALL else (),
        pipeline_statuses=(pipeline,) if pipeline != ALL else (),
        review_statuses=(ReviewStatus(review),) if review != ALL else (),
        categories=(category,) if category != ALL else (),
    )


def table_view(ctx: AppContext, f: QueueFilter) -> tuple[list[list[Any]], str]:
    """(rows, note) of the caption table: the note counts the rows, or says which filter left none."""
    items = ctx.service.list_items(f, limit=TABLE_LIMIT + 1)
    this_scene = f.scene_ids[0] if len(f.scene_ids) == 1 else None
    if not items:
        return [], html.empty_html(html.empty_filter_text(f, this_scene))
    shown = items[:TABLE_LIMIT]
    more = f" (the first {TABLE_LIMIT}; narrow the filter for the rest)" if len(items) > TABLE_LIMIT else ""
    return caption_rows(shown), f'<p class="muted table-count">{len(shown)} items{more}</p>'


def category_choices(ctx: AppContext, scene_id: str | None) -> list[tuple[str, str]]:
    """The categories (item object names) of the scene, or of every scene for `ALL`."""
    if not scene_id:
        return [(ALL, ALL)]
    f = QueueFilter(scene_ids=(scene_id,) if scene_id != ALL else ())
    names = sorted({i.object_name for i in ctx.service.list_items(f, limit=100_000)})
    return [(ALL, ALL), *[(n.replace("_", " "), n) for n in names]]


def object_panel(ctx: AppContext, scene_id: str, object_id: int | None) -> tuple[str, list[tuple[str, str]]]:
    """(HTML with the object's captions at every level and its claims, its best frames)."""
    if scene_id == ALL:
        return '<p class="muted">pick a scene to see its 3D view and objects</p>', []
    problem = ctx.scene_error(scene_id)
    if problem is not None and object_id is None:
        return html.message_html(f"the 3D view cannot be shown: {problem}", "error"), []
    if object_id is None:
        return '<p class="muted">pick an object from the list or click it in the BEV image</p>', []
    items = ctx.service.list_items(QueueFilter(scene_ids=(scene_id,)), limit=5000)
    own = [i for i in items if i.key.object_id == str(object_id)]
    parts = []
    for item in own:
        claims = ctx.claims(item)
        parts.append(f"<h4>{html.escape(item.key.level)} · {html.escape(str(item.review_status))}</h4>")
        parts.append(html.caption_html(item.text.description, claims))
        if item.pipeline_status != "accepted":
            parts.append(html.why_html(why_of(item, ctx.object_entry(scene_id, object_id))))
        if claims:
            parts.append(html.claims_table_html(claims))
    if own:
        parts.append("<h4>other levels mentioning it</h4>" + html.other_levels_html(ctx.other_levels(own[0])))
    entry = ctx.object_entry(scene_id, object_id)
    if not own:
        reason = (entry.reason if entry is not None else None) or "no caption for this object"
        parts.append(f'<p class="muted">{html.escape(str(reason))}</p>')
    frames = []
    if own:
        found = ctx.item_images(own[0])
        frames = found.highlights + found.crops[:4]
        parts += [f'<p class="muted image-skipped">{html.escape(note)}</p>' for note in found.skipped]
    return "".join(parts), frames


def build_explorer_tab(ctx: AppContext) -> TabLoad:
    scenes = ctx.scene_ids()
    first = scenes[0] if scenes else None
    with gr.Row():
        scene = gr.Dropdown(
            [("all scenes", ALL), *scenes], value=first, label="scene", elem_id="explorer-scene"
        )
        layer = gr.Radio(list(LAYERS), value="rgb", label="layer")
        obj = gr.Dropdown(object_choices(ctx, first), value=None, label="object", elem_id="explorer-object")
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label="3D view", elem_id="explorer-plot")
        with gr.Column(scale=2):
            bev = gr.Image(label="BEV (click an object)", interactive=False, elem_id="explorer-bev")
    with gr.Row():
        panel = gr.HTML(elem_id="explorer-object-panel")
        frames = gr.Gallery(label="best frames", columns=4, height=260)
    with gr.Row():
        level = gr.Dropdown([ALL, "object", "frame", "scene", "scenario"], value=ALL, label="level")
        pipeline = gr.Dropdown([ALL, "accepted", "flagged", "rejected"], value=ALL, label="pipeline status")
        review = gr.Dropdown([ALL, *[s.value for s in ReviewStatus]], value=ALL, label="review status")
        category = gr.Dropdown([ALL], value=ALL, label="category")
        reason = gr.Dropdown(
            html.reason_filter_choices(),
            value=html.ALL_REASONS,
            label="flag reason",
            elem_id="explorer-reason",
        )
    table_note = gr.HTML(elem_id="explorer-table-note")
    table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, wrap=True, elem_id="explorer-table")

    def view(scene_id: str | None, layer_name: str, object_id: int | None, request: gr.Request):
        acting_user(ctx, request)
        loaded = ctx.loaded(scene_id) if scene_id and scene_id != ALL else None
        if loaded is None:
            return None, None
        picture = ctx.bev(scene_id)
        return (
            scene_figure(loaded.view, object_id, layer_name, scene_id),
            bev_picture(picture, object_id) if picture is not None else None,
        )

    def pick_scene(scene_id: str | None, layer_name: str, request: gr.Request):
        figure, picture = view(scene_id, layer_name, None, request)
        panel_html, gallery = object_panel(ctx, scene_id, None) if scene_id else ("", [])
        return (
            gr.update(choices=object_choices(ctx, scene_id) if scene_id != ALL else [], value=None),
            figure,
            picture,
            panel_html,
            gallery,
            gr.update(choices=category_choices(ctx, scene_id), value=ALL),
        )

    def pick_object(scene_id: str | None, layer_name: str, object_id: int | None, request: gr.Request):
        figure, picture = view(scene_id, layer_name, object_id, request)
        panel_html, gallery = object_panel(ctx, scene_id, object_id) if scene_id else ("", [])
        return figure, picture, panel_html, gallery

    def click_bev(scene_id: str | None, evt: gr.SelectData, request: gr.Request):
        acting_user(ctx, request)
        picture = ctx.bev(scene_id) if scene_id and scene_id != ALL else None
        if picture is None or not isinstance(evt.index, (list, tuple)):
            return gr.update()
        found = object_at(picture, int(evt.index[0]), int(evt.index[1]))
        return gr.update(value=found) if found is not None else gr.update()

    def rows(scene_id: str | None, lvl: str, pipe: str, rev: str, cat: str, why: str, request: gr.Request):
        acting_user(ctx, request)
        if not scene_id:
            return [], html.empty_html("no scenes")
        return table_view(ctx, table_filter(scene_id, lvl, pipe, rev, cat, why))

    filters = [scene, level, pipeline, review, category, reason]
    scene.change(
        pick_scene, [scene, layer], [obj, plot, bev, panel, frames, category], api_name="explore_scene"
    )
    obj.change(pick_object, [scene, layer, obj], [plot, bev, panel, frames], api_name="explore_object")
    layer.change(pick_object, [scene, layer, obj], [plot, bev, panel, frames])
    bev.select(click_bev, [scene], obj)
    for control in filters:
        control.change(rows, filters, [table, table_note], api_name=False)

    def load(scene_id: str | None, layer_name: str, request: gr.Request):
        return (*pick_scene(scene_id, layer_name, request), *rows(scene_id, ALL, ALL, ALL, ALL, ALL, request))

    return TabLoad(load, [scene, layer], [obj, plot, bev, panel, frames, category, table, table_note])
