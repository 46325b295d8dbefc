"""The "Ask the scene" workspace: type a sentence about a scene and see Dense3D's mask light up in 3D (the
mask's points in one colour, the rest of the room dimmed), Ross3D's top candidate objects with their
probabilities (pick one to see it boxed in 3D), the frames where the chosen object is best seen, outlined,
and how long each model took; ask Ross3D a question (ScanQA, or SQA3D with a situation); and see Ross3D's
reconstructions of the scene's bird's-eye view and of masked frames beside the truth, with their scores.

Each action answers with ONE response holding every panel it changes (`AskPanels`, `ReconPanels`), so the
3D view, the candidates, the frames and the timings never disagree. The models run in `core.serve.ask`
(`ctx.models`, loaded once); a model without a checkpoint is a message in its panel, never an error page.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from html import escape
from typing import Any

import gradio as gr
import numpy as np
from gradio.components.plot import PlotData

from app import text as html
from app.context import AppContext
from app.live_plot import live_plot_block, live_plot_value
from app.review_tab import TabLoad, acting_user
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
    scene_figure,
    typed,
)
from core.serve.ask import (
    Candidate,
    GroundResult,
    MaskResult,
    ModelUnavailable,
    SceneModels,
    covered_object,
)

MASK_COLOR = "rgb(0,150,255)"  # Dense3D's mask points
BOX_COLOR = "rgb(255,110,0)"  # the chosen candidate's box
BACKGROUND_POINTS = 15_000
ASK_PLOT = "ask-3d"  # the live 3D view's block
MASK_POINTS = 8000  # mask points drawn at most (evenly subsampled; the trace name keeps the count)
TOP_K = 5
BEST_FRAMES = 3
PANEL_SIZE = 224  # reconstruction panels are shown at this size (nearest: pixels stay pixels)


@dataclass
class AskPanels:
    """What asking (or picking a candidate) shows: one field per component, same name below."""

    plot: Any
    candidates: Any  # gr.update of the candidate list
    frames: Any  # [(image, caption)] of the chosen object's best frames
    timing: str
    status: str
    shown: Any  # gr.State: what the page shows (scene, sentence, mask, candidates)


@dataclass
class ReconPanels:
    bev_truth: Any
    bev: Any
    views: Any
    scores: str


def values(panels: AskPanels | ReconPanels) -> tuple[Any, ...]:
    """The components' values; the 3D figure goes to its live plot (`app.live_plot`)."""
    out = [getattr(panels, f.name) for f in fields(panels)]
    if isinstance(panels, AskPanels):
        out[0] = live_plot_value(ASK_PLOT, panels.plot, "pick a scene")
    return tuple(out)


# the 3D view ---------------------------------------------------------------------------------------------


def _even(indices: np.ndarray, limit: int) -> np.ndarray:
    if len(indices) <= limit:
        return indices
    return indices[np.linspace(0, len(indices) - 1, limit).astype(np.int64)]


def _box_trace(box: list[float], name: str) -> dict[str, Any]:
    return {
        "type": "scatter3d",
        "mode": "lines",
        "name": name,
        **box_path(box),
        "line": {"color": BOX_COLOR, "width": 6},
        "hoverinfo": "name",
    }


