"""The dashboard: dataset statistics and review progress as Plotly charts."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from app import stats
from app.context import AppContext
from app.progress import queue_by_status, votes_per_day
from app.review_tab import TabLoad, acting_user


def _bar(counts: dict[str, int], title: str, horizontal: bool = False) -> go.Figure:
    names, values = list(counts), list(counts.values())
    bar = go.Bar(y=names, x=values, orientation="h") if horizontal else go.Bar(x=names, y=values)
    return _layout(go.Figure(bar), title)


def _layout(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(title=title, height=320, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return figure


def dataset_figures(records: list[dict[str, Any]], docs: list[dict[str, Any]]) -> list[go.Figure]:
    """Captions per level, words per caption, categories, verification outcomes."""
    words = go.Figure(
        [go.Histogram(x=v, name=level, opacity=0.7) for level, v in stats.words_per_caption(records).items()]
    )
    words.update_layout(barmode="overlay")
    verdicts = stats.claim_verdicts(docs)
    outcome = go.Figure(
        [
            go.Bar(name=verdict, x=list(verdicts), y=[verdicts[k].get(verdict, 0) for k in verdicts])
            for verdict in ("supported", "contradicted", "unverifiable")
        ]
    )
    outcome.update_layout(barmode="stack")
    return [
        _bar(stats.captions_per_level(records), "captions per level"),
        _layout(words, "words per caption"),
        _bar(stats.categories(records), "object captions per category", horizontal=True),
        _layout(outcome, "verification claims by kind and verdict"),
        _bar(stats.pipeline_statuses(records), "pipeline status of object captions"),
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
    per_category = {name: sum(days.values()) for name, days in votes_per_day(rows, "category").items()}
    return [
        _bar(queue_by_status(ctx.service.stats()), "items by review status"),
        _layout(timeline, "votes per day per annotator"),
        _bar(per_category, "votes per category", horizontal=True),
    ]


def read_records(ctx: AppContext) -> list[dict[str, Any]]:
    path = ctx.annotations / "densescan.json" if ctx.annotations else None
    if path is None or not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def build_dashboard_tab(ctx: AppContext) -> TabLoad:
    refresh = gr.Button("Refresh")
    with gr.Row():
        level_plot, words_plot = gr.Plot(elem_id="dashboard-levels"), gr.Plot()
    with gr.Row():
        category_plot, outcome_plot, status_plot = gr.Plot(), gr.Plot(), gr.Plot()
    gr.Markdown("### Review progress")
    with gr.Row():
        queue_plot, timeline_plot, votes_plot = gr.Plot(), gr.Plot(), gr.Plot()
    outputs = [
        level_plot,
        words_plot,
        category_plot,
        outcome_plot,
        status_plot,
        queue_plot,
        timeline_plot,
        votes_plot,
    ]

    def load(request: gr.Request) -> list[go.Figure]:
        acting_user(ctx, request)
        docs = [d for d in (ctx.doc(s) for s in ctx.scene_ids()) if d is not None]
        return [*dataset_figures(read_records(ctx), docs), *progress_figures(ctx)]

    refresh.click(load, None, outputs, api_name="dashboard")
    return TabLoad(load, [], outputs)
