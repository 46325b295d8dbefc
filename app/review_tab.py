"""The review workspace: the next item, its 3D view, images, caption with claims, and the decisions.

One item on screen at a time: every step (load, decide, undo, conflict) answers with ONE response
holding every panel of the item (`Panels`), so text and evidence arrive together; each panel carries
the item's id (`data-item-id`) and the page's script (`app.main.HOTKEYS_JS`) holds the decision
controls until every panel, the drawn 3D view included, shows the header's item. A decision sends the
item id and revision read from the screen; the callback refuses one that is not the item it showed,
and the review service refuses one that is not the user's current lease.

Callbacks are thin: they resolve the user on the server, call `app.workflow`, and turn the resulting
`Screen` into `Panels`; `Panels` is mapped to components by field name in one place (`PANEL_NAMES`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, fields
from html import escape
from typing import Any

import gradio as gr

from app import text as html
from app import workflow
from app.access import AccessDenied, resolve_user
from app.context import AppContext, object_id_of
from app.failure_view import failures_html
from app.item_media import REVIEW_PLOT, ItemMedia, MediaCache
from app.live_plot import PLOTLY_LOADER
from core.annotate.document import ObjectEntry
from review import Action, Edit, QueueFilter, RejectReason
from review.why import why_of

LEVELS = ("object", "frame", "scene", "scenario")


@dataclass
class TabLoad:
    """What the page runs when it (re)loads: a refresh brings back the user's leased item and draft."""

    fn: Callable[..., Any]
    inputs: list[Any]
    outputs: list[Any]
    then: tuple[Callable[..., Any], list[Any], list[Any]] | None = None  # a follow-up step


SKIP: Any = gr.skip()  # "leave this component as it is"


@dataclass
class Panels:
    """Everything one step shows, one field per output component (same name in `build_review_tab`).

    HTML panels that show the item carry its id (`panel_html`); a field left at `SKIP` is not sent."""

    shown: Any  # workflow.Shown | None: the item on screen (gr.State)
    conflict: Any  # review.Conflict | None (gr.State)
    progress: str
    header: str
    message: str
    why: str  # why the pipeline flagged the item (`app.text.why_html`)
    caption: str
    editor: Any
    answer: Any
    draft_status: Any
    conflict_box: Any
    conflict_row: Any
    claims: str
    others: str
    plot: str  # the 3D view's panel (app.item_media.plot_html)
    crops: str
    highlights: str


PANEL_NAMES = [f.name for f in fields(Panels)]


def panel_html(name: str, item_id: int | None, inner: str, **data: object) -> str:
    """An HTML panel marked with the item it belongs to, so the page can check they all agree."""
    extra = "".join(f' data-{key.replace("_", "-")}="{escape(str(value))}"' for key, value in data.items())
    item = "" if item_id is None else str(item_id)
    return f'<div class="review-panel" data-review-panel="{name}" data-item-id="{item}"{extra}>{inner}</div>'


def acting_user(ctx: AppContext, request: gr.Request | None) -> str:
    name = (request.username if request is not None else None) if ctx.auth else ctx.local_user
    try:
        return resolve_user(ctx.service, name).username
    except AccessDenied as exc:
        raise gr.Error(str(exc)) from None


def queue_filter(level: str | None, scene: str | None, reason: str | None = None) -> QueueFilter:
    return QueueFilter(
        levels=(level,) if level and level != "all" else (),
        scene_ids=(scene,) if scene and scene != "all" else (),
        flag_reasons=html.reason_filter(reason),
    )


def editor_of(item_level: str | None, description: str, answer: str) -> Edit:
    """The editor boxes as an `Edit`: a scenario item's caption is its question."""
    if item_level == "scenario":
        return Edit(description=description, question=description, answer=answer)
    return Edit(description=description)


# which item the page shows: filled in by the page's script when a decision is sent (see HOTKEYS_JS)
ON_SCREEN_JS = """(...args) => {{
  const values = args.slice(0, {count});
  values[1] = window.reviewScreen ? window.reviewScreen.claim() : "";
  return values;
}}"""