def ask_figure(
    view: SceneView,
    mask: np.ndarray | None,
    candidate: Candidate | None,
    title: str = "",
    meta: dict[str, Any] | None = None,
    height: int = 520,
    box_name: str | None = None,
) -> PlotData:
    """The room dimmed, Dense3D's mask points (vertex indices) in `MASK_COLOR`, the candidate boxed."""
    instance = view.scene.vertex_instance
    vertices = view.scene.mesh.vertices
    mask = np.zeros(0, dtype=np.int64) if mask is None else np.asarray(mask, dtype=np.int64)
    background = view.sample(BACKGROUND_POINTS)
    cut = [o for o, label in view.labels.items() if label in CUT_AWAY_LABELS]
    keep = ~np.isin(instance[background], cut)
    if len(mask):
        keep &= ~np.isin(background, mask)
    background = background[keep]
    colors, colorscale = palette_encode(dim(view.scene.mesh.colors[background], 0.6), PALETTE_LEVELS)
    xyz = np.round(vertices[background], 3)
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter3d",
            "mode": "markers",
            "name": "scene (dimmed)",
            **{axis: typed(xyz[:, i], "float32") for i, axis in enumerate("xyz")},
            "marker": {
                "size": 2.5,
                "symbol": MARKER_SYMBOL,
                "color": typed(colors, "uint16"),
                "coloraxis": "coloraxis",
            },
            "hoverinfo": "skip",
            "showlegend": False,  # its palette colours would show as one arbitrary swatch
        }
    ]
    if len(mask):
        drawn = np.round(vertices[_even(mask, MASK_POINTS)], 3)
        traces.append(
            {
                "type": "scatter3d",
                "mode": "markers",
                "name": f"Dense3D mask · {len(mask)} points",
                **{axis: typed(drawn[:, i], "float32") for i, axis in enumerate("xyz")},
                "marker": {"size": 4, "symbol": MARKER_SYMBOL, "color": MASK_COLOR},
                "hovertemplate": "Dense3D mask<extra></extra>",
            }
        )
    if candidate is not None:
        label = f"Ross3D: {candidate.label} · id {candidate.object_id} ({candidate.prob:.0%})"
        traces.append(_box_trace(candidate.box, box_name or label))
    framing = frame_object(view, candidate.object_id) if candidate is not None else None
    presets = cameras(view, framing)
    return room_figure(
        view,
        traces,
        colorscale,
        presets,
        presets["reset"],
        escape(title) if title else None,
        height,
        view.scene.scene_id,
        meta or {},
    )


# the text panels -----------------------------------------------------------------------------------------


def candidate_choices(found: GroundResult | None) -> list[tuple[str, int]]:
    if found is None:
        return []
    return [
        (f"{rank}. {c.label.replace('_', ' ')} · id {c.object_id} — {c.prob:.1%}", c.object_id)
        for rank, c in enumerate(found.candidates, 1)
    ]


def timing_html(mask: MaskResult | None, found: GroundResult | None, frames_s: float | None) -> str:
    parts, data = [], []
    for name, key, seconds in (
        ("Dense3D", "dense3d", mask.seconds if mask else None),
        ("Ross3D", "ross3d", found.seconds if found else None),
        ("best frames", "frames", frames_s),
    ):
        if seconds is not None:
            parts.append(f"{name} {seconds * 1000:.0f} ms")
            data.append(f'data-{key}-ms="{seconds * 1000:.0f}"')
    text = " · ".join(parts) or "no model ran"
    return f'<div class="ask-timing" {" ".join(data)}>{text}</div>'


def status_html(mask: MaskResult | None, found: GroundResult | None, notes: list[str]) -> str:
    parts = [f'<p class="ask-note muted">{escape(n)}</p>' for n in notes]
    if mask is not None:
        points = int(mask.mask.sum())
        read = f"; reads the class <q>{escape(mask.named_class)}</q>" if mask.named_class else ""
        read += f" near a <q>{escape(mask.anchor_class)}</q>" if mask.anchor_class else ""
        parts.append(
            f'<p class="ask-dense3d" data-points="{points}"><b>Dense3D</b> answered '
            f"<q>{escape(mask.answer)}</q>: {points} points (confidence {mask.score:.2f}{read})</p>"
        )
    if found is not None:
        chosen = ", ".join(str(i) for i in found.chosen) or "none (no object wins)"
        parts.append(
            f'<p class="ask-ross3d"><b>Ross3D</b>: "no such object" {found.no_object:.1%}; '
            f"ScanRefer's rule picks {escape(chosen)}</p>"
        )
    return "".join(parts)


def models_html(models: SceneModels | None) -> str:
    if models is None:
        return '<p class="muted">no models: start the app with --dense3d DIR and --ross3d DIR</p>'
    rows = []
    for name, folder in (("dense3d", models.dense3d_dir), ("ross3d", models.ross3d_dir)):
        problem = models.missing(name)
        text = problem or f"{name}: {folder}"
        rows.append(
            f'<li class="ask-model" data-model="{name}" data-ok="{int(problem is None)}">{escape(text)}</li>'
        )
    return f'<ul class="ask-models">{"".join(rows)}</ul>'


