"""Parametrised mesh primitives for synthetic rooms.

Every primitive is a densely subdivided surface (a grid every `SPACING` metres or finer) so that a
rendered frame samples it like a scan does; all but the one-sided `plane` are closed. Triangles are wound
counter-clockwise seen from outside, and each primitive is built as whole numpy grids at once, never
vertex by vertex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPACING = 0.03  # default vertex spacing of object surfaces, metres

# The six faces of a box: (fixed axis, side, u axis, v axis) with u x v pointing outwards.
_BOX_FACES = ((0, 1, 1, 2), (0, -1, 2, 1), (1, 1, 2, 0), (1, -1, 0, 2), (2, 1, 0, 1), (2, -1, 1, 0))


@dataclass
class Part:
    """A piece of surface with its albedo: vertices (n, 3) float64, faces (m, 3) int64, colors (n, 3)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray

    def moved(self, offset: Sequence[float]) -> Part:
        return Part(self.vertices + np.asarray(offset, dtype=np.float64), self.faces, self.colors)

    def painted(self, mask: np.ndarray, color: Sequence[float]) -> Part:
        """A copy with the albedo of the masked vertices replaced (screens, stripes, tape...)."""
        colors = self.colors.copy()
        colors[mask] = np.asarray(color, dtype=np.float32)
        return Part(self.vertices, self.faces, colors)


def divisions(length: float, spacing: float = SPACING) -> int:
    """Number of grid intervals so that no interval is longer than `spacing`."""
    return max(1, int(np.ceil(length / spacing - 1e-9)))


