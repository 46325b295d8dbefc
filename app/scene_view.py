"""3D and BEV views of a scene: which points to send, how to colour them, where the camera looks, and the
Plotly figure.

A browser draws Plotly's Scatter3d comfortably up to about 60k points, and Chromium's software WebGL (no
GPU) much less, so a view keeps the selected object at full resolution (up to a cap) and
voxel-downsamples the rest of the scene to fit a budget: `MAX_POINTS` for the explorer, the lighter
`REVIEW_POINTS` for the review workspace, where every decision draws a new item. The figure is written
straight to Plotly JSON (returned as Gradio `PlotData`), with positions and colour indices as base64
typed arrays and one shared colour scale, so building and sending a view stays cheap.

The points are split into one trace per instance (or per category on the semantic layer): hover names
the class and id at no per-point cost, the instance and semantic layers get a legend, and the review
view can cut away what stands between its camera and the object. Camera positions are given in
Plotly's scene coordinates: with fixed axis ranges, the data box maps onto `[-aspect/2, aspect/2]`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from gradio.components.plot import PlotData

from core.scene.geometry import voxel_downsample
from core.scene.render import BEVImage
from core.scene.scannet import Scene

MAX_POINTS = 60_000  # the explorer's budget
REVIEW_POINTS = 12_000  # the review view's budget: an item is drawn at every decision
LAYERS = ("rgb", "instances", "semantic", "superpoints")
HIGHLIGHT_RGB = np.array([255, 140, 0], dtype=np.float32)  # the selected object's tint
UNLABELLED_RGB = np.array([200, 200, 200], dtype=np.uint8)
CUT_AWAY_LABELS = frozenset({"ceiling"})  # never drawn in an object view: they hide the room from above
CAMERA_ELEVATION = np.radians(35.0)  # the object view looks down at the object by this angle
ROOM_MARGIN = 0.15  # metres the camera keeps from the room's bounds
POINT_SIZE = 2.5  # pixels: Scatter3d markers keep their screen size when zooming
OBJECT_POINT_SIZE = 3.5
PALETTE_LEVELS = 16  # colour quantisation per channel for the shared colour scale
# WebGL draws a "circle" marker as a many-sided glyph and a "square" as two triangles: in software
# WebGL (no GPU) squares draw the same view about twice as fast, and at 2-4 px look the same
MARKER_SYMBOL = "square"


@dataclass
class PointSelection:
    """Vertex indices of one view: the object (full resolution) and the downsampled background."""

    object_indices: np.ndarray
    background_indices: np.ndarray

    @property
    def total(self) -> int:
        return len(self.object_indices) + len(self.background_indices)


class SceneView:
    """Per-scene precomputation (background voxel samples, labels, bounds), shared by every view."""

    def __init__(self, scene: Scene, max_points: int = MAX_POINTS):
        self.scene = scene
        self.max_points = max_points
        self._samples: dict[int, np.ndarray] = {}

    def sample(self, budget: int) -> np.ndarray:
        """Vertex indices, one per voxel, at the finest voxel size keeping about 80% of `budget`."""
        if budget not in self._samples:
            vertices = self.scene.mesh.vertices
            keep = int(budget * 0.8)
            if len(vertices) <= keep:
                self._samples[budget] = np.arange(len(vertices))
            else:
                voxel = 0.02
                while True:
                    kept, _ = voxel_downsample(vertices, voxel)
                    if len(kept) <= keep:
                        self._samples[budget] = np.sort(kept)
                        break
                    # a surface keeps about 1 / voxel^2 points: jump close to the size that fits
                    voxel *= max(1.05, float(np.sqrt(len(kept) / keep)) * 1.02)
        return self._samples[budget]

    @property
    def background_sample(self) -> np.ndarray:
        return self.sample(self.max_points)

    def select(self, object_id: int | None, budget: int | None = None) -> PointSelection:
        """The object's vertices (capped at half the budget) and background voxels outside the object."""
        budget = budget or self.max_points
        vertex_instance = self.scene.vertex_instance
        if object_id is None or object_id < 0:
            obj = np.zeros(0, dtype=np.int64)
        else:
            obj = np.flatnonzero(vertex_instance == object_id)
        cap = budget // 2
        if len(obj) > cap:  # a huge object (a wall): keep an even subsample of it
            obj = obj[np.linspace(0, len(obj) - 1, cap).astype(np.int64)]
        background = self.sample(budget)
        if len(obj):
            background = background[vertex_instance[background] != object_id]
        room = budget - len(obj)
        if len(background) > room:
            background = background[np.linspace(0, len(background) - 1, room).astype(np.int64)]
        return PointSelection(obj, background)

    def layer_colors(self, layer: str) -> np.ndarray:
        """(N, 3) uint8 colour of every vertex for one of `LAYERS`."""
        if layer == "rgb":
            return self.scene.mesh.colors
        if layer == "instances":
            return ids_to_colors(self.scene.vertex_instance)
        if layer == "semantic":
            return ids_to_colors(self.semantic_ids)
        if layer == "superpoints":
            return ids_to_colors(self.scene.superpoints)
        raise ValueError(f"unknown layer {layer!r} (one of {', '.join(LAYERS)})")

    @cached_property
    def category_names(self) -> list[str]:
        return sorted({inst.label for inst in self.scene.instances})

    @cached_property
    def semantic_ids(self) -> np.ndarray:
        """(N,) one id per category name (-1 unannotated), so one colour per category."""
        names = self.category_names
        out = np.full(self.scene.mesh.num_vertices, -1, dtype=np.int64)
        for inst in self.scene.instances:
            out[inst.vertex_indices] = names.index(inst.label)
        return out

    @cached_property
    def labels(self) -> dict[int, str]:
        """object id -> raw label."""
        return {inst.object_id: inst.label for inst in self.scene.instances}

    @cached_property
    def boxes(self) -> dict[int, np.ndarray]:
        return {info.object_id: np.asarray(info.box, dtype=np.float64) for info in self.scene.objects()}

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) corners of the scene, padded by 2% so no point sits on the edge of the box."""
        vertices = self.scene.mesh.vertices
        lo, hi = vertices.min(0).astype(np.float64), vertices.max(0).astype(np.float64)
        pad = np.maximum((hi - lo) * 0.02, 0.05)
        return lo - pad, hi + pad


# colours ----------------------------------------------------------------------------------------------


def ids_to_colors(ids: np.ndarray) -> np.ndarray:
    """A stable, well-spread colour per integer id (golden-ratio hues); grey for negative ids."""
    ids = np.asarray(ids, dtype=np.int64)
    hue = (ids * 0.618033988749895) % 1.0
    rgb = hsv_to_rgb(hue, 0.65, 0.95)
    rgb[ids < 0] = UNLABELLED_RGB
    return rgb


def hsv_to_rgb(h: np.ndarray, s: float, v: float) -> np.ndarray:
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack(
        [
            np.stack([np.full_like(f, v), t, np.full_like(f, p)], -1),
            np.stack([q, np.full_like(f, v), np.full_like(f, p)], -1),
            np.stack([np.full_like(f, p), np.full_like(f, v), t], -1),
            np.stack([np.full_like(f, p), q, np.full_like(f, v)], -1),
            np.stack([t, np.full_like(f, p), np.full_like(f, v)], -1),
            np.stack([np.full_like(f, v), np.full_like(f, p), q], -1),
        ],
        axis=0,
    )
    rgb = np.take_along_axis(table, i[None, :, None], axis=0)[0]
    return (rgb * 255).round().astype(np.uint8)


def palette_encode(colors: np.ndarray, levels: int = 32) -> tuple[np.ndarray, list[list[object]]]:
    """Quantise (N, 3) uint8 colours and return (per-point palette index, Plotly discrete colorscale)."""
    step = 256 // levels
    quantised = (np.asarray(colors, dtype=np.uint8) // step).astype(np.int64)
    codes = (quantised[:, 0] * levels + quantised[:, 1]) * levels + quantised[:, 2]
    palette, index = np.unique(codes, return_inverse=True)
    rgb = np.stack([palette // (levels * levels), (palette // levels) % levels, palette % levels], -1)
    rgb = rgb * step + step // 2
    if len(palette) == 1:
        colorscale = [[0.0, _css(rgb[0])], [1.0, _css(rgb[0])]]
    else:
        colorscale = [[round(i / (len(palette) - 1), 6), _css(c)] for i, c in enumerate(rgb)]
    dtype = np.uint8 if len(palette) <= 256 else np.uint16
    return index.reshape(-1).astype(dtype), colorscale


def _css(rgb: np.ndarray) -> str:
    return f"rgb({int(rgb[0])},{int(rgb[1])},{int(rgb[2])})"


def dim(colors: np.ndarray, amount: float = 0.55) -> np.ndarray:
    """Blend colours towards light grey so the highlighted object stands out."""
    grey = np.array([235, 235, 235], dtype=np.float32)
    return (colors.astype(np.float32) * (1 - amount) + grey * amount).astype(np.uint8)


def tint(colors: np.ndarray, amount: float = 0.45) -> np.ndarray:
    return (colors.astype(np.float32) * (1 - amount) + HIGHLIGHT_RGB * amount).astype(np.uint8)


# camera -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """Where the object view's camera stands (world coordinates, metres) and what it looks at."""

    eye: np.ndarray
    target: np.ndarray


