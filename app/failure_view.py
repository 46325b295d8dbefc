"""What the failure analysis tab draws for one sample: the 3D view of prediction vs truth (true positive /
false positive / false negative points, and boxes for box tasks) and the sample's text panel.

The scene is drawn in light greys, downsampled (`SceneView.sample`); each outcome is one trace with a
fixed colour, named with its count ("true positive · 812 points"), at most `KIND_POINTS` points drawn per
kind (evenly subsampled; the name keeps the full count). Every panel carries the sample's key
(`data-sample-key`, the figure's `layout.meta.sample`), so the page and the send button can tell which
sample is on screen. Every text is escaped here.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
from gradio.components.plot import PlotData

from app.scene_view import (
    CUT_AWAY_LABELS,
    MARKER_SYMBOL,
    PALETTE_LEVELS,
    SceneView,
    box_path,
    cameras,
    dim,
    frame_object,
    palette_encode,
    room_figure,
    typed,
)
from core.eval.outcomes import Outcome
from core.eval.samples import QA_TASKS, SampleTable, sample_text

KIND_NAMES = {"TP": "true positive", "FP": "false positive", "FN": "false negative"}
KIND_COLORS = {"TP": "rgb(30,170,70)", "FP": "rgb(225,40,40)", "FN": "rgb(40,100,235)"}
TARGET_COLOR = "rgb(255,140,0)"  # the target object when the task predicts no geometry
KIND_POINTS = 8000
BACKGROUND_POINTS = 12_000
POINT_SIZE, KIND_SIZE = 2.5, 4.5


def greyed(colors: np.ndarray) -> np.ndarray:
    """The scene in light greys (its brightness kept), so that only the outcome colours stand out."""
    luminance = colors.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return dim(np.repeat(luminance[:, None], 3, axis=1).astype(np.uint8), 0.45)


def _even(indices: np.ndarray, limit: int) -> np.ndarray:
    if len(indices) <= limit:
        return indices
    return indices[np.linspace(0, len(indices) - 1, limit).astype(np.int64)]


def _points(view: SceneView, indices: np.ndarray, name: str, color: str) -> dict[str, Any]:
    xyz = np.round(view.scene.mesh.vertices[_even(indices, KIND_POINTS)], 3)
    return {
        "type": "scatter3d",
        "mode": "markers",
        "name": name,
        **{axis: typed(xyz[:, i], "float32") for i, axis in enumerate("xyz")},
        "marker": {"size": KIND_SIZE, "symbol": MARKER_SYMBOL, "color": color},
        "hovertemplate": f"{escape(name)}<extra></extra>",
    }


def _box(box: list[float], name: str, color: str, dash: str = "solid") -> dict[str, Any]:
    return {
        "type": "scatter3d",
        "mode": "lines",
        "name": name,
        **box_path(box),
        "line": {"color": color, "width": 6, "dash": dash},
        "hoverinfo": "name",
    }


def box_label(role: str, kind: str, iou: float | None) -> str:
    matched = f", IoU {iou:.2f}" if iou is not None else ""
    return f"{role} box: {KIND_NAMES[kind]}{matched}"


def outcome_figure(
    view: SceneView, key: str, targets: list[int], outcome: Outcome | None, title: str = "", height: int = 520
) -> PlotData:
    """The scene dimmed, with the outcome's TP / FP / FN points and boxes (or the target objects tinted)."""
    instance = view.scene.vertex_instance
    background = view.sample(BACKGROUND_POINTS)
    cut = [o for o, label in view.labels.items() if label in CUT_AWAY_LABELS]
    background = background[~np.isin(instance[background], [*targets, *cut])]
    colors, colorscale = palette_encode(greyed(view.scene.mesh.colors[background]), PALETTE_LEVELS)
    xyz = np.round(view.scene.mesh.vertices[background], 3)
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter3d",
            "mode": "markers",
            "name": "scene (dimmed)",
            **{axis: typed(xyz[:, i], "float32") for i, axis in enumerate("xyz")},
            "marker": {
                "size": POINT_SIZE,
                "symbol": MARKER_SYMBOL,
                "color": typed(colors, "uint16"),
                "coloraxis": "coloraxis",
            },
            "hoverinfo": "skip",
        }
    ]
    if outcome is None:
        target = np.flatnonzero(np.isin(instance, targets)) if targets else np.zeros(0, dtype=np.int64)
        if len(target):
            traces.append(_points(view, target, f"target · {len(target)} points", TARGET_COLOR))
    else:
        for kind, indices in (("TP", outcome.tp), ("FP", outcome.fp), ("FN", outcome.fn)):
            traces.append(
                _points(view, indices, f"{KIND_NAMES[kind]} · {len(indices)} points", KIND_COLORS[kind])
            )
        for box, kind, iou in outcome.target_boxes:
            traces.append(_box(box, box_label("target", kind, iou), KIND_COLORS[kind], "dash"))
        for box, kind, iou in outcome.pred_boxes:
            traces.append(_box(box, box_label("predicted", kind, iou), KIND_COLORS[kind]))
    framing = frame_object(view, targets[0]) if targets else None
    presets = cameras(view, framing)
    # the whole room when there are outcomes (false positives may lie anywhere), else the object
    camera = presets["reset"] if outcome is not None else presets.get("object", presets["reset"])
    return room_figure(view, traces, colorscale, presets, camera, title, height, key, {"sample": key})


