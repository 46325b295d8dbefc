"""The failure analysis workspace: open a report of `python -m core eval` (or run a checkpoint on a split
and open its report: `app.failure_run`), see its samples worst first,
filter them, see the metric broken down by class, group, size, visibility, description length and
distractors, click a sample to see it in 3D (true positive / false positive / false negative), and send a
failing sample to review.

Each step answers with ONE response holding every panel it changes (`TablePanels`, `SamplePanels`), so
the table, the plots, the sample's text and its 3D view never disagree. "Send to review" sends the key
the page shows (`data-sample-key`, read by the button's script) and the server refuses it unless it is
the sample it last showed, so a person never sends a sample they did not see. The numbers come from
`core.eval.samples` / `core.eval.failures` / `core.eval.outcomes`; the review item from
`review.failures`; this module lays out and wires.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from app.context import AppContext
from app.failure_run import (
    DEFAULT_SAMPLES,
    checkpoint_choices,
    run_from_app,
    run_note,
    split_choices,
    task_choices,
)
from app.failure_view import detail_html, outcome_figure
from app.live_plot import live_plot_block, live_plot_value
from app.review_tab import TabLoad, acting_user
from app.scene_view import SceneView
from core.data.errors import DataError
from core.eval.failures import ALL, BINS, SampleFilter, breakdown, choices, select
from core.eval.object_facts import ObjectFactsCache
from core.eval.outcomes import PredictionFiles, sample_outcome
from core.eval.samples import SampleTable, load_report, target_objects
from core.scene.errors import SceneError
from core.scene.scannet import load_scene
from review import ReviewError
from review.failures import failure_from_sample

REPORT_SUFFIX = "-eval.json"
MAX_REPORTS = 200
SKIPPED_FOLDERS = {"scans", "scenes", "frames", "color", "depth", "pose", "__pycache__"}
TABLE_ROWS = 2000  # rows sent to the page at most; the note says when there are more
BREAKDOWNS = ("class", "group", "size", "visible", "words", "distractors")
FILTERS = ("category", "group", "size", "visible", "words", "distractors")
PLOT_HEIGHT = 280
CACHED_REPORTS = 4
SAMPLE_PLOT = "failure-3d"  # the live 3D view's block

# the key the page shows, read when "send to review" is pressed (see the module docstring)
ON_SCREEN_JS = """(...args) => {
  const values = args.slice(0, 5);
  const shown = document.querySelector('#failure-detail [data-sample-key]');
  values[2] = shown ? shown.dataset.sampleKey : "";
  return values;
}"""


def report_roots(ctx: AppContext) -> list[Path]:
    """Where reports are looked for: the data folder (with its runs/) and ./runs."""
    roots = [Path.cwd() / "runs"]
    if ctx.scans is not None:
        roots.insert(0, ctx.scans)
    if ctx.annotations is not None:
        roots.append(ctx.annotations.parent)
    seen, out = set(), []
    for root in roots:
        resolved = root.resolve()
        if resolved.is_dir() and resolved not in seen:
            seen.add(resolved)
            out.append(resolved)
    return out


def find_reports(roots: list[Path]) -> list[Path]:
    """Eval reports (`*-eval.json`) under the roots, newest first, skipping scan and image folders."""
    found: set[Path] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith(".")]
            found |= {Path(folder) / f for f in files if f.endswith(REPORT_SUFFIX)}
            if len(found) >= MAX_REPORTS:
                break
    return sorted(found, key=lambda p: (-p.stat().st_mtime, str(p)))[:MAX_REPORTS]


def report_choices(ctx: AppContext) -> list[tuple[str, str]]:
    out = []
    for path in find_reports(report_roots(ctx)):
        root = next((r for r in report_roots(ctx) if path.is_relative_to(r)), path.parent)
        out.append((str(path.relative_to(root.parent)), str(path)))
    return out


class FailureData:
    """Loaded reports, their scenes and prediction files, shared by every session (a few kept)."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self._reports: OrderedDict[tuple[str, int], SampleTable] = OrderedDict()
        self._views: OrderedDict[tuple[str, str], SceneView] = OrderedDict()
        self._facts: dict[str, ObjectFactsCache] = {}
        self.files = PredictionFiles()
        self._lock = threading.Lock()

    def allowed(self, path: Path) -> bool:
        """With logins on, only reports under the app's folders may be opened."""
        if not self.ctx.auth:
            return True
        resolved = path.resolve()
        return any(resolved.is_relative_to(root) for root in report_roots(self.ctx))

    def table(self, path_text: str) -> SampleTable:
        path = Path(path_text.strip()).expanduser()
        if not path_text.strip():
            raise gr.Error("choose a report or type the path of one")
        if not self.allowed(path):
            raise gr.Error(f"{path_text}: only reports under the app's data folders can be opened")
        if not path.is_file():
            raise gr.Error(f"{path_text}: no such report file")
        stamp = (str(path.resolve()), path.stat().st_mtime_ns)
        with self._lock:
            if stamp in self._reports:
                self._reports.move_to_end(stamp)
                return self._reports[stamp]
        scans = self.ctx.scans
        root = str(scans.resolve()) if scans is not None else ""
        facts = self._facts.setdefault(root, ObjectFactsCache(scans)) if scans is not None else None
        try:
            table = load_report(path, scans, facts)
        except DataError as exc:
            raise gr.Error(escape(str(exc))) from None
        with self._lock:
            self._reports[stamp] = table
            while len(self._reports) > CACHED_REPORTS:
                self._reports.popitem(last=False)
        return table

    def view(self, table: SampleTable, scene_id: str) -> SceneView | None:
        """The scene the report was scored on (its scans, else the app's); None when it cannot be loaded."""
        root = table.scans or self.ctx.scans
        if root is None:
            return None
        if self.ctx.scans is not None and root.resolve() == self.ctx.scans.resolve():
            loaded = self.ctx.loaded(scene_id)
            return loaded.view if loaded is not None else None
        stamp = (str(root.resolve()), scene_id)
        with self._lock:
            if stamp in self._views:
                return self._views[stamp]
        try:
            view = SceneView(load_scene(root, scene_id, with_frames=False))
        except SceneError:
            return None
        with self._lock:
            self._views[stamp] = view
            while len(self._views) > 3:
                self._views.popitem(last=False)
        return view