def _panel(images: list[np.ndarray]) -> np.ndarray:
    """Images side by side at PANEL_SIZE height (nearest), a 4-pixel white gap between them."""
    from PIL import Image

    parts = []
    for image in images:
        h, w = image.shape[:2]
        size = (max(1, round(w * PANEL_SIZE / h)), PANEL_SIZE)
        parts.append(np.asarray(Image.fromarray(image).resize(size, Image.NEAREST)))
    gap = np.full((PANEL_SIZE, 4, 3), 255, dtype=np.uint8)
    row = [parts[0]]
    for part in parts[1:]:
        row += [gap, part]
    return np.concatenate(row, axis=1)


def scores_html(result: Any) -> str:
    def number(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.2f}{unit}"

    s = result.scores
    rows = [
        ("BEV PSNR (non-empty pixels)", number(s["bev_psnr"], " dB"), "bev-psnr"),
        ("BEV PSNR of its mean colour (blind baseline)", number(s["bev_mean_psnr"], " dB"), "bev-mean-psnr"),
        ("BEV latent MSE (non-empty cells)", number(s["bev_latent_mse"]), "bev-latent-mse"),
        ("masked views PSNR", number(s["view_psnr"], " dB"), "view-psnr"),
        ("masked views latent MSE", number(s["view_latent_mse"]), "view-latent-mse"),
    ]
    body = "".join(f'<tr data-score="{k}"><td>{escape(n)}</td><td>{v}</td></tr>' for n, v, k in rows)
    return (
        f'<table class="ask-scores">{body}</table><p class="muted">{result.sampler}, {result.steps} steps, '
        f"{result.seconds:.1f} s</p>"
    )


# the tab -------------------------------------------------------------------------------------------------


def build_ask_tab(ctx: AppContext) -> TabLoad:
    scenes = ctx.scene_ids()
    with gr.Row():
        scene = gr.Dropdown(
            scenes, value=scenes[0] if scenes else None, label="scene", scale=1, elem_id="ask-scene"
        )
        sentence = gr.Textbox(
            label="describe an object", placeholder="the pillow on the bed", scale=3, elem_id="ask-sentence"
        )
        go = gr.Button("Ask", variant="primary", scale=0, elem_id="ask-go")
    models = gr.HTML(models_html(ctx.models), elem_id="ask-models")
    ask: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=3):
            ask["plot"] = live_plot_block(ASK_PLOT, "Dense3D's mask and the chosen object")
        with gr.Column(scale=2):
            ask["candidates"] = gr.Radio([], label="Ross3D's candidates (pick one)", elem_id="ask-candidates")
            ask["timing"] = gr.HTML(elem_id="ask-timing")
            ask["status"] = gr.HTML(elem_id="ask-status")
    ask["frames"] = gr.Gallery(
        label="where the chosen object is best seen",
        columns=3,
        height=260,
        object_fit="contain",
        format="jpeg",
        elem_id="ask-frames",
    )
    ask["shown"] = gr.State(None)
    with gr.Accordion("Ask Ross3D a question (ScanQA; SQA3D with a situation)", open=False):
        with gr.Row():
            situation = gr.Textbox(label="situation (optional, SQA3D)", scale=2, elem_id="ask-situation")
            question = gr.Textbox(label="question", scale=2, elem_id="ask-question")
            answer_btn = gr.Button("Answer", scale=0, elem_id="ask-answer-go")
        answer = gr.HTML(elem_id="ask-answer")
    with gr.Accordion("Reconstructions (Ross3D)", open=False):
        with gr.Row():
            steps = gr.Slider(1, 50, value=10, step=1, label="sampler steps", elem_id="ask-steps")
            sampler = gr.Radio(["ddim", "ddpm"], value="ddim", label="sampler")
            seed = gr.Number(0, precision=0, label="seed (which frames are masked)")
            recon_btn = gr.Button("Reconstruct", scale=0, elem_id="ask-recon-go")
        recon: dict[str, Any] = {}
        with gr.Row():
            recon["bev_truth"] = gr.Image(label="rendered BEV", interactive=False, elem_id="ask-bev-truth")
            recon["bev"] = gr.Image(label="Ross3D's reconstruction", interactive=False, elem_id="ask-bev")
        recon["views"] = gr.Gallery(
            label="masked frames: the frame | its reconstruction",
            columns=2,
            height=280,
            object_fit="contain",
            elem_id="ask-views",
        )
        recon["scores"] = gr.HTML(elem_id="ask-scores")
    ask_outputs = [ask[f.name] for f in fields(AskPanels)]
    recon_outputs = [recon[f.name] for f in fields(ReconPanels)]

    def run_ask(scene_id: str | None, text: str, request: gr.Request):
        acting_user(ctx, request)
        return values(ask_panels(ctx, scene_id, text))

    def pick(scene_id: str | None, object_id: int | None, shown: dict | None, request: gr.Request):
        acting_user(ctx, request)
        return values(candidate_panels(ctx, scene_id, object_id, shown))

    def pick_scene(scene_id: str | None, request: gr.Request):
        acting_user(ctx, request)
        loaded = ctx.loaded(scene_id) if scene_id else None
        figure = scene_figure(loaded.view, None, "rgb", scene_id) if loaded is not None else None
        if loaded is not None and ctx.models is not None:
            ctx.models.warm_in_background(scene_id)  # the models and the scene ready before the first ask
        problem = ctx.scene_error(scene_id)
        status = html.message_html(f"scene cannot be loaded: {problem}", "error") if problem else ""
        return values(AskPanels(figure, gr.update(choices=[], value=None), [], "", status, None))

    def run_answer(scene_id: str | None, situation_text: str, question_text: str, request: gr.Request):
        acting_user(ctx, request)
        return answer_html(ctx, scene_id, question_text, situation_text)

    def run_recon(scene_id: str | None, n: float, how: str, seed_value: float, request: gr.Request):
        acting_user(ctx, request)
        return values(recon_panels(ctx, scene_id, int(n), how, int(seed_value or 0)))

    go.click(run_ask, [scene, sentence], ask_outputs, api_name="ask_scene")
    sentence.submit(run_ask, [scene, sentence], ask_outputs, api_name=False)
    ask["candidates"].input(pick, [scene, ask["candidates"], ask["shown"]], ask_outputs, api_name=False)
    scene.input(pick_scene, [scene], ask_outputs, api_name=False)
    answer_btn.click(run_answer, [scene, situation, question], answer, api_name="ask_answer")
    question.submit(run_answer, [scene, situation, question], answer, api_name=False)
    recon_btn.click(run_recon, [scene, steps, sampler, seed], recon_outputs, api_name="ask_reconstruct")

    def load(scene_id: str | None, shown: dict | None, request: gr.Request):
        """Opening the tab: the models' state, and the scene unless an answer is already shown."""
        if shown is not None:
            return (models_html(ctx.models), *(gr.skip() for _ in ask_outputs))
        return (models_html(ctx.models), *pick_scene(scene_id, request))

    return TabLoad(load, [scene, ask["shown"]], [models, *ask_outputs])