def frame_object(view: SceneView, object_id: int) -> Framing | None:
    """A camera inside the room, on the object's room-centre side, looking down at it from a distance
    that grows with the object's size; None when the object has no box."""
    box = view.boxes.get(object_id)
    if box is None:
        return None
    lo, hi = view.bounds
    centre, size = box[:3], box[3:6]
    room_centre = (lo + hi) / 2
    towards = room_centre[:2] - centre[:2]
    if np.linalg.norm(towards) < 0.1:
        towards = np.array([0.0, -1.0])
    towards = towards / np.linalg.norm(towards)
    distance = float(np.clip(1.6 * np.linalg.norm(size) + 0.8, 1.2, 4.5))
    direction = np.array([*(towards * np.cos(CAMERA_ELEVATION)), np.sin(CAMERA_ELEVATION)])
    eye = centre + direction * distance
    eye = np.clip(eye, lo + ROOM_MARGIN, hi - ROOM_MARGIN)  # stay inside the room
    return Framing(eye, centre.copy())


def to_scene_coords(view: SceneView, point: np.ndarray) -> dict[str, float]:
    """A world point in Plotly's scene coordinates (the box maps onto [-aspect/2, aspect/2])."""
    lo, hi = view.bounds
    aspect = _aspect(view)
    scaled = (np.asarray(point, dtype=np.float64) - (lo + hi) / 2) / (hi - lo) * aspect
    return {"x": round(float(scaled[0]), 4), "y": round(float(scaled[1]), 4), "z": round(float(scaled[2]), 4)}


