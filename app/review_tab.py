"""The review workspace: the next item, its 3D view, images, caption with claims, and the decisions.

Callbacks are thin: they resolve the user on the server, call `app.workflow`, and turn the resulting
`Screen` into component updates.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import text as html
from app import workflow
from app.access import AccessDenied, resolve_user
from app.context import AppContext, object_id_of
from app.progress import acceptance_rate, done_today, queue_by_status
from app.scene_view import scene_figure
from review import Action, Edit, QueueFilter, RejectReason

LEVELS = ("object", "frame", "scene", "scenario")


@dataclass
class TabLoad:
    """What the page runs when it (re)loads: a refresh brings back the user's leased item and draft."""

    fn: Callable[..., Any]
    inputs: list[Any]
    outputs: list[Any]
    then: tuple[Callable[..., Any], list[Any], list[Any]] | None = (
        None  # a follow-up step: fn, inputs, outputs
    )


def acting_user(ctx: AppContext, request: gr.Request | None) -> str:
    name = (request.username if request is not None else None) if ctx.auth else ctx.local_user
    try:
        return resolve_user(ctx.service, name).username
    except AccessDenied as exc:
        raise gr.Error(str(exc)) from None


def queue_filter(level: str | None, scene: str | None) -> QueueFilter:
    return QueueFilter(
        levels=(level,) if level and level != "all" else (),
        scene_ids=(scene,) if scene and scene != "all" else (),
    )


def editor_of(item_level: str | None, description: str, answer: str) -> Edit:
    """The editor boxes as an `Edit`: a scenario item's caption is its question."""
    if item_level == "scenario":
        return Edit(description=description, question=description, answer=answer)
    return Edit(description=description)


def build_review_tab(ctx: AppContext) -> TabLoad:
    scenes = ["all", *ctx.scene_ids()]
    shown_state = gr.State(None)
    conflict_state = gr.State(None)
    progress = gr.HTML(elem_id="review-progress")
    with gr.Row():
        level_filter = gr.Dropdown(["all", *LEVELS], value="all", label="level", scale=1)
        scene_filter = gr.Dropdown(scenes, value="all", label="scene", scale=1)
        refresh_btn = gr.Button("Apply filter / reload (n)", elem_id="btn-next", scale=1)
    header = gr.HTML(elem_id="item-header")
    message = gr.HTML(elem_id="review-message")
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label="3D view (object highlighted)", elem_id="review-plot")
        with gr.Column(scale=2):
            caption = gr.HTML(label="caption", elem_id="review-caption")
            editor = gr.Textbox(
                label="edit the caption (e to focus, Ctrl+Enter saves)", lines=4, elem_id="editor"
            )
            answer = gr.Textbox(label="answer (scenario items)", lines=1, visible=False, elem_id="answer")
            draft_status = gr.Markdown(elem_id="draft-status")
            reason = gr.Dropdown(
                [r.value for r in RejectReason], value=RejectReason.HALLUCINATION.value, label="reject reason"
            )
            with gr.Row():
                approve_btn = gr.Button("Approve (a)", variant="primary", elem_id="btn-approve")
                edit_btn = gr.Button("Edit & approve (Ctrl+Enter)", elem_id="btn-edit")
                reject_btn = gr.Button("Reject (r)", variant="stop", elem_id="btn-reject")
                skip_btn = gr.Button("Skip (s)", elem_id="btn-skip")
                undo_btn = gr.Button("Undo (u)", elem_id="btn-undo")
            conflict_box = gr.HTML(visible=False, elem_id="conflict")
            with gr.Row(visible=False) as conflict_row:
                theirs_btn = gr.Button("Take theirs", elem_id="btn-theirs")
                mine_btn = gr.Button("Keep mine", elem_id="btn-mine")
            claims = gr.HTML(label="claims")
    with gr.Row():
        crops = gr.Gallery(label="isolated crops", columns=6, height=220, elem_id="crops")
        highlights = gr.Gallery(label="highlighted frames", columns=4, height=220, elem_id="highlights")
    others = gr.HTML(label="other levels mentioning the object")
    gr.HTML(HOTKEY_HELP)

    outputs = [
        shown_state,
        conflict_state,
        progress,
        header,
        message,
        caption,
        editor,
        answer,
        draft_status,
        conflict_box,
        conflict_row,
        claims,
        others,
    ]
    media = [plot, crops, highlights]

    def on_media(shown: workflow.Shown | None, request: gr.Request) -> list[Any]:
        acting_user(ctx, request)
        return render_media(ctx, shown)

    def render(screen: workflow.Screen, user: str) -> list[Any]:
        return render_screen(ctx, screen, user)

    def on_load(level: str, scene: str, request: gr.Request) -> list[Any]:
        user = acting_user(ctx, request)
        return render(workflow.open_next(ctx.service, user, queue_filter(level, scene)), user)

    def on_decide(action: str):
        def callback(
            shown: workflow.Shown | None,
            text: str,
            answer_text: str,
            why: str,
            level: str,
            scene: str,
            request: gr.Request,
        ) -> list[Any]:
            user = acting_user(ctx, request)
            filters = queue_filter(level, scene)
            if shown is None:
                return render(workflow.open_next(ctx.service, user, filters), user)
            item_level = ctx.service.get_item(shown.item_id).item.key.level
            edit = editor_of(item_level, text, answer_text)
            return render(workflow.decide(ctx.service, user, shown, action, edit, why, filters), user)

        return callback

    def on_undo(shown: workflow.Shown | None, level: str, scene: str, request: gr.Request) -> list[Any]:
        user = acting_user(ctx, request)
        return render(workflow.undo(ctx.service, user, shown, queue_filter(level, scene)), user)

    def on_draft(shown: workflow.Shown | None, text: str, answer_text: str, request: gr.Request) -> str:
        user = acting_user(ctx, request)
        if shown is None:
            return ""
        item_level = ctx.service.get_item(shown.item_id).item.key.level
        return workflow.save_draft(ctx.service, user, shown, editor_of(item_level, text, answer_text))

    def on_theirs(shown: workflow.Shown | None, request: gr.Request) -> list[Any]:
        user = acting_user(ctx, request)
        if shown is None:
            return render(workflow.open_next(ctx.service, user), user)
        return render(workflow.take_theirs(ctx.service, user, shown), user)

    def on_mine(
        shown: workflow.Shown | None, conflict: Any, text: str, answer_text: str, request: gr.Request
    ):
        user = acting_user(ctx, request)
        if shown is None or conflict is None:
            return render(workflow.open_next(ctx.service, user), user)
        item_level = ctx.service.get_item(shown.item_id).item.key.level
        edit = editor_of(item_level, text, answer_text)
        return render(workflow.keep_mine(ctx.service, user, shown, conflict, edit), user)

    def on_tick(shown: workflow.Shown | None, request: gr.Request) -> None:
        if shown is not None:
            with suppress(Exception):  # the lease is gone: the next decision reports it
                ctx.service.renew_lease(acting_user(ctx, request), shown.item_id)

    decide_inputs = [shown_state, editor, answer, reason, level_filter, scene_filter]
    for button, action in (
        (approve_btn, Action.APPROVE),
        (edit_btn, Action.EDIT),
        (reject_btn, Action.REJECT),
        (skip_btn, Action.SKIP),
    ):
        button.click(
            on_decide(action.value),
            decide_inputs,
            outputs,
            api_name=f"review_{action.value}",
            concurrency_limit=None,
            show_progress="minimal",
        ).then(on_media, [shown_state], media, show_progress="hidden")
    undo_btn.click(on_undo, [shown_state, level_filter, scene_filter], outputs, api_name="review_undo").then(
        on_media, [shown_state], media, show_progress="hidden"
    )
    refresh_btn.click(on_load, [level_filter, scene_filter], outputs, api_name="review_next").then(
        on_media, [shown_state], media, show_progress="hidden"
    )
    editor.input(
        on_draft,
        [shown_state, editor, answer],
        draft_status,
        trigger_mode="always_last",
        show_progress="hidden",
        api_name="review_draft",
    )
    answer.input(on_draft, [shown_state, editor, answer], draft_status, trigger_mode="always_last")
    theirs_btn.click(on_theirs, [shown_state], outputs, api_name="review_take_theirs").then(
        on_media, [shown_state], media, show_progress="hidden"
    )
    mine_btn.click(
        on_mine, [shown_state, conflict_state, editor, answer], outputs, api_name="review_keep_mine"
    )
    gr.Timer(120).tick(on_tick, [shown_state], None, show_progress="hidden")
    return TabLoad(on_load, [level_filter, scene_filter], outputs, (on_media, [shown_state], media))


