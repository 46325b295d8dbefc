"""3D and BEV views of a scene: which points to send, how to colour them, and the Plotly figure.

A browser draws Plotly's Scatter3d comfortably up to about 60k points, so a view keeps the selected
object at full resolution and voxel-downsamples the rest of the scene to fit the budget. Positions and
colours travel as compact typed arrays: float32 positions and, per point, an index into a palette of the
colours in use (a discrete colorscale), instead of one colour string per point.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import plotly.graph_objects as go

from core.scene.geometry import voxel_downsample
from core.scene.render import BEVImage
from core.scene.scannet import Scene

MAX_POINTS = 60_000
LAYERS = ("rgb", "instances", "semantic", "superpoints")
HIGHLIGHT_RGB = np.array([255, 140, 0], dtype=np.float32)  # the selected object's tint
UNLABELLED_RGB = np.array([200, 200, 200], dtype=np.uint8)


@dataclass
class PointSelection:
    """Vertex indices of one view: the object (full resolution) and the downsampled background."""

    object_indices: np.ndarray
    background_indices: np.ndarray

    @property
    def total(self) -> int:
        return len(self.object_indices) + len(self.background_indices)


class SceneView:
    """Per-scene precomputation (the background voxel sample), shared by every view of the scene."""

    def __init__(self, scene: Scene, max_points: int = MAX_POINTS):
        self.scene = scene
        self.max_points = max_points

    @cached_property
    def background_sample(self) -> np.ndarray:
        """Vertex indices, one per voxel, at the finest voxel size keeping about 80% of the budget."""
        vertices = self.scene.mesh.vertices
        budget = int(self.max_points * 0.8)
        if len(vertices) <= budget:
            return np.arange(len(vertices))
        voxel = 0.02
        while True:
            kept, _ = voxel_downsample(vertices, voxel)
            if len(kept) <= budget:
                return np.sort(kept)
            voxel *= 1.25

    def select(self, object_id: int | None) -> PointSelection:
        """The object's vertices (capped at half the budget) and background voxels outside the object."""
        vertex_instance = self.scene.vertex_instance
        if object_id is None or object_id < 0:
            obj = np.zeros(0, dtype=np.int64)
        else:
            obj = np.flatnonzero(vertex_instance == object_id)
        cap = self.max_points // 2
        if len(obj) > cap:  # a huge object (a wall): keep an even subsample of it
            obj = obj[np.linspace(0, len(obj) - 1, cap).astype(np.int64)]
        background = self.background_sample
        if len(obj):
            background = background[vertex_instance[background] != object_id]
        room = self.max_points - len(obj)
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
    def semantic_ids(self) -> np.ndarray:
        """(N,) one id per category name (-1 unannotated), so one colour per category."""
        names = sorted({inst.label for inst in self.scene.instances})
        out = np.full(self.scene.mesh.num_vertices, -1, dtype=np.int64)
        for inst in self.scene.instances:
            out[inst.vertex_indices] = names.index(inst.label)
        return out


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
        colorscale = [[i / (len(palette) - 1), _css(c)] for i, c in enumerate(rgb)]
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


def _points_trace(xyz: np.ndarray, colors: np.ndarray, size: float, name: str, hover: bool) -> go.Scatter3d:
    index, colorscale = palette_encode(colors)
    return go.Scatter3d(
        x=xyz[:, 0].astype(np.float32),
        y=xyz[:, 1].astype(np.float32),
        z=xyz[:, 2].astype(np.float32),
        mode="markers",
        name=name,
        marker={
            "size": size,
            "color": index,
            "colorscale": colorscale,
            "cmin": 0,
            "cmax": max(len(colorscale) - 1, 1),
            "showscale": False,
        },
        hoverinfo="name" if hover else "skip",
        showlegend=False,
    )


def box_trace(box: np.ndarray, name: str) -> go.Scatter3d:
    """The wireframe of an axis-aligned box [cx, cy, cz, dx, dy, dz]."""
    centre, size = np.asarray(box[:3], dtype=np.float32), np.asarray(box[3:6], dtype=np.float32)
    lo, hi = centre - size / 2, centre + size / 2
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    edges = [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7)]
    path: list[list[float]] = []
    for a, b in edges:
        path += [list(corners[a]), list(corners[b]), [np.nan] * 3]
    line = np.array(path, dtype=np.float32)
    return go.Scatter3d(
        x=line[:, 0],
        y=line[:, 1],
        z=line[:, 2],
        mode="lines",
        line={"color": "rgb(255,110,0)", "width": 5},
        name=name,
        hoverinfo="skip",
        showlegend=False,
    )


def scene_figure(
    view: SceneView,
    object_id: int | None,
    layer: str = "rgb",
    title: str = "",
    height: int = 480,
) -> go.Figure:
    """The scene as points, the object (if any) highlighted with its box; `uirevision` keeps the camera
    while the same scene is shown, so switching layers or objects only recolours."""
    selection = view.select(object_id)
    vertices = view.scene.mesh.vertices
    colors = view.layer_colors(layer)
    has_object = len(selection.object_indices) > 0
    background_colors = colors[selection.background_indices]
    traces = [
        _points_trace(
            vertices[selection.background_indices],
            dim(background_colors) if has_object else background_colors,
            1.6,
            "scene",
            hover=False,
        )
    ]
    if has_object and object_id is not None:
        label = _label_of(view.scene, object_id)
        obj_colors = colors[selection.object_indices]
        traces.append(
            _points_trace(
                vertices[selection.object_indices],
                tint(obj_colors) if layer == "rgb" else obj_colors,
                2.4,
                f"{label} ({object_id})",
                hover=True,
            )
        )
        box = _box_of(view.scene, object_id)
        if box is not None:
            traces.append(box_trace(box, label))
    figure = go.Figure(data=traces)
    figure.update_layout(
        title={"text": title, "font": {"size": 13}} if title else None,
        height=height,
        margin={"l": 0, "r": 0, "t": 28 if title else 0, "b": 0},
        uirevision=view.scene.scene_id,
        scene={
            "aspectmode": "data",
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "zaxis": {"visible": False},
            "camera": {"eye": {"x": 0.9, "y": -1.3, "z": 1.1}},
        },
        paper_bgcolor="white",
    )
    return figure


def _label_of(scene: Scene, object_id: int) -> str:
    for inst in scene.instances:
        if inst.object_id == object_id:
            return inst.label
    return "object"


def _box_of(scene: Scene, object_id: int) -> np.ndarray | None:
    for info in scene.objects():
        if info.object_id == object_id:
            return np.asarray(info.box)
    return None


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
