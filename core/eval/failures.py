"""Failure analysis over a `SampleTable`: worst-first views, filters and per-attribute breakdowns of the
metric.

Attributes are put in named bins (`BINS`: half-open intervals [lo, hi), so 0.5 m is "0.5-1 m"); a sample
whose attribute is unknown (no scans, no target object) falls in the bin "unknown". A filter keeps the
rows whose bin (or class / group) is the chosen one; `ALL` keeps everything. The table is sorted by the
chosen metric, worst first (ascending; a missing score counts as the worst), ties by key; the breakdowns
are computed over the same filtered rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.eval.samples import SampleTable

ALL = "all"
UNKNOWN = "unknown"
SHOWN_COLUMNS = ("key", "scene", "objects", "class", "group", "words", "size", "visible", "distractors")


@dataclass(frozen=True)
class Bins:
    """Edges of half-open bins over one numeric column, with a label per bin."""

    column: str
    title: str
    edges: tuple[float, ...]
    labels: tuple[str, ...]  # len(edges) + 1

    def label(self, value: float) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return UNKNOWN
        return self.labels[int(np.searchsorted(self.edges, value, side="right"))]

    @property
    def choices(self) -> tuple[str, ...]:
        return (*self.labels, UNKNOWN)


BINS = {
    bins.column: bins
    for bins in (
        Bins(
            "size", "object size (longest side)", (0.5, 1.0, 2.0), ("< 0.5 m", "0.5-1 m", "1-2 m", ">= 2 m")
        ),
        Bins(
            "visible", "share of the object seen", (0.25, 0.5, 0.75), ("< 25%", "25-50%", "50-75%", ">= 75%")
        ),
        Bins("words", "description length (words)", (10, 20, 40), ("< 10", "10-19", "20-39", ">= 40")),
        Bins("distractors", "same-class distractors", (1, 2, 3), ("0", "1", "2", ">= 3")),
    )
}


@dataclass(frozen=True)
class SampleFilter:
    """The chosen value of each filter (`ALL`: no restriction)."""

    category: str = ALL
    group: str = ALL
    size: str = ALL
    visible: str = ALL
    words: str = ALL
    distractors: str = ALL
    failing_below: float | None = None  # keep only samples whose metric is below this

    def binned(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in BINS if getattr(self, name) != ALL}


def with_bins(table: SampleTable) -> pd.DataFrame:
    """The table's frame with one `<column> bin` label column per attribute of `BINS`."""
    frame = table.frame.copy()
    for name, bins in BINS.items():
        frame[f"{name} bin"] = [bins.label(v) for v in frame[name]]
    return frame


def metric_values(table: SampleTable, metric: str) -> pd.Series:
    """The metric per row (NaN where a sample lacks it); a KeyError names an unknown metric."""
    if metric not in table.scores.columns:
        raise KeyError(f"{table.path}: no per-sample score {metric!r} (one of {', '.join(table.metrics)})")
    return table.scores[metric]


def filtered(table: SampleTable, metric: str, chosen: SampleFilter | None = None) -> pd.DataFrame:
    """The rows the filter keeps, in report order, with the bin columns and the metric (named as it is)."""
    chosen = chosen or SampleFilter()
    frame = with_bins(table)
    frame[metric] = metric_values(table, metric)
    keep = np.ones(len(frame), dtype=bool)
    if chosen.category != ALL:
        keep &= (frame["class"] == chosen.category).to_numpy()
    if chosen.group != ALL:
        keep &= (frame["group"] == chosen.group).to_numpy()
    for name, label in chosen.binned().items():
        keep &= (frame[f"{name} bin"] == label).to_numpy()
    if chosen.failing_below is not None:
        keep &= (frame[metric].fillna(-math.inf) < chosen.failing_below).to_numpy()
    return frame[keep]


def select(table: SampleTable, metric: str, chosen: SampleFilter | None = None) -> pd.DataFrame:
    """The filtered rows, worst first: `SHOWN_COLUMNS` plus the metric (named as it is) and the text."""
    frame = filtered(table, metric, chosen)
    order = frame.assign(_worst=frame[metric].fillna(-math.inf)).sort_values(["_worst", "key"], kind="stable")
    return order[[*SHOWN_COLUMNS, metric, "prediction", "text"]].reset_index(drop=True)


def breakdown(
    table: SampleTable, metric: str, by: str, chosen: SampleFilter | None = None, top: int = 20
) -> pd.DataFrame:
    """Mean metric and sample count (samples with a score) per value of `by` ("class", "group" or a `BINS`
    name) over the rows the filter keeps, in bin order (classes and groups: the `top` most frequent)."""
    frame = filtered(table, metric, chosen)
    if by in BINS:
        keys, order = frame[f"{by} bin"], list(BINS[by].choices)
    elif by in ("class", "group"):
        keys = frame[by].replace("", UNKNOWN)
        order = list(keys.value_counts().sort_index().sort_values(ascending=False, kind="stable").index[:top])
    else:
        raise KeyError(f"cannot break down by {by!r} (class, group or one of {', '.join(BINS)})")
    values = pd.DataFrame({"key": keys, "value": frame[metric]})
    grouped = values.groupby("key")["value"].agg(["mean", "count"])
    present = [k for k in order if k in grouped.index]
    rows = [(k, float(grouped.at[k, "mean"]), int(grouped.at[k, "count"])) for k in present]
    return pd.DataFrame(rows, columns=[by, "mean", "count"])


def choices(table: SampleTable, column: str) -> list[str]:
    """The filter values of a column: `ALL`, then its values (bins in order, others sorted)."""
    if column in BINS:
        present = set(with_bins(table)[f"{column} bin"])
        return [ALL, *[c for c in BINS[column].choices if c in present]]
    return [ALL, *sorted(v for v in set(table.frame[column]) if v)]