# the actions (plain functions: the tests call them) ------------------------------------------------------


def _models(ctx: AppContext) -> SceneModels:
    if ctx.models is None:
        raise gr.Error("the app was started without models (--dense3d DIR, --ross3d DIR)")
    return ctx.models


def ask_panels(ctx: AppContext, scene_id: str | None, text: str) -> AskPanels:
    """Run both models on the sentence: the mask, the candidates, the best frames of the chosen object."""
    text = (text or "").strip()
    if not scene_id:
        raise gr.Error("pick a scene first")
    if not text:
        raise gr.Error("type a sentence about an object in the scene")
    loaded = ctx.loaded(scene_id)
    if loaded is None:
        why = ctx.scene_error(scene_id) or "the app has no scans for it"
        raise gr.Error(f"scene {escape(scene_id)} cannot be loaded: {escape(why)}")
    models = _models(ctx)
    notes: list[str] = []
    mask: MaskResult | None = None
    found: GroundResult | None = None
    try:
        mask = models.segment(scene_id, text)
    except ModelUnavailable as exc:
        notes.append(str(exc))
    try:
        found = models.ground(scene_id, text, TOP_K)
    except ModelUnavailable as exc:
        notes.append(str(exc))
    vertices = np.flatnonzero(mask.mask) if mask is not None else None
    chosen = found.candidates[0] if found is not None and found.candidates else None
    box_name = None
    if chosen is None and vertices is not None and len(vertices):
        chosen = _covered_object(loaded.view, vertices)
        if chosen is not None:
            box_name = f"the mask lies mostly on: {chosen.label} · id {chosen.object_id}"
    shown = {"scene": scene_id, "sentence": text, "mask": vertices, "ground": found}
    frames, frames_s = _frames(models, scene_id, chosen)
    meta = {"ask": text, "scene": scene_id, "object": chosen.object_id if chosen else None}
    return AskPanels(
        ask_figure(loaded.view, vertices, chosen, f"{scene_id}: {text}", meta, box_name=box_name),
        gr.update(choices=candidate_choices(found), value=chosen.object_id if found and chosen else None),
        frames,
        timing_html(mask, found, frames_s),
        status_html(mask, found, notes),
        shown,
    )