def build_review_tab(ctx: AppContext) -> TabLoad:
    media = MediaCache(ctx)
    scenes = ["all", *ctx.scene_ids()]
    components: dict[str, Any] = {
        "shown": gr.State(None),
        "conflict": gr.State(None),
        "progress": gr.HTML(elem_id="review-progress"),
    }
    on_screen = gr.Textbox(visible=False, elem_id="review-on-screen")  # "item:revision", set by the page
    with gr.Row():
        level_filter = gr.Dropdown(["all", *LEVELS], value="all", label="level", scale=1)
        scene_filter = gr.Dropdown(scenes, value="all", label="scene", scale=1)
        reason_filter = gr.Dropdown(
            html.reason_filter_choices(),
            value=html.ALL_REASONS,
            label="flag reason",
            scale=1,
            elem_id="review-reason",
        )
        refresh_btn = gr.Button("Apply filter / reload (n)", elem_id="btn-next", scale=1)
    components["header"] = gr.HTML(elem_id="item-header")
    components["message"] = gr.HTML(elem_id="review-message")
    with gr.Row():
        with gr.Column(scale=3):
            # the 3D view: a panel with the figure, drawn by the page's script into one lasting plot
            components["plot"] = gr.HTML(elem_id=REVIEW_PLOT)
            # loads plotly.js into the page (Gradio's plot component brings it) for that script
            gr.Plot(value=PLOTLY_LOADER, elem_id="plotly-loader", container=False)
        with gr.Column(scale=2):
            components["why"] = gr.HTML(elem_id="review-why")
            components["caption"] = gr.HTML(label="caption", elem_id="review-caption")
            components["editor"] = gr.Textbox(
                label="edit the caption (e to focus, Ctrl+Enter saves)", lines=4, elem_id="editor"
            )
            components["answer"] = gr.Textbox(
                label="answer (scenario items)", lines=1, visible=False, elem_id="answer"
            )
            components["draft_status"] = gr.Markdown(elem_id="draft-status")
            reason = gr.Dropdown(
                [r.value for r in RejectReason], value=RejectReason.HALLUCINATION.value, label="reject reason"
            )
            with gr.Row(elem_id="review-decide"):
                approve_btn = gr.Button("Approve (a)", variant="primary", elem_id="btn-approve")
                edit_btn = gr.Button("Edit & approve (Ctrl+Enter)", elem_id="btn-edit")
                reject_btn = gr.Button("Reject (r)", variant="stop", elem_id="btn-reject")
                skip_btn = gr.Button("Skip (s)", elem_id="btn-skip")
                undo_btn = gr.Button("Undo (u)", elem_id="btn-undo")
            components["conflict_box"] = gr.HTML(visible=False, elem_id="conflict")
            with gr.Row(visible=False) as conflict_row:
                theirs_btn = gr.Button("Take theirs", elem_id="btn-theirs")
                mine_btn = gr.Button("Keep mine", elem_id="btn-mine")
            components["conflict_row"] = conflict_row
            components["claims"] = gr.HTML(label="claims", elem_id="review-claims")
    with gr.Row():
        components["crops"] = gr.HTML(elem_id="crops")
        components["highlights"] = gr.HTML(elem_id="highlights")
    components["others"] = gr.HTML(label="other levels mentioning the object", elem_id="review-others")
    gr.HTML(HOTKEY_HELP)

    outputs = [components[name] for name in PANEL_NAMES]
    shown_state, conflict_state = components["shown"], components["conflict"]
    editor, answer = components["editor"], components["answer"]

    def render(
        screen: workflow.Screen, user: str, filters: QueueFilter, before: workflow.Shown | None = None
    ) -> list[Any]:
        panels = render_screen(ctx, media, screen, user, before)
        if screen.shown is not None:
            media.prefetch_next(ctx.service, user, filters, screen.shown.item_id)
        return [getattr(panels, name) for name in PANEL_NAMES]

    def on_load(level: str, scene: str, why_filter: str, request: gr.Request) -> list[Any]:
        user = acting_user(ctx, request)
        filters = queue_filter(level, scene, why_filter)
        return render(workflow.open_next(ctx.service, user, filters), user, filters)

    def refused(shown: workflow.Shown | None, reason_text: str) -> list[Any]:
        """Nothing decided: only the header (a fresh render mark, so the page unlocks) and the message."""
        item = ctx.service.get_item(shown.item_id).item if shown is not None else None
        panels = {name: SKIP for name in PANEL_NAMES}
        panels["header"] = header_html(ctx, item, None, shown)
        panels["message"] = html.message_html(reason_text, "error")
        return [panels[name] for name in PANEL_NAMES]

    def on_decide(action: str):
        def callback(
            shown: workflow.Shown | None,
            screen_mark: str,
            text: str,
            answer_text: str,
            why: str,
            level: str,
            scene: str,
            why_filter: str,
            request: gr.Request,
        ) -> list[Any]:
            user = acting_user(ctx, request)
            filters = queue_filter(level, scene, why_filter)
            refusal = workflow.screen_refusal(shown, screen_mark)
            if refusal is not None:
                return refused(shown, refusal)
            if shown is None:
                return render(workflow.open_next(ctx.service, user, filters), user, filters)
            item_level = ctx.service.get_item(shown.item_id).item.key.level
            edit = editor_of(item_level, text, answer_text)
            screen = workflow.decide(ctx.service, user, shown, action, edit, why, filters, require_lease=True)
            return render(screen, user, filters, shown)

        return callback

    def on_undo(
        shown: workflow.Shown | None, _mark: str, level: str, scene: str, why_filter: str, request: gr.Request
    ) -> list[Any]:
        user = acting_user(ctx, request)
        filters = queue_filter(level, scene, why_filter)
        return render(workflow.undo(ctx.service, user, shown, filters), user, filters, shown)

    def on_draft(shown: workflow.Shown | None, text: str, answer_text: str, request: gr.Request) -> str:
        user = acting_user(ctx, request)
        if shown is None:
            return ""
        item_level = ctx.service.get_item(shown.item_id).item.key.level
        return workflow.save_draft(ctx.service, user, shown, editor_of(item_level, text, answer_text))

    def on_theirs(shown: workflow.Shown | None, _mark: str, request: gr.Request) -> list[Any]:
        user = acting_user(ctx, request)
        if shown is None:
            return render(workflow.open_next(ctx.service, user), user, QueueFilter())
        return render(workflow.take_theirs(ctx.service, user, shown), user, QueueFilter(), shown)

    def on_mine(
        shown: workflow.Shown | None,
        _mark: str,
        conflict: Any,
        text: str,
        answer_text: str,
        request: gr.Request,
    ) -> list[Any]:
        user = acting_user(ctx, request)
        if shown is None or conflict is None:
            return render(workflow.open_next(ctx.service, user), user, QueueFilter())
        item_level = ctx.service.get_item(shown.item_id).item.key.level
        edit = editor_of(item_level, text, answer_text)
        screen = workflow.keep_mine(ctx.service, user, shown, conflict, edit)
        return render(screen, user, QueueFilter(), shown)

    def on_tick(shown: workflow.Shown | None, request: gr.Request) -> None:
        if shown is not None:
            with suppress(Exception):  # the lease is gone: the next decision reports it
                ctx.service.renew_lease(acting_user(ctx, request), shown.item_id)

    def marked(inputs: list[Any]) -> dict[str, Any]:
        """Event options of a step that the page gates: its script fills in the on-screen item."""
        return {"js": ON_SCREEN_JS.format(count=len(inputs)), "show_progress": "hidden"}

    filter_inputs = [level_filter, scene_filter, reason_filter]
    decide_inputs = [shown_state, on_screen, editor, answer, reason, *filter_inputs]
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
            **marked(decide_inputs),
        )
    undo_inputs = [shown_state, on_screen, *filter_inputs]
    undo_btn.click(on_undo, undo_inputs, outputs, api_name="review_undo", **marked(undo_inputs))
    refresh_btn.click(on_load, filter_inputs, outputs, api_name="review_next", show_progress="hidden")
    editor.input(
        on_draft,
        [shown_state, editor, answer],
        components["draft_status"],
        trigger_mode="always_last",
        show_progress="hidden",
        api_name="review_draft",
    )
    answer.input(
        on_draft, [shown_state, editor, answer], components["draft_status"], trigger_mode="always_last"
    )
    theirs_inputs = [shown_state, on_screen]
    theirs_btn.click(
        on_theirs, theirs_inputs, outputs, api_name="review_take_theirs", **marked(theirs_inputs)
    )
    mine_inputs = [shown_state, on_screen, conflict_state, editor, answer]
    mine_btn.click(on_mine, mine_inputs, outputs, api_name="review_keep_mine", **marked(mine_inputs))
    gr.Timer(120).tick(on_tick, [shown_state], None, show_progress="hidden")
    return TabLoad(on_load, filter_inputs, outputs)