def _aspect(view: SceneView) -> np.ndarray:
    lo, hi = view.bounds
    return (hi - lo) / float(np.max(hi - lo))


def cameras(view: SceneView, framing: Framing | None) -> dict[str, dict[str, Any]]:
    """The presets: `object` (the framing), `top` (the room from above) and `reset` (the whole room)."""
    aspect = _aspect(view)
    reset = {  # from above one corner, high enough to see over the walls into the room
        "eye": {"x": 0.55, "y": -0.85, "z": 1.35},
        "center": {"x": 0.0, "y": 0.0, "z": -0.15},
        "up": {"x": 0, "y": 0, "z": 1},
    }
    top = {
        "eye": {"x": 0.0, "y": 0.0, "z": round(float(max(aspect[0], aspect[1]) * 1.6), 3)},
        "center": {"x": 0.0, "y": 0.0, "z": 0.0},
        "up": {"x": 0, "y": 1, "z": 0},
    }
    out = {"reset": reset, "top": top}
    if framing is not None:
        out["object"] = {
            "eye": to_scene_coords(view, framing.eye),
            "center": to_scene_coords(view, framing.target),
            "up": {"x": 0, "y": 0, "z": 1},
        }
    return out


def cut_away(points: np.ndarray, framing: Framing, object_box: np.ndarray) -> np.ndarray:
    """Mask of the points that stand between the camera and the object (a cylinder around the line of
    sight, from just before the camera to just short of the object's box): they are left out."""
    eye, target = framing.eye, framing.target
    sight = target - eye
    length = float(np.linalg.norm(sight))
    if length < 1e-6:
        return np.zeros(len(points), dtype=bool)
    axis = sight / length
    rel = points - eye
    along = rel @ axis
    radial = np.linalg.norm(rel - np.outer(along, axis), axis=1)
    radius = 0.5 * float(np.linalg.norm(object_box[3:6])) + 0.25
    stop = length - 0.5 * float(np.max(object_box[3:6])) - 0.1
    return (along > -0.3) & (along < stop) & (radial < radius)