def candidate_panels(
    ctx: AppContext, scene_id: str | None, object_id: int | None, shown: dict | None
) -> AskPanels:
    """Show one of the listed candidates: boxed in 3D over the same mask, and its best frames."""
    skip = gr.skip()
    if not shown or shown.get("scene") != scene_id or object_id is None or ctx.models is None:
        return AskPanels(skip, skip, skip, skip, skip, skip)
    found: GroundResult | None = shown.get("ground")
    candidates = found.candidates if found is not None else []
    chosen = next((c for c in candidates if c.object_id == int(object_id)), None)
    loaded = ctx.loaded(scene_id)
    if chosen is None or loaded is None:
        return AskPanels(skip, skip, skip, skip, skip, skip)
    frames, _ = _frames(ctx.models, scene_id, chosen)
    meta = {"ask": shown["sentence"], "scene": scene_id, "object": chosen.object_id}
    title = f"{scene_id}: {shown['sentence']}"
    return AskPanels(
        ask_figure(loaded.view, shown["mask"], chosen, title, meta), skip, frames, skip, skip, skip
    )


def _covered_object(view: SceneView, vertices: np.ndarray) -> Candidate | None:
    """The object the mask lies on most, as a candidate to show (when Ross3D cannot say which is meant)."""
    object_id = covered_object(view.scene.vertex_instance, vertices)
    box = view.boxes.get(object_id) if object_id is not None else None
    if box is None:
        return None
    return Candidate(object_id, view.labels.get(object_id, "object"), 1.0, [float(v) for v in box[:6]])


def _frames(models: SceneModels, scene_id: str, chosen: Candidate | None) -> tuple[list, float | None]:
    import time

    if chosen is None:
        return [], None
    started = time.perf_counter()
    views = models.best_views(scene_id, chosen.object_id, BEST_FRAMES)
    caption = f"{chosen.label.replace('_', ' ')} · id {chosen.object_id}"
    out = [(v.image, f"{caption} · frame {v.frame_id} · score {v.score:.2f}") for v in views]
    return out, time.perf_counter() - started


def answer_html(ctx: AppContext, scene_id: str | None, question: str, situation: str = "") -> str:
    question = (question or "").strip()
    if not scene_id or not question:
        raise gr.Error("pick a scene and type a question")
    try:
        result = _models(ctx).answer(scene_id, question, situation or "")
    except ModelUnavailable as exc:
        return f'<p class="ask-note muted">{escape(str(exc))}</p>'
    kind = "SQA3D" if (situation or "").strip() else "ScanQA"
    source = ""
    if result.source != "llm":  # say where a grounded answer's value came from
        read = {"colour": "colour of the pixels of", "count": "count of"}.get(result.source, result.source)
        names = ", ".join(f"{label.replace('_', ' ')} · id {i}" for i, label in result.objects)
        source = (
            f' <span class="ask-answer-source muted" data-source="{escape(result.source)}">'
            f"(the {read} {escape(names) or 'no object'}; the LLM said "
            f"<q>{escape(result.llm_text)}</q>)</span>"
        )
    return (
        f'<div class="ask-answer" data-kind="{kind}"><b>Ross3D ({kind})</b>: '
        f'<span class="ask-answer-text">{escape(result.text) or "(no answer)"}</span>{source} '
        f'<span class="muted">({result.seconds * 1000:.0f} ms)</span></div>'
    )


def recon_panels(ctx: AppContext, scene_id: str | None, steps: int, sampler: str, seed: int) -> ReconPanels:
    if not scene_id:
        raise gr.Error("pick a scene first")
    try:
        result = _models(ctx).reconstruct(scene_id, steps, sampler, seed)
    except ModelUnavailable as exc:
        return ReconPanels(None, None, [], f'<p class="ask-note muted">{escape(str(exc))}</p>')
    views = [
        (_panel([truth, made]), f"frame {index}: the frame | its reconstruction")
        for index, truth, made in result.views
    ]
    return ReconPanels(_panel([result.bev_truth]), _panel([result.bev]), views, scores_html(result))