# the text panel ----------------------------------------------------------------------------------------


def _line(label: str, value: object) -> str:
    return f"<div><b>{escape(label)}:</b> {escape(str(value))}</div>"


def _number(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if number != number else f"{number:.3f}"


def detail_html(table: SampleTable, key: str, metric: str, outcome: Outcome | None) -> str:
    """The sample: its text (description, or question with the model's answer and the references), the
    metric, and for geometry tasks the IoU and TP / FP / FN counts."""
    sample = table.sample(key)
    row = table.frame.iloc[table.position(key)]
    value = table.scores[metric].iloc[table.position(key)] if metric in table.scores.columns else None
    parts = [
        f'<div class="failure-head"><b>{escape(key)}</b> · {escape(table.task)} · {escape(metric)} '
        f'<span class="failure-metric">{_number(value)}</span></div>',
        _line("scene", row["scene"]),
        _line("object", f"{row['objects'] or 'none'} ({row['class'] or 'unknown class'})"),
    ]
    if table.task in QA_TASKS or sample.get("level") == "scenario":
        if sample.get("situation"):
            parts.append(_line("situation", sample["situation"]))
        parts.append(_line("question", sample.get("question", "")))
        parts.append(_line("model answer", sample.get("prediction") or "(none)"))
        answers = [str(a) for a in sample.get("answers") or []]
        parts.append(
            "<div><b>references:</b><ul>" + "".join(f"<li>{escape(a)}</li>" for a in answers) + "</ul></div>"
        )
    else:
        text = escape(sample_text(table.task, sample))
        parts.append(f'<div class="failure-description"><b>description:</b> {text}</div>')
        if table.task in ("scan2cap", "densescan"):
            parts.append(
                _line("model caption", (sample.get("caption") or sample.get("prediction")) or "(none)")
            )
            references = [str(r) for r in sample.get("references") or []]
            parts.append(
                "<div><b>references:</b><ul>"
                + "".join(f"<li>{escape(r)}</li>" for r in references)
                + "</ul></div>"
            )
            if "best_iou" in sample:
                parts.append(_line("best proposal IoU", _number(sample["best_iou"])))
    if outcome is not None:
        counts = outcome.counts()
        iou = sample.get("iou")
        if table.task == "refseg":
            parts.append(_line("point IoU", _number(outcome.point_iou)))
        elif iou is not None:
            parts.append(_line("box IoU", _number(iou)))
        legend = " · ".join(
            f'<span class="kind-{k.lower()}" style="color:{KIND_COLORS[k]}">{KIND_NAMES[k]} {n}</span>'
            for k, n in counts.items()
        )
        parts.append(
            f'<div class="failure-counts" data-tp="{counts["TP"]}" data-fp="{counts["FP"]}" '
            f'data-fn="{counts["FN"]}"><b>points:</b> {legend}</div>'
        )
    if sample.get("missing"):
        parts.append('<div class="muted">the model gave no prediction for this sample</div>')
    return f'<div class="failure-detail" data-sample-key="{escape(key)}">{"".join(parts)}</div>'


def failures_html(extra: dict[str, Any]) -> str:
    """The model failures sent to review on an item (`review.failures`): what the model answered and why it
    was sent, for the reviewer beside the caption; "" when there are none."""
    notes = [n for n in extra.get("failures") or [] if isinstance(n, dict)]
    if not notes:
        return ""
    rows = "".join(
        f"<li><b>{escape(str(n.get('task', '')))}</b> sample {escape(str(n.get('sample_key', '')))} "
        f"({escape(str(n.get('report', '')))}): {escape(str(n.get('reason', '')))}; the model gave "
        f"<q>{escape(str(n.get('model_output', '')))}</q> (sent by {escape(str(n.get('sent_by', '?')))})</li>"
        for n in notes
    )
    return f'<div class="model-failures"><b>Sent from failure analysis:</b><ul>{rows}</ul></div>'