# the figure -------------------------------------------------------------------------------------------


def typed(values: np.ndarray, dtype: str) -> dict[str, str]:
    """A Plotly.js typed array (`{dtype, bdata}`): base64 bytes instead of a JSON number list."""
    array = np.ascontiguousarray(np.asarray(values).astype(dtype))
    code = {"float32": "f4", "uint8": "u1", "uint16": "u2", "int32": "i4"}[str(array.dtype)]
    return {"dtype": code, "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def _xyz(points: np.ndarray) -> dict[str, dict[str, str]]:
    points = np.round(points, 3)  # millimetres: nothing finer shows
    return {axis: typed(points[:, i], "float32") for i, axis in enumerate("xyz")}


def _group_traces(
    view: SceneView,
    indices: np.ndarray,
    palette_index: np.ndarray,
    layer: str,
    size: float,
    coloraxis: str,
    keep: np.ndarray | None,
) -> list[dict[str, Any]]:
    """One trace per instance (per category on the semantic layer) of the given vertices."""
    vertices = view.scene.mesh.vertices
    by_category = layer == "semantic"
    keys = view.semantic_ids[indices] if by_category else view.scene.vertex_instance[indices]
    traces = []
    for key in np.unique(keys):
        members = keys == key
        if keep is not None:
            members &= keep
        if not members.any():
            continue
        if key < 0:
            name = "unannotated"
        elif by_category:
            name = view.category_names[int(key)]
        else:
            name = f"{view.labels.get(int(key), 'object')} · id {int(key)}"
        if not by_category and key >= 0 and view.labels.get(int(key)) in CUT_AWAY_LABELS:
            continue
        traces.append(
            {
                "type": "scatter3d",
                "mode": "markers",
                "name": name,
                **_xyz(vertices[indices[members]]),
                "marker": {
                    "size": size,
                    "symbol": MARKER_SYMBOL,
                    "color": typed(palette_index[members], "uint16"),
                    "coloraxis": coloraxis,
                },
                "hovertemplate": f"{_escape_template(name)}<extra></extra>",
                "showlegend": layer in ("instances", "semantic"),
                "legendgroup": name,
            }
        )
    return traces


def _escape_template(text: str) -> str:
    """Plotly hovertemplates read `%{...}`; a name is shown literally."""
    return text.replace("%", "%%").replace("<", "&lt;").replace(">", "&gt;")


BOX_EDGES = ((0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7))


def box_path(box: Any) -> dict[str, list[float | None]]:
    """The 12 edges of an axis-aligned box [cx, cy, cz, dx, dy, dz] as one Scatter3d line path (x, y, z;
    a gap between edges), rounded to the millimetre."""
    centre, size = np.asarray(box[:3], dtype=np.float64), np.asarray(box[3:6], dtype=np.float64)
    lo, hi = centre - size / 2, centre + size / 2
    corners = [
        [round(float(v), 3) for v in (x, y, z)]
        for x in (lo[0], hi[0])
        for y in (lo[1], hi[1])
        for z in (lo[2], hi[2])
    ]
    path: list[list[float | None]] = []
    for a, b in BOX_EDGES:
        path += [corners[a], corners[b], [None] * 3]
    return {axis: [point[i] for point in path] for i, axis in enumerate("xyz")}


def _box_trace(box: np.ndarray, name: str) -> dict[str, Any]:
    """The object's box in the explorer / review view: orange, no hover, no legend entry."""
    return {
        "type": "scatter3d",
        "mode": "lines",
        **box_path(box),
        "line": {"color": "rgb(255,110,0)", "width": 5},
        "name": f"{name} (box)",
        "hoverinfo": "skip",
        "showlegend": False,
    }


def _coloraxis(colorscale: list[list[object]]) -> dict[str, Any]:
    return {"colorscale": colorscale, "cmin": 0, "cmax": max(len(colorscale) - 1, 1), "showscale": False}


def _room_scene(view: SceneView, camera: Any) -> dict[str, Any]:
    """The 3D scene of a room figure: true proportions, hidden axes fixed to the room, orbit drag."""
    lo, hi = view.bounds
    aspect = _aspect(view)
    axis = {"visible": False, "autorange": False}
    return {
        "aspectmode": "manual",
        "aspectratio": {"x": float(aspect[0]), "y": float(aspect[1]), "z": float(aspect[2])},
        "xaxis": {**axis, "range": [float(lo[0]), float(hi[0])]},
        "yaxis": {**axis, "range": [float(lo[1]), float(hi[1])]},
        "zaxis": {**axis, "range": [float(lo[2]), float(hi[2])]},
        "camera": camera,
        "dragmode": "orbit",
    }


def _camera_buttons(presets: dict[str, Any], at_top: bool) -> dict[str, Any]:
    """The object / top / reset camera buttons, in the figure's top-left or bottom-left corner."""
    place = (
        {"y": 1.0, "yanchor": "top", "pad": {"l": 4, "t": 4}} if at_top else {"y": 0.0, "yanchor": "bottom"}
    )
    return {
        "type": "buttons",
        "direction": "right",
        "showactive": False,
        "x": 0.0,
        "xanchor": "left",
        **place,
        "bgcolor": "white",
        "font": {"size": 11},
        "buttons": [
            {"label": name, "method": "relayout", "args": [{"scene.camera": presets[name]}]}
            for name in ("object", "top", "reset")
            if name in presets
        ],
    }


def figure_spec(
    view: SceneView,
    object_id: int | None,
    layer: str = "rgb",
    title: str = "",
    height: int = 480,
    *,
    budget: int | None = None,
    framed: bool = False,
    meta: dict[str, Any] | None = None,
    uirevision: str | None = None,
) -> dict[str, Any]:
    """The view as Plotly JSON (a dict): the scene by instance, the object (if any) tinted and boxed.

    `framed` points the camera at the object from inside the room and cuts away what stands between;
    `uirevision` (default: the scene id) keeps the user's camera while it stays the same, so switching
    layers only recolours; `meta` travels with the figure (the review tab marks the item it shows)."""
    selection = view.select(object_id, budget)
    has_object = len(selection.object_indices) > 0 and object_id is not None
    colors = view.layer_colors(layer)
    background_colors = colors[selection.background_indices]
    if has_object:
        background_colors = dim(background_colors)
    object_colors = colors[selection.object_indices]
    if layer == "rgb":
        object_colors = tint(object_colors)
    palette_index, colorscale = palette_encode(
        np.concatenate([background_colors, object_colors]), PALETTE_LEVELS
    )
    n_background = len(selection.background_indices)
    framing = frame_object(view, object_id) if framed and has_object else None
    keep = None
    if framing is not None:
        vertices = view.scene.mesh.vertices[selection.background_indices]
        keep = ~cut_away(vertices, framing, view.boxes[object_id])
    traces = _group_traces(
        view, selection.background_indices, palette_index[:n_background], layer, POINT_SIZE, "coloraxis", keep
    )
    if has_object:
        label = view.labels.get(object_id, "object")
        name = f"{label} · id {object_id} (this item)" if framed else f"{label} · id {object_id}"
        traces.append(
            {
                "type": "scatter3d",
                "mode": "markers",
                "name": name,
                **_xyz(view.scene.mesh.vertices[selection.object_indices]),
                "marker": {
                    "size": OBJECT_POINT_SIZE,
                    "symbol": MARKER_SYMBOL,
                    "color": typed(palette_index[n_background:], "uint16"),
                    "coloraxis": "coloraxis",
                },
                "hovertemplate": f"{_escape_template(name)}<extra></extra>",
                "showlegend": layer in ("instances", "semantic"),
            }
        )
        box = view.boxes.get(object_id)
        if box is not None:
            traces.append(_box_trace(box, label))
    presets = cameras(view, framing)
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"} if title else None,
        "height": height,
        "margin": {"l": 0, "r": 0, "t": 30 if title else 4, "b": 0},
        "uirevision": uirevision or view.scene.scene_id,
        "coloraxis": _coloraxis(colorscale),
        "showlegend": layer in ("instances", "semantic"),
        "legend": {"itemsizing": "constant", "font": {"size": 11}, "bgcolor": "rgba(255,255,255,0.7)"},
        "hoverlabel": {"namelength": -1},
        "scene": _room_scene(view, presets.get("object", presets["reset"])),
        "updatemenus": [_camera_buttons(presets, at_top=True)],
        "paper_bgcolor": "white",
    }
    if meta is not None:
        layout["meta"] = meta
    return {"data": traces, "layout": layout}


