"""The dashboard: dataset statistics and review progress as Plotly charts.

Every bar carries its label (category axes list each name, and a horizontal chart grows with the number
of rows so none is dropped), votes are shown per named annotator, and the word-count histograms of the
levels share their bins and are normalised to each level's total, so the levels can be compared.
The numbers come from `core.annotate.stats` (dataset) and `review.stats` (progress); this module draws.
The model versions table (each trained checkpoint, what it was trained on, its eval scores) comes from
`core.train.registry`.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from app.context import AppContext
from app.review_tab import TabLoad, acting_user
from core.annotate import stats
from core.annotate.document import SceneAnnotation
from core.data.densescan import DenseScanRecord, read_densescan
from core.train.registry import COLUMNS, model_table
from review.stats import VOTES, queue_by_status, votes_by_action, votes_per_day

CATEGORY_ROWS = 40  # categories shown (the most frequent); the title says how many there are


ROW_PX = 22  # height of one row of a horizontal bar chart: enough for its label
HEIGHT = 320
ACTION_COLORS = {"approve": "#2e7d32", "edit": "#1565c0", "reject": "#c62828"}
WORD_BIN = 2  # words per histogram bin: every level uses the same bins
# the model versions table (`core.train.registry.COLUMNS`): the scores get the room, counts stay narrow
MODEL_COLUMN_WIDTHS = ("16%", "9%", "9%", "6%", "7%", "5%", "28%", "12%", "8%")


def label(name: str) -> str:
    return str(name).replace("_", " ")


def _category_axis(names: list[str]) -> dict[str, Any]:
    """An axis that shows every name (Plotly would otherwise drop labels when they crowd)."""
    ticks = [label(n) for n in names]
    return {"type": "category", "tickmode": "array", "tickvals": names, "ticktext": ticks, "automargin": True}


def count_axis(largest: float, title: str = "") -> dict[str, Any]:
    """An axis of counts: whole-number ticks from zero (no 0.5 votes)."""
    return {"title": title, "rangemode": "tozero", "tick0": 0, "dtick": max(1, math.ceil(largest / 6))}


def _bar(counts: dict[str, int], title: str, horizontal: bool = False, value_title: str = "") -> go.Figure:
    names, values = list(counts), list(counts.values())
    if horizontal:
        names, values = names[::-1], values[::-1]  # the largest on top
        figure = go.Figure(go.Bar(y=names, x=values, orientation="h", text=values, textposition="auto"))
        figure.update_yaxes(**_category_axis(names))
        figure.update_xaxes(**count_axis(max(values, default=0), value_title))
        return _layout(figure, title, height=max(HEIGHT, 90 + ROW_PX * len(names)))
    figure = go.Figure(go.Bar(x=names, y=values, text=values, textposition="auto"))
    figure.update_xaxes(**_category_axis(names))
    figure.update_yaxes(**count_axis(max(values, default=0), value_title))
    return _layout(figure, title)


def _layout(figure: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    figure.update_layout(title=title, height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return figure


def word_bins(lengths: dict[str, list[int]], size: int = WORD_BIN) -> dict[str, float]:
    """One set of histogram bins for every level (start, end, size), so the levels can be compared."""
    longest = max((max(v) for v in lengths.values() if v), default=size)
    return {"start": 0, "end": (longest // size + 1) * size, "size": size}


def words_figure(records: list[DenseScanRecord]) -> go.Figure:
    """Words per caption, one histogram per level over the same bins, each in % of its level's captions."""
    lengths = stats.words_per_caption(records)
    bins = word_bins(lengths)
    figure = go.Figure(
        [
            go.Histogram(
                x=v, name=f"{level} ({len(v)})", xbins=bins, bingroup="words", histnorm="percent", opacity=0.6
            )
            for level, v in sorted(lengths.items())
        ]
    )
    figure.update_layout(barmode="overlay", showlegend=True, legend_title_text="level (captions)")
    figure.update_xaxes(title="words per caption", range=[bins["start"], bins["end"]])
    figure.update_yaxes(title="% of the level's captions")
    return _layout(figure, "words per caption, by level")


def annotator_figure(rows: list[Any]) -> go.Figure:
    """Active votes per named annotator, split into approve / edit / reject."""
    per_user = votes_by_action(rows, "user")
    names = list(per_user)
    figure = go.Figure(
        [
            go.Bar(name=a, x=names, y=[per_user[n][a] for n in names], marker_color=ACTION_COLORS[a])
            for a in map(str, VOTES)
        ]
    )
    figure.update_layout(barmode="stack", showlegend=True)
    figure.update_xaxes(**_category_axis(names))
    figure.update_yaxes(**count_axis(max((sum(c.values()) for c in per_user.values()), default=0), "votes"))
    return _layout(figure, "votes per annotator")