@dataclass
class TablePanels:
    """What opening a report or changing a filter shows (one field per component, same name below)."""

    table: Any
    note: str
    plot_class: Any
    plot_group: Any
    plot_size: Any
    plot_visible: Any
    plot_words: Any
    plot_distractors: Any


@dataclass
class SamplePanels:
    """What clicking a sample shows: its text, its 3D view, what "send" would send, and a clear message."""

    detail: str
    plot3d: Any
    shown: Any  # (report path, sample key) on screen, or None (gr.State)
    sent: str


def values(panels: TablePanels | SamplePanels) -> tuple[Any, ...]:
    """The panels in field order (not `dataclasses.astuple`, which would deep-copy every figure); the
    sample's 3D figure goes to its live plot (`app.live_plot`)."""
    out = {f.name: getattr(panels, f.name) for f in fields(panels)}
    if isinstance(panels, SamplePanels):
        out["plot3d"] = live_plot_value(SAMPLE_PLOT, panels.plot3d, "click a sample in the table")
    return tuple(out.values())


def breakdown_figure(table: SampleTable, metric: str, by: str, chosen: SampleFilter) -> go.Figure:
    """The mean metric per value of `by` over the filtered samples, with each bar's sample count."""
    frame = breakdown(table, metric, by, chosen)
    title = BINS[by].title if by in BINS else ("class" if by == "class" else table.group_name)
    labels = [str(v) for v in frame[by]]
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=frame["mean"],
            text=[f"n={n}" for n in frame["count"]],
            textposition="auto",
            hovertemplate="%{x}: %{y:.3f} (%{text})<extra></extra>",
        )
    )
    figure.update_xaxes(type="category", title=title, automargin=True)
    figure.update_yaxes(title=f"mean {metric}", rangemode="tozero")
    figure.update_layout(
        title=f"{metric} by {title}", height=PLOT_HEIGHT, margin={"l": 40, "r": 10, "t": 40, "b": 40}
    )
    return figure


def table_panels(table: SampleTable, metric: str, chosen: SampleFilter) -> TablePanels:
    rows = select(table, metric, chosen)
    shown = rows.head(TABLE_ROWS).round(3)
    more = f" (the worst {TABLE_ROWS} shown)" if len(rows) > TABLE_ROWS else ""
    notes = "".join(f'<p class="muted">{escape(n)}</p>' for n in table.notes)
    note = (
        f'<p class="table-count" data-rows="{len(rows)}">{len(rows)} of {len(table.frame)} samples of '
        f"{escape(table.task)} ({escape(table.path.name)}), worst {escape(metric)} first{more}</p>{notes}"
    )
    plots = [breakdown_figure(table, metric, by, chosen) for by in BREAKDOWNS]
    return TablePanels(shown, note, *plots)