def grid_faces(nu: int, nv: int, wrap_u: bool = False, wrap_v: bool = False) -> np.ndarray:
    """Two triangles per cell of an (nu, nv) vertex grid indexed `i * nv + j`, normal along du x dv."""
    iu = np.arange(nu if wrap_u else nu - 1)
    iv = np.arange(nv if wrap_v else nv - 1)
    i, j = np.meshgrid(iu, iv, indexing="ij")
    i, j = i.ravel(), j.ravel()
    i1, j1 = (i + 1) % nu, (j + 1) % nv
    a, b, c, d = i * nv + j, i1 * nv + j, i1 * nv + j1, i * nv + j1
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int64)


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge coincident vertices (shared grid edges, poles) and drop the triangles that collapse."""
    q = np.round((vertices - vertices.min(axis=0)) / 1e-5).astype(np.int64)  # 0.01 mm cells: no collisions
    span = q.max(axis=0) + 1
    keys = (q[:, 0] * span[1] + q[:, 1]) * span[2] + q[:, 2]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    f = inverse.reshape(-1)[faces]
    good = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    return vertices[first], f[good]


def _solid(vertices: np.ndarray, faces: np.ndarray, color: Sequence[float]) -> Part:
    colors = np.empty((len(vertices), 3), dtype=np.float32)
    colors[:] = np.asarray(color, dtype=np.float32)
    return Part(vertices, faces, colors)


def box(
    size: Sequence[float],
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    radius: float = 0.0,
    spacing: float = SPACING,
) -> Part:
    """A subdivided box; `radius` > 0 rounds its edges and corners (cushions, mattresses, pillows)."""
    half = np.asarray(size, dtype=np.float64) / 2
    lines = [np.linspace(-h, h, divisions(2 * h, spacing) + 1) for h in half]
    verts, faces, offset = [], [], 0
    for axis, side, u, v in _BOX_FACES:
        gu, gv = np.meshgrid(lines[u], lines[v], indexing="ij")
        pts = np.empty((gu.size, 3))
        pts[:, axis] = side * half[axis]
        pts[:, u], pts[:, v] = gu.ravel(), gv.ravel()
        verts.append(pts)
        faces.append(grid_faces(len(lines[u]), len(lines[v])) + offset)
        offset += len(pts)
    vertices, tri = weld(np.concatenate(verts), np.concatenate(faces))
    if radius > 0:
        radius = min(radius, float(half.min()))
        inner = half - radius
        core = np.clip(vertices, -inner, inner)
        out = vertices - core
        length = np.linalg.norm(out, axis=1, keepdims=True)
        vertices = core + out / np.where(length > 0, length, 1) * radius
    return _solid(vertices + np.asarray(center, dtype=np.float64), tri, color)


def _resample(profile: np.ndarray, spacing: float, closed: bool) -> np.ndarray:
    """Insert points along a polyline so that no segment is longer than `spacing`; corners are kept."""
    pts = np.vstack([profile, profile[:1]]) if closed else profile
    out = []
    for p, q in zip(pts[:-1], pts[1:]):
        n = divisions(float(np.linalg.norm(q - p)), spacing)
        t = np.arange(n)[:, None] / n
        out.append(p + t * (q - p))
    if not closed:
        out.append(pts[-1:])
    return np.concatenate(out)


def lathe(
    profile: Sequence[Sequence[float]],
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    scale_xy: Sequence[float] = (1.0, 1.0),
    closed: bool = False,
    spacing: float = SPACING,
    min_segments: int = 12,
) -> Part:
    """Surface of revolution about +Z of a (radius, height) profile.

    An open profile should start and end on the axis (radius 0) to close the solid; walk it bottom
    first, outwards, then up, so that normals point out. `scale_xy` stretches it into an ellipse.
    """
    prof = _resample(np.asarray(profile, dtype=np.float64), spacing, closed)
    n = max(min_segments, divisions(2 * np.pi * float(prof[:, 0].max()), spacing))
    theta = 2 * np.pi * np.arange(n) / n
    pts = np.empty((n, len(prof), 3))
    pts[..., 0] = np.cos(theta)[:, None] * prof[None, :, 0] * scale_xy[0]
    pts[..., 1] = np.sin(theta)[:, None] * prof[None, :, 0] * scale_xy[1]
    pts[..., 2] = prof[None, :, 1]
    pts = pts.reshape(-1, 3)
    vertices, faces = weld(pts, grid_faces(n, len(prof), wrap_u=True, wrap_v=closed))
    return _solid(vertices + np.asarray(center, dtype=np.float64), faces, color)


def cylinder(
    radius: float,
    height: float,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    top_radius: float | None = None,
    spacing: float = SPACING,
) -> Part:
    """A closed cylinder (or a frustum/cone with `top_radius`) standing on `center` (its bottom centre)."""
    top = radius if top_radius is None else top_radius
    profile = [(0.0, 0.0), (radius, 0.0), (top, height), (0.0, height)]
    return lathe(profile, center, color, spacing=spacing, min_segments=8 if radius < 0.03 else 12)


def ellipsoid(
    radii: Sequence[float],
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    spacing: float = SPACING,
) -> Part:
    """An ellipsoid (sphere when the radii are equal) centred on `center`."""
    rx, ry, rz = (float(r) for r in radii)
    rr = max(rx, ry)
    m = max(6, divisions(np.pi * max(rr, rz), spacing))
    phi = np.linspace(-np.pi / 2, np.pi / 2, m + 1)
    profile = np.stack([rr * np.cos(phi), rz * np.sin(phi)], axis=1)
    profile[[0, -1], 0] = 0.0
    part = lathe(profile, (0.0, 0.0, 0.0), color, scale_xy=(rx / rr, ry / rr), spacing=spacing)
    return part.moved(center)


def torus(
    major: float,
    minor: float,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    scale_xy: Sequence[float] = (1.0, 1.0),
    spacing: float = SPACING,
) -> Part:
    """A ring about +Z (toilet seats, foot rests); `scale_xy` makes it oval."""
    m = max(8, divisions(2 * np.pi * minor, spacing))
    phi = 2 * np.pi * np.arange(m) / m
    profile = np.stack([major + minor * np.cos(phi), minor * np.sin(phi)], axis=1)
    return lathe(profile, center, color, scale_xy=scale_xy, closed=True, spacing=spacing)


def cup(
    bottom_radius: float,
    top_radius: float,
    height: float,
    wall: float,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    scale_xy: Sequence[float] = (1.0, 1.0),
    spacing: float = SPACING,
) -> Part:
    """An open container with a wall of thickness `wall` (bins, pots, bowls)."""
    profile = [
        (0.0, 0.0),
        (bottom_radius, 0.0),
        (top_radius, height),
        (top_radius - wall, height),
        (bottom_radius - wall, wall),
        (0.0, wall),
    ]
    return lathe(profile, center, color, scale_xy=scale_xy, spacing=spacing)


def tray(
    size: Sequence[float],
    wall: float,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    color: Sequence[float] = (128, 128, 128),
    radius: float = 0.0,
    spacing: float = SPACING,
) -> list[Part]:
    """An open box (bottom and four walls) standing on `center`: basins, bathtubs, drawers."""
    sx, sy, sz = (float(s) for s in size)
    cx, cy, cz = (float(c) for c in center)
    r = min(radius, wall / 2)
    return [
        box((sx, sy, wall), (cx, cy, cz + wall / 2), color, r, spacing),
        box((wall, sy, sz), (cx - sx / 2 + wall / 2, cy, cz + sz / 2), color, r, spacing),
        box((wall, sy, sz), (cx + sx / 2 - wall / 2, cy, cz + sz / 2), color, r, spacing),
        box((sx - 2 * wall, wall, sz), (cx, cy - sy / 2 + wall / 2, cz + sz / 2), color, r, spacing),
        box((sx - 2 * wall, wall, sz), (cx, cy + sy / 2 - wall / 2, cz + sz / 2), color, r, spacing),
    ]


def plane(
    origin: Sequence[float],
    u_vec: Sequence[float],
    v_vec: Sequence[float],
    color: Sequence[float] = (128, 128, 128),
    spacing: float = SPACING,
) -> Part:
    """A one-sided rectangle `origin + s u + t v` (s, t in [0, 1]) facing u x v: floors and walls."""
    o, u, v = (np.asarray(a, dtype=np.float64) for a in (origin, u_vec, v_vec))
    nu, nv = (
        divisions(float(np.linalg.norm(u)), spacing) + 1,
        divisions(float(np.linalg.norm(v)), spacing) + 1,
    )
    s, t = np.meshgrid(np.linspace(0, 1, nu), np.linspace(0, 1, nv), indexing="ij")
    pts = o + s.reshape(-1, 1) * u + t.reshape(-1, 1) * v
    return _solid(pts, grid_faces(nu, nv), color)


def rotated(part: Part, angle: float, axis: int = 2, pivot: Sequence[float] = (0.0, 0.0, 0.0)) -> Part:
    """The part turned by `angle` radians about a coordinate axis through `pivot` (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    p = np.asarray(pivot, dtype=np.float64)
    v = part.vertices - p
    out = v.copy()
    out[:, a] = c * v[:, a] - s * v[:, b]
    out[:, b] = s * v[:, a] + c * v[:, b]
    return Part(out + p, part.faces, part.colors)


def without_faces(part: Part, drop: np.ndarray) -> Part:
    """The part less the flagged triangles and the vertices no remaining triangle uses (wall openings)."""
    faces = part.faces[~drop]
    used = np.zeros(len(part.vertices), dtype=bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    return Part(part.vertices[used], remap[faces], part.colors[used])


def merge(parts: Sequence[Part]) -> Part:
    """One part holding all the given parts (no vertex is shared between them)."""
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return Part(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets)]),
        np.concatenate([p.colors for p in parts]),
    )


def signed_volume(part: Part) -> float:
    """Enclosed volume, positive when the triangles face outwards (a winding check)."""
    v = part.vertices[part.faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6)


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """A third of the area of each incident triangle, per vertex: surface weight for color votes."""
    v = vertices[faces]
    area = np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1) / 2
    return np.bincount(faces.ravel(), weights=np.repeat(area / 3, 3), minlength=len(vertices))