def dataset_figures(records: list[DenseScanRecord], docs: list[SceneAnnotation]) -> list[go.Figure]:
    """Captions per level, words per caption, categories, verification outcomes."""
    verdicts = stats.claim_verdicts(docs)
    kinds = list(verdicts)
    outcome = go.Figure(
        [
            go.Bar(name=verdict, x=kinds, y=[verdicts[k].get(verdict, 0) for k in kinds])
            for verdict in ("supported", "contradicted", "unverifiable")
        ]
    )
    outcome.update_layout(barmode="stack", showlegend=True)
    outcome.update_xaxes(**_category_axis(kinds))
    categories = stats.categories(records, top=CATEGORY_ROWS)
    shown = f"top {len(categories)} of {stats.category_count(records)}"
    statuses = stats.status_counts(records, "object")
    return [
        _bar(stats.captions_per_level(records), "captions per level", value_title="captions"),
        words_figure(records),
        _bar(categories, f"object captions per category ({shown})", horizontal=True, value_title="captions"),
        _layout(outcome, "verification claims by kind and verdict"),
        _bar(statuses, "pipeline status of object captions", value_title="captions"),
    ]


def progress_figures(ctx: AppContext) -> list[go.Figure]:
    """Queue by status, votes per day per annotator, votes per category."""
    rows = ctx.service.decision_log()
    per_user = votes_per_day(rows, "user")
    timeline = go.Figure(
        [
            go.Scatter(x=[str(d) for d in days], y=list(days.values()), name=user, mode="lines+markers")
            for user, days in per_user.items()
        ]
    )
    timeline.update_xaxes(type="date", tickformat="%Y-%m-%d", dtick=86_400_000)  # whole days only
    timeline.update_layout(showlegend=True, legend_title_text="annotator")  # named even when alone
    most = max((n for days in per_user.values() for n in days.values()), default=0)
    timeline.update_yaxes(**count_axis(most, "votes"))
    per_category = {name: sum(days.values()) for name, days in votes_per_day(rows, "category").items()}
    per_category = dict(sorted(per_category.items(), key=lambda kv: -kv[1]))
    return [
        _bar(queue_by_status(ctx.service.stats()), "items by review status", value_title="items"),
        _layout(timeline, "votes per day per annotator"),
        annotator_figure(rows),
        _bar(per_category, "votes per category", horizontal=True, value_title="votes"),
    ]


def read_records(ctx: AppContext) -> list[DenseScanRecord]:
    path = ctx.annotations / "densescan.json" if ctx.annotations else None
    if path is None or not path.is_file():
        return []
    return read_densescan(path)


def model_versions() -> pd.DataFrame:
    """One row per checkpoint under the model folders (`core.train.registry`), newest first."""
    return pd.DataFrame(model_table(), columns=list(COLUMNS))


def build_dashboard_tab(ctx: AppContext) -> TabLoad:
    refresh = gr.Button("Refresh")
    with gr.Row():
        level_plot, words_plot = gr.Plot(elem_id="dashboard-levels"), gr.Plot(elem_id="dashboard-words")
    with gr.Row():
        category_plot = gr.Plot(elem_id="dashboard-categories")
        with gr.Column():
            outcome_plot, status_plot = gr.Plot(), gr.Plot()
    gr.Markdown("### Review progress")
    with gr.Row():
        queue_plot, timeline_plot = gr.Plot(), gr.Plot()
    with gr.Row():
        annotator_plot = gr.Plot(elem_id="dashboard-annotators")
        votes_plot = gr.Plot(elem_id="dashboard-votes-category")
    gr.Markdown(
        "### Model versions\nCheckpoints under `models/`, `runs/`, `assets/` (and `$DENSESCAN_MODELS`): "
        "what each was trained on and the scores of the `python -m core eval` reports in its `eval/` folder."
    )
    models_table = gr.Dataframe(
        elem_id="dashboard-models", interactive=False, wrap=True, column_widths=list(MODEL_COLUMN_WIDTHS)
    )
    outputs = [
        level_plot,
        words_plot,
        category_plot,
        outcome_plot,
        status_plot,
        queue_plot,
        timeline_plot,
        annotator_plot,
        votes_plot,
        models_table,
    ]

    def load(request: gr.Request) -> list[go.Figure | pd.DataFrame]:
        acting_user(ctx, request)
        docs = [d for d in (ctx.doc(s) for s in ctx.scene_ids()) if d is not None]
        return [*dataset_figures(read_records(ctx), docs), *progress_figures(ctx), model_versions()]

    refresh.click(load, None, outputs, api_name="dashboard")
    return TabLoad(load, [], outputs)