def render_screen(ctx: AppContext, screen: workflow.Screen, user: str) -> list[Any]:
    """Component values for one `Screen`, in the order of the tab's outputs (the 3D view and the images
    follow in a second step, `render_media`, so the text of the next item shows at once)."""
    rows = ctx.service.decision_log()
    progress = html.progress_html(
        done_today(rows, user), queue_by_status(ctx.service.stats()), acceptance_rate(rows, user)
    )
    message = html.message_html(screen.message, screen.kind) if screen.message else ""
    item = screen.item
    if item is None:
        return [
            None,
            None,
            progress,
            '<p class="muted">no item</p>',
            message,
            "",
            "",
            gr.update(value="", visible=False),
            "",
            gr.update(value="", visible=False),
            gr.update(visible=False),
            "",
            "",
        ]
    claims = ctx.claims(item)
    editor = screen.editor or item.text
    conflict = screen.conflict
    return [
        screen.shown,
        conflict,
        progress,
        html.item_header_html(item, screen.draft_note),
        message,
        html.caption_html(item.text.description, claims),
        editor.description,
        gr.update(value=editor.answer or "", visible=item.key.level == "scenario"),
        "",
        gr.update(
            value=html.conflict_html(conflict, editor.description) if conflict else "",
            visible=conflict is not None,
        ),
        gr.update(visible=conflict is not None),
        html.claims_table_html(claims),
        html.other_levels_html(ctx.other_levels(item)),
    ]


def render_media(ctx: AppContext, shown: workflow.Shown | None) -> list[Any]:
    """(3D figure, crops, highlighted frames) of the shown item."""
    if shown is None:
        return [None, [], []]
    item = ctx.service.get_item(shown.item_id).item
    loaded = ctx.loaded(item.key.scene_id)
    figure = None
    if loaded is not None:
        title = f"{item.key.scene_id} · {item.object_name.replace('_', ' ')} · item {item.id}"
        figure = scene_figure(loaded.view, object_id_of(item), "rgb", title)
    crops, highlights = ctx.images(item)
    return [figure, crops, highlights]


HOTKEY_HELP = """
<div class="hotkeys"><b>Hotkeys</b> (outside the text box):
<kbd>a</kbd> approve · <kbd>e</kbd> edit (focus the caption) · <kbd>Ctrl</kbd>+<kbd>Enter</kbd> save the edit
and approve · <kbd>r</kbd> reject with the chosen reason · <kbd>s</kbd> skip · <kbd>u</kbd> undo ·
<kbd>n</kbd> reload the queue · <kbd>Esc</kbd> leave the text box. Every action is saved at once; text you
type is kept as a draft.</div>
"""