def scene_figure(
    view: SceneView,
    object_id: int | None,
    layer: str = "rgb",
    title: str = "",
    height: int = 480,
    **options: Any,
) -> PlotData:
    """`figure_spec` serialised for `gr.Plot` (see there for the options)."""
    spec = figure_spec(view, object_id, layer, title, height, **options)
    return PlotData(type="plotly", plot=json.dumps(spec, separators=(",", ":")))


# BEV --------------------------------------------------------------------------------------------------


def render_bev(scene: Scene, size: int = 432) -> BEVImage:
    """The top-down image of the scene with per-pixel instance ids (see `core.scene.render`)."""
    from core.scene.render import MeshRenderer

    return MeshRenderer(scene.mesh, scene.vertex_instance).render_bev(size)


def bev_picture(bev: BEVImage, object_id: int | None = None) -> np.ndarray:
    """The BEV colours (uint8 RGB), the object tinted when given."""
    image = bev.color.copy()
    if object_id is not None and object_id >= 0:
        mask = bev.instance == object_id
        image[mask] = tint(image[mask], 0.6)
    return image


def object_at(bev: BEVImage, col: int, row: int) -> int | None:
    """The object under a clicked BEV pixel, None for empty or unannotated pixels."""
    if not (0 <= row < bev.instance.shape[0] and 0 <= col < bev.instance.shape[1]):
        return None
    found = int(bev.instance[row, col])
    return found if found >= 0 else None


def room_figure(
    view: SceneView,
    traces: list[dict],
    colorscale: list,
    presets: dict[str, Any],
    camera: Any,
    title: str | None,
    height: int,
    revision: str,
    meta: dict,
) -> PlotData:
    """A whole-room 3D figure with the camera buttons (object / top / reset) under it: the layout the
    Ask-the-scene and Failure-analysis views share. `title` is HTML-escaped by the caller."""
    layout = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"} if title else None,
        "height": height,
        "margin": {"l": 0, "r": 0, "t": 30 if title else 4, "b": 0},
        "uirevision": revision,
        "meta": meta,
        "coloraxis": _coloraxis(colorscale),
        "showlegend": True,
        "legend": {"itemsizing": "constant", "font": {"size": 12}, "bgcolor": "rgba(255,255,255,0.8)"},
        "scene": _room_scene(view, camera),
        "updatemenus": [_camera_buttons(presets, at_top=False)],
        "paper_bgcolor": "white",
    }
    return PlotData(type="plotly", plot=json.dumps({"data": traces, "layout": layout}, separators=(",", ":")))