def send_shown(
    ctx: AppContext,
    data: FailureData,
    user: str,
    path: str,
    shown: tuple[str, str] | None,
    on_screen_key: str,
    note: str,
    metric: str,
) -> str:
    """Send the sample on screen to review; refused unless the page shows the sample the server last showed
    (`shown`: report and key) in the report it names. Returns the message saying which item it became."""
    if not shown or not on_screen_key:
        raise gr.Error("click a sample in the table first")
    shown_path, key = shown
    if key != on_screen_key or shown_path != path:
        raise gr.Error("the sample on screen is still loading; send it again once it is shown")
    table = data.table(path)
    try:
        failure = failure_from_sample(table, key, metric, note or "")
        item, created = ctx.service.send_failure(user, failure)
    except ReviewError as exc:
        raise gr.Error(escape(str(exc))) from None
    what = "new review item" if created else "already in the review store: the failure is on item"
    return (
        f'<p class="failure-sent" data-item-id="{item.id}" data-created="{int(created)}">'
        f"{escape(key)} → {what} {item.id} ({escape(str(item.review_status))}): {escape(failure.reason)}</p>"
    )


def build_failure_tab(ctx: AppContext) -> TabLoad:
    data = FailureData(ctx)
    found = report_choices(ctx)
    with gr.Row():
        report = gr.Dropdown(
            found,
            value=found[0][1] if found else None,
            label="report (found under the data folders)",
            allow_custom_value=True,
            scale=3,
            elem_id="failure-report",
        )
        open_btn = gr.Button("Open", scale=1, elem_id="failure-open")
        metric = gr.Dropdown([], label="metric", scale=1, elem_id="failure-metric")
    listed_checkpoints = checkpoint_choices(ctx, report_roots(ctx))
    splits = split_choices(ctx)
    with gr.Accordion("Run a checkpoint on a split", open=False, elem_id="failure-run-row"):
        with gr.Row():
            run_checkpoint = gr.Dropdown(
                listed_checkpoints,
                value=listed_checkpoints[0][1] if listed_checkpoints else None,
                label="checkpoint",
                allow_custom_value=not ctx.auth,
                scale=3,
                elem_id="failure-run-checkpoint",
            )
            tasks = task_choices(listed_checkpoints[0][1] if listed_checkpoints else None)
            run_task = gr.Dropdown(
                tasks, value=tasks[0] if tasks else None, label="task", scale=1, elem_id="failure-run-task"
            )
            run_split = gr.Dropdown(
                splits,
                value="val" if "val" in splits else (splits[0] if splits else None),
                label="split",
                scale=1,
                elem_id="failure-run-split",
            )
            run_limit = gr.Number(
                DEFAULT_SAMPLES, label="at most N samples", precision=0, minimum=1, scale=1,
                elem_id="failure-run-limit",
            )  # fmt: skip
            run_btn = gr.Button("Run", scale=1, elem_id="failure-run")
        run_done = gr.HTML(elem_id="failure-run-note")
    with gr.Row():
        category = gr.Dropdown([ALL], value=ALL, label="class", elem_id="failure-class")
        group = gr.Dropdown([ALL], value=ALL, label="unique / multiple (group)", elem_id="failure-group")
        size = gr.Dropdown([ALL], value=ALL, label="object size", elem_id="failure-size")
        visible = gr.Dropdown([ALL], value=ALL, label="visible share", elem_id="failure-visible")
        words = gr.Dropdown([ALL], value=ALL, label="description words", elem_id="failure-words")
        distractors = gr.Dropdown([ALL], value=ALL, label="distractors", elem_id="failure-distractors")
    filters = [category, group, size, visible, words, distractors]
    table_components: dict[str, Any] = {
        "note": gr.HTML(elem_id="failure-note"),
        "table": gr.Dataframe(interactive=False, wrap=True, max_height=420, elem_id="failure-table"),
    }
    with gr.Row():
        with gr.Column(scale=2):
            sample_components: dict[str, Any] = {"detail": gr.HTML(elem_id="failure-detail")}
            note_box = gr.Textbox(label="note for the reviewer (optional)", lines=2, elem_id="failure-reason")
            send_btn = gr.Button("Send to review", variant="primary", elem_id="failure-send")
            sample_components["sent"] = gr.HTML(elem_id="failure-sent")
        with gr.Column(scale=3):
            sample_components["plot3d"] = live_plot_block(SAMPLE_PLOT, "prediction vs truth")
    sample_components["shown"] = gr.State(None)
    opened = gr.State(None)  # the report this page shows (opening the tab again keeps it as it is)
    on_screen = gr.Textbox(visible=False, elem_id="failure-on-screen")
    with gr.Row():
        for by in BREAKDOWNS[:3]:
            table_components[f"plot_{by}"] = gr.Plot(elem_id=f"failure-plot-{by}")
    with gr.Row():
        for by in BREAKDOWNS[3:]:
            table_components[f"plot_{by}"] = gr.Plot(elem_id=f"failure-plot-{by}")
    table_outputs = [table_components[f.name] for f in fields(TablePanels)]
    sample_outputs = [sample_components[f.name] for f in fields(SamplePanels)]
    cleared = SamplePanels("", None, None, "")

    def chosen_filter(picked: tuple[str, ...]) -> SampleFilter:
        return SampleFilter(**{name: value or ALL for name, value in zip(FILTERS, picked)})

    def open_report(path: str, request: gr.Request):
        acting_user(ctx, request)
        table = data.table(path or "")
        first = table.default_metric
        updates = [
            gr.update(choices=choices(table, "class"), value=ALL, label="class"),
            gr.update(choices=choices(table, "group"), value=ALL, label=table.group_name),
            *[gr.update(choices=choices(table, name), value=ALL) for name in FILTERS[2:]],
        ]
        panels = table_panels(table, first, SampleFilter())
        return (
            path,
            gr.update(choices=table.metrics, value=first),
            *updates,
            *values(panels),
            *values(cleared),
        )

    def refilter(
        path: str,
        metric_name: str,
        cls: str,
        grp: str,
        sz: str,
        vis: str,
        wrd: str,
        dis: str,
        request: gr.Request,
    ):
        acting_user(ctx, request)
        if not path or not metric_name:
            return tuple(gr.skip() for _ in table_outputs)
        table = data.table(path)
        return values(table_panels(table, metric_name, chosen_filter((cls, grp, sz, vis, wrd, dis))))

    def show_sample(path: str, metric_name: str, evt: gr.SelectData, request: gr.Request):
        acting_user(ctx, request)
        row = evt.row_value or []
        if not path or not row:
            return values(cleared)
        table = data.table(path)
        key = str(row[0])
        try:
            sample = table.sample(key)
        except DataError as exc:
            raise gr.Error(escape(str(exc))) from None
        targets = target_objects(table.task, sample)
        view = data.view(table, str(sample.get("scene_id", "")))
        outcome, figure, problem = None, None, ""
        if view is not None:
            try:
                outcome = sample_outcome(
                    table, key, view.scene.mesh.vertices, view.scene.vertex_instance, data.files
                )
            except DataError as exc:
                problem = f'<p class="muted">{escape(str(exc))}</p>'
            figure = outcome_figure(view, key, targets, outcome, f"{sample.get('scene_id')} · {key}")
        else:
            problem = '<p class="muted">the scene of this sample is not available: no 3D view</p>'
        panels = SamplePanels(
            detail_html(table, key, metric_name, outcome) + problem, figure, (path, key), ""
        )
        return values(panels)

    def send(path: str, shown: Any, on_screen_key: str, note: str, metric_name: str, request: gr.Request):
        user = acting_user(ctx, request)
        return send_shown(ctx, data, user, path, shown, on_screen_key, note, metric_name)

    open_outputs = [opened, metric, *filters, *table_outputs, *sample_outputs]
    open_btn.click(open_report, [report], open_outputs, api_name="failure_open")

    def pick_checkpoint(checkpoint: str | None, task: str | None):
        tasks = task_choices(checkpoint)
        return gr.update(choices=tasks, value=task if task in tasks else (tasks[0] if tasks else None))

    def run_and_open(
        checkpoint: str | None,
        task: str | None,
        split: str | None,
        limit: float | None,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008  (Gradio's way of asking for a progress bar)
    ):
        """Run the checkpoint, then show its report as "Open" does, all panels in this one response."""
        acting_user(ctx, request)
        run = run_from_app(ctx, report_roots(ctx), checkpoint, task, split, limit, progress)
        path = str(run.report)
        listing = gr.update(choices=report_choices(ctx), value=path)
        return (listing, run_note(run), *open_report(path, request))

    run_checkpoint.change(pick_checkpoint, [run_checkpoint, run_task], run_task, api_name=False)
    run_btn.click(
        run_and_open,
        [run_checkpoint, run_task, run_split, run_limit],
        [report, run_done, *open_outputs],
        api_name="failure_run",
    )
    report.input(open_report, [report], open_outputs, api_name=False)
    for control in [metric, *filters]:
        control.input(refilter, [report, metric, *filters], table_outputs, api_name=False)
    table_components["table"].select(show_sample, [report, metric], sample_outputs, api_name=False)
    send_btn.click(
        send,
        [report, sample_components["shown"], on_screen, note_box, metric],
        sample_components["sent"],
        js=ON_SCREEN_JS,
        api_name="failure_send",
    )

    def load(path: str | None, shown_report: str | None, request: gr.Request):
        """Opening the tab: the report list found now, and the chosen report unless it is already shown."""
        acting_user(ctx, request)
        listed = report_choices(ctx)
        path = path or (listed[0][1] if listed else None)
        listing = gr.update(choices=listed, value=path)
        models = gr.update(choices=checkpoint_choices(ctx, report_roots(ctx)))  # a newly trained one shows
        if not path or path == shown_report:
            return (listing, models, *(gr.skip() for _ in open_outputs))
        return (listing, models, *open_report(path, request))

    return TabLoad(load, [report, opened], [report, run_checkpoint, *open_outputs])