def header_html(
    ctx: AppContext, item: Any, draft_note: str | None, shown: workflow.Shown | None = None
) -> str:
    """The item's header. `data-revision` is the revision a decision from this screen is based on (the
    shown one, which after a conflict is older than the head); the render mark changes with every
    response, which tells the page that the answer to its last step has arrived; `data-plot` says
    whether a 3D view comes with the item."""
    mark = uuid.uuid4().hex[:12]
    if item is None:
        return panel_html("header", None, '<p class="muted">no item</p>', revision="", render=mark, plot=0)
    has_plot = ctx.scans is not None and ctx.loaded(item.key.scene_id) is not None
    return panel_html(
        "header",
        item.id,
        html.item_header_html(item, draft_note),
        revision=shown.base_revision if shown is not None else item.head_revision,
        render=mark,
        plot=int(has_plot),
    )


def document_entry(ctx: AppContext, item: Any) -> ObjectEntry | None:
    """The object's entry of the pipeline's scene document (evidence for records that lack it)."""
    object_id = object_id_of(item)
    if item.key.level != "object" or object_id is None:
        return None
    return ctx.object_entry(item.key.scene_id, object_id)


def render_screen(
    ctx: AppContext,
    media: MediaCache,
    screen: workflow.Screen,
    user: str,
    before: workflow.Shown | None = None,
) -> Panels:
    """The `Panels` of one `Screen`. The evidence (3D view, images) is sent only when the item changed:
    when the step stays on the item it showed (`before`), the page already shows it."""
    mine = ctx.service.progress(user)
    progress = html.progress_html(mine.done_today, mine.queue, mine.acceptance_rate)
    message = html.message_html(screen.message, screen.kind) if screen.message else ""
    item = screen.item
    if item is None:
        return Panels(
            shown=None,
            conflict=None,
            progress=progress,
            header=header_html(ctx, None, None),
            message=message,
            why=panel_html("why", None, ""),
            caption=panel_html("caption", None, ""),
            editor="",
            answer=gr.update(value="", visible=False),
            draft_status="",
            conflict_box=gr.update(value="", visible=False),
            conflict_row=gr.update(visible=False),
            claims=panel_html("claims", None, ""),
            others=panel_html("others", None, ""),
            plot=panel_html("plot", None, ""),
            crops=panel_html("crops", None, ""),
            highlights=panel_html("highlights", None, ""),
        )
    same_item = before is not None and before.item_id == item.id
    evidence: ItemMedia | None = None if same_item else media.get(item)
    claims = ctx.claims(item)
    editor = screen.editor or item.text
    conflict = screen.conflict
    header = header_html(ctx, item, screen.draft_note, screen.shown)
    return Panels(
        shown=screen.shown,
        conflict=conflict,
        progress=progress,
        header=header,
        message=message,
        why=panel_html(
            "why", item.id, html.why_html(why_of(item, document_entry(ctx, item))) + failures_html(item.extra)
        ),
        caption=panel_html("caption", item.id, html.caption_html(item.text.description, claims)),
        editor=editor.description,
        answer=gr.update(value=editor.answer or "", visible=item.key.level == "scenario"),
        draft_status="",
        conflict_box=gr.update(
            value=html.conflict_html(conflict, editor.description) if conflict else "",
            visible=conflict is not None,
        ),
        conflict_row=gr.update(visible=conflict is not None),
        claims=panel_html("claims", item.id, html.claims_table_html(claims)),
        others=panel_html("others", item.id, html.other_levels_html(ctx.other_levels(item))),
        plot=SKIP if evidence is None else evidence.plot_html,
        crops=SKIP if evidence is None else evidence.crops_html,
        highlights=SKIP if evidence is None else evidence.highlights_html,
    )


HOTKEY_HELP = """
<div class="hotkeys"><b>Hotkeys</b> (outside the text box):
<kbd>a</kbd> approve · <kbd>e</kbd> edit (focus the caption) · <kbd>Ctrl</kbd>+<kbd>Enter</kbd> save the edit
and approve · <kbd>r</kbd> reject with the chosen reason · <kbd>s</kbd> skip · <kbd>u</kbd> undo ·
<kbd>n</kbd> reload the queue · <kbd>Esc</kbd> leave the text box or close a large image. Every action is
saved at once; text you type is kept as a draft. While the next item is loading the decisions wait.</div>
"""
