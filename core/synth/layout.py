"""Placement rules for synthetic rooms, and `generate_room`, the entry point that builds one whole room.

The `Planner` knows what already stands in the room and enforces the rules a real room follows: floor
furniture inside the walls and never overlapping (a chair may tuck under its own table), clear door swings,
nothing in front of windows or pictures that would cut through them, small objects resting on the top of
their support (or on an inner board of a bookcase) inside its footprint and out of every other object's box,
wall objects flush with a wall. `generate_room` asks a recipe of
`rooms` to furnish a planner, then merges every object into one mesh with baked lighting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from core.scene.mesh import Mesh, vertex_normals

from .objects import COLOR_NAMES, COLOR_RGB, Model

__all__ = ["COLOR_NAMES", "COLOR_RGB", "ROOM_TYPES", "Planner", "SynthObject", "SynthRoom", "generate_room"]

ROOM_TYPES = ("bedroom", "living room", "office", "kitchen", "bathroom", "conference room")
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1
SEATS = ("chair", "office chair", "stool", "armchair")  # may tuck under a table (`Planner.fits`)
NEAR_WALL = 0.25  # an object this close to a wall takes up that wall's space (no picture through it)
MAX_FACES = 440_000  # triangle budget of a room (render time grows with it): later, optional objects give way
# Walls are numbered counter-clockwise from wall 0 at y = 0; each one's normal into the room. An object with
# its back to wall w is turned w quarter turns, so its front (+y in its own frame) is INWARD[w].
INWARD = {0: (0.0, 1.0), 1: (-1.0, 0.0), 2: (0.0, -1.0), 3: (1.0, 0.0)}


@dataclass
class SynthObject:
    """One annotated object of a synthetic room (its geometry is the vertices with its id)."""

    object_id: int
    label: str
    color_name: str
    attributes: dict[str, str]
    support_id: int | None
    mount: str  # "floor", "wall", "on" (on support_id) or "structure"


@dataclass
class SynthRoom:
    """A furnished room in the axis-aligned frame: interior x in [0, extent[0]], y in [0, extent[1]]."""

    room_type: str
    extent: np.ndarray
    mesh: Mesh
    vertex_object: np.ndarray
    objects: list[SynthObject]
    albedo: np.ndarray | None = None  # (N, 3) uint8 vertex colors before lighting and noise


def rotate_xy(xy: np.ndarray, k: int) -> np.ndarray:
    """Points (..., 2) turned by k quarter turns counter-clockwise about +Z."""
    x, y = xy[..., 0], xy[..., 1]
    out = [(x, y), (-y, x), (-x, -y), (y, -x)][k % 4]
    return np.stack(out, axis=-1)


def facing(direction: np.ndarray | tuple[float, float]) -> int:
    """Quarter turns that make a model's front (+y) point along an axis direction."""
    key = (int(round(direction[0])), int(round(direction[1])))
    return {(0, 1): 0, (-1, 0): 1, (0, -1): 2, (1, 0): 3}[key]


def overlaps(a: Rect, b: Rect, eps: float = 1e-3) -> bool:
    return a[0] < b[2] - eps and b[0] < a[2] - eps and a[1] < b[3] - eps and b[1] < a[3] - eps


def edge_distance(x: np.ndarray, y: np.ndarray, rect: Rect) -> np.ndarray:
    """Distance of points to the outline of a rectangle, from outside or inside.

    Contact shadows fall off with it: darkest along the outline, where they show, and not inside the
    covered part, which no camera sees (so a hidden patch does not tilt a surface's color word).
    """
    dx = np.maximum(np.maximum(rect[0] - x, x - rect[2]), 0)
    dy = np.maximum(np.maximum(rect[1] - y, y - rect[3]), 0)
    inside = np.minimum(np.minimum(x - rect[0], rect[2] - x), np.minimum(y - rect[1], rect[3] - y))
    return np.where(inside > 0, inside, np.hypot(dx, dy))


@dataclass
class Placed:
    """A model put in the room: turned by `k` quarter turns, its local origin moved to `pos`."""

    model: Model
    k: int
    pos: np.ndarray
    mount: str
    support: int | None = None
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.pos = np.asarray(self.pos, dtype=np.float64)
        lo, hi = self.model.lo, self.model.hi
        corners = rotate_xy(np.array([[lo[0], lo[1]], [hi[0], hi[1]]]), self.k)
        self.lo = np.array([*corners.min(axis=0), lo[2]]) + self.pos
        self.hi = np.array([*corners.max(axis=0), hi[2]]) + self.pos

    @property
    def rect(self) -> Rect:
        return (float(self.lo[0]), float(self.lo[1]), float(self.hi[0]), float(self.hi[1]))

    def world_vertices(self) -> np.ndarray:
        v = self.model.vertices
        xy = rotate_xy(v[:, :2], self.k)
        return np.column_stack([xy, v[:, 2]]) + self.pos

    def top_surface(self) -> tuple[float, Rect] | None:
        """World height and rectangle of the model's support surface."""
        s = self.model.surface
        if s is None:
            return None
        c = rotate_xy(np.array([[s.rect[0], s.rect[1]], [s.rect[2], s.rect[3]]]), self.k) + self.pos[:2]
        lo, hi = c.min(axis=0), c.max(axis=0)
        return float(s.z + self.pos[2]), (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


class Planner:
    """The room being furnished: extent, placed objects, and the space they claim."""

    def __init__(self, extent: np.ndarray, rng: np.random.Generator):
        self.extent = np.asarray(extent, dtype=np.float64)
        self.rng = rng
        self.items: list[Placed] = []
        self.floor: list[tuple[Rect, int]] = []
        self.keepout: list[Rect] = []
        self.spans: dict[int, list[tuple[float, float, float, float, int]]] = {w: [] for w in range(4)}
        self.tops: dict[int, list[Rect]] = {}
        self.wall_ids: dict[int, int] = {}  # wall index -> object id of that wall
        self.windows: list[int] = []  # object ids of the windows
        self.num_faces = 0

    @property
    def W(self) -> float:
        return float(self.extent[0])

    @property
    def D(self) -> float:
        return float(self.extent[1])

    @property
    def H(self) -> float:
        return float(self.extent[2])

    # ------------------------------------------------------------------------------------ walls

    def wall_length(self, wall: int) -> float:
        return self.W if wall % 2 == 0 else self.D

    def wall_point(self, wall: int, u: float, dist: float) -> np.ndarray:
        """The floor point at coordinate `u` along a wall, `dist` metres into the room."""
        return np.array([(u, dist), (self.W - dist, u), (u, self.D - dist), (dist, u)][wall])

    def wall_rect(self, wall: int, u0: float, u1: float, d0: float, d1: float) -> Rect:
        """The floor rectangle spanning [u0, u1] along a wall and [d0, d1] metres into the room."""
        (ax, ay), (bx, by) = self.wall_point(wall, u0, d0), self.wall_point(wall, u1, d1)
        return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))

    def wall_coords(self, wall: int, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float, float]:
        """(u0, u1, distance from the wall) of a box."""
        u0, u1 = (lo[0], hi[0]) if wall % 2 == 0 else (lo[1], hi[1])
        dist = [lo[1], self.W - hi[0], self.D - hi[1], lo[0]][wall]
        return float(u0), float(u1), float(dist)

    def span_free(
        self, wall: int, u0: float, u1: float, z0: float, z1: float, margin: float, ignore: Iterable[int] = ()
    ) -> bool:
        """Whether the wall area [u0, u1] x [z0, z1], grown by `margin`, is clear of what claims that wall."""
        for a0, a1, b0, b1, owner in self.spans[wall]:
            if owner in ignore:
                continue
            if (
                u0 < a1 + margin - 1e-4
                and a0 < u1 + margin - 1e-4
                and z0 < b1 + margin - 1e-4
                and b0 < z1 + margin - 1e-4
            ):
                return False
        return True

    def near_walls(self, lo: np.ndarray, hi: np.ndarray) -> Iterable[tuple[int, float, float]]:
        """(wall, u0, u1) of every wall a box is close to."""
        for wall in range(4):
            u0, u1, dist = self.wall_coords(wall, lo, hi)
            if dist < NEAR_WALL:
                yield wall, u0, u1

    # ------------------------------------------------------------------------------------ placing

    def inside(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        return bool(np.all(lo >= -1e-6) and np.all(hi <= self.extent + 1e-6))

    def floor_free(self, rect: Rect, ignore: Iterable[int] = (), keepout: bool = True) -> bool:
        ignore = set(ignore)
        if any(overlaps(rect, r) for r, owner in self.floor if owner not in ignore):
            return False
        return not (keepout and any(overlaps(rect, r) for r in self.keepout))

    def fits(
        self, item: Placed, ignore: Iterable[int] = (), keepout: bool = True, margin: float = 0.03
    ) -> bool:
        """Whether a candidate placement breaks no rule against what is already placed."""
        ignore = set(ignore)
        if self.num_faces + len(item.model.faces) > MAX_FACES or not self.inside(item.lo, item.hi):
            return False
        if item.mount != "on" and item.lo[2] < 0.1 and not self.floor_free(item.rect, ignore, keepout):
            return False
        return all(
            self.span_free(wall, u0, u1, item.lo[2], item.hi[2], margin, ignore)
            for wall, u0, u1 in self.near_walls(item.lo, item.hi)
        )

    def add(self, item: Placed) -> int:
        """Record a placement (no checks) and the floor and wall space it takes."""
        oid = len(self.items)
        self.items.append(item)
        self.num_faces += len(item.model.faces)
        if item.mount == "structure":
            return oid
        if item.mount != "on" and item.lo[2] < 0.1:
            self.floor.append((item.rect, oid))
        for wall, u0, u1 in self.near_walls(item.lo, item.hi):
            self.spans[wall].append((u0, u1, float(item.lo[2]), float(item.hi[2]), oid))
        top = self.items[item.support].top_surface() if item.support is not None else None
        if top is not None and item.lo[2] >= top[0] - 1e-6:  # on the top (not an inner board)
            self.tops.setdefault(item.support, []).append(item.rect)
        return oid

    def put(self, model: Model, k: int, pos: np.ndarray, mount: str, support: int | None = None) -> int:
        """Record a placement the caller has worked out (structure, openings) without checking it."""
        return self.add(Placed(model, k % 4, np.asarray(pos, dtype=np.float64), mount, support))

    def place(
        self,
        model: Model,
        k: int,
        xy: np.ndarray,
        z: float = 0.0,
        mount: str = "floor",
        support: int | None = None,
        ignore: Iterable[int] = (),
        keepout: bool = True,
        margin: float = 0.03,
    ) -> int | None:
        """Put a model with its box centred on `xy`, bottom at `z`, if that breaks no rule."""
        item = Placed(model, k % 4, np.array([xy[0], xy[1], z]), mount, support)
        if not self.fits(item, ignore, keepout, margin):
            return None
        return self.add(item)

    def against_wall(
        self,
        model: Model,
        wall: int,
        u: float | None = None,
        gap: float = 0.02,
        tries: int = 30,
        corner: bool = False,
        margin: float = 0.03,
    ) -> int | None:
        """Stand a model on the floor with its back to a wall, facing into the room."""
        width, depth = float(model.size[0]), float(model.size[1])
        length = self.wall_length(wall)
        lo_u, hi_u = width / 2 + gap, length - width / 2 - gap
        if hi_u < lo_u:
            return None
        for attempt in range(tries):
            if u is not None:
                cu = u + (self.rng.normal(0, 0.15 * attempt) if attempt else 0.0)
            elif corner:
                cu = (lo_u if self.rng.random() < 0.5 else hi_u) + self.rng.uniform(-0.05, 0.05) * attempt
            else:
                cu = self.rng.uniform(lo_u, hi_u)
            cu = float(np.clip(cu, lo_u, hi_u))
            oid = self.place(model, wall, self.wall_point(wall, cu, gap + depth / 2), margin=margin)
            if oid is not None:
                return oid
        return None

    def on_wall(
        self,
        model: Model,
        wall: int,
        z: float,
        u: float | None = None,
        tries: int = 30,
        gap: float = 0.0,
        margin: float = 0.12,
    ) -> int | None:
        """Hang a model flush on a wall with its bottom at height `z`."""
        width, depth = float(model.size[0]), float(model.size[1])
        length = self.wall_length(wall)
        lo_u, hi_u = width / 2 + 0.05, length - width / 2 - 0.05
        if hi_u < lo_u:
            return None
        for attempt in range(tries):
            cu = (
                self.rng.uniform(lo_u, hi_u)
                if u is None
                else u + (self.rng.normal(0, 0.1 * attempt) if attempt else 0)
            )
            cu = float(np.clip(cu, lo_u, hi_u))
            item = Placed(model, wall, np.array([*self.wall_point(wall, cu, gap + depth / 2), z]), "wall")
            if self.fits(item, margin=margin):
                return self.add(item)
        return None

    def clear_of_boxes(self, item: Placed, ignore: Iterable[int], slack: float = 0.002) -> bool:
        """Whether a small object's box stays out of every other object's box (its supports excepted):
        a bag on a chair tucked under a desk must not sink into the desk top. A seat tucked under the
        object's support is no obstacle: only its seat reaches under the top, its back stays outside."""
        ignore = set(ignore)
        tops = [self.items[i].rect for i in ignore]
        for oid, other in enumerate(self.items):
            if oid in ignore or other.mount == "structure":
                continue
            if other.model.label in SEATS and any(overlaps(other.rect, r) for r in tops):
                continue
            if np.all(np.minimum(item.hi, other.hi) - np.maximum(item.lo, other.lo) > slack):
                return False
        return True

    def on_board(self, model: Model, support: int, board: int, lx: float, ly: float) -> int | None:
        """Stand a model on inner board `board` of a bookcase or shelf unit at (lx, ly) in the support's
        own frame (its box centre), if it fits the board and the height above it. The caller lines
        models up along the board (books touch, so the wall-margin rule of `fits` does not apply)."""
        base = self.items[support]
        surface, clear = base.model.boards[board]
        x0, y0, x1, y1 = surface.rect
        sx, sy, sz = (float(v) for v in model.size)
        if sz > clear - 0.01 or lx - sx / 2 < x0 - 1e-6 or lx + sx / 2 > x1 + 1e-6:
            return None
        if ly - sy / 2 < y0 - 1e-6 or ly + sy / 2 > y1 + 1e-6:
            return None
        if self.num_faces + len(model.faces) > MAX_FACES:
            return None
        xy = rotate_xy(np.array([lx, ly]), base.k) + base.pos[:2]
        item = Placed(model, base.k, np.array([xy[0], xy[1], base.pos[2] + surface.z]), "on", support)
        if not self.clear_of_boxes(item, {support}):
            return None
        return self.add(item)

    def on_support(
        self,
        model: Model,
        support: int,
        k: int | None = None,
        along: float | None = None,
        across: float | None = None,
        tries: int = 20,
    ) -> int | None:
        """Rest a model on the top surface of another, inside its footprint, apart from what is already there.

        `along` (0 = left, 1 = right) and `across` (0 = back, 1 = front) are positions in the support's own
        frame; left out, they are drawn at random.
        """
        base = self.items[support]
        top = base.model.surface
        if top is None:
            return None
        chain, below = {support}, base.support
        while below is not None:  # a book on a book on a desk near the wall is clear of the desk's span
            chain.add(below)
            below = self.items[below].support
        k = base.k if k is None else k % 4
        size = np.abs(rotate_xy(model.size[None, :2], (k - base.k) % 4)[0])
        x0, y0, x1, y1 = top.rect
        if x1 - x0 < size[0] or y1 - y0 < size[1]:
            return None
        for attempt in range(tries):
            jitter = 0.12 * attempt / tries
            a = self.rng.random() if along is None else along + self.rng.uniform(-jitter, jitter)
            c = self.rng.random() if across is None else across + self.rng.uniform(-jitter, jitter)
            lx = x0 + size[0] / 2 + float(np.clip(a, 0, 1)) * (x1 - x0 - size[0])
            ly = y0 + size[1] / 2 + float(np.clip(c, 0, 1)) * (y1 - y0 - size[1])
            xy = rotate_xy(np.array([lx, ly]), base.k) + base.pos[:2]
            item = Placed(model, k, np.array([xy[0], xy[1], base.pos[2] + top.z]), "on", support)
            taken = self.tops.get(support, [])
            grown = (item.rect[0] - 0.02, item.rect[1] - 0.02, item.rect[2] + 0.02, item.rect[3] + 0.02)
            # a hair's margin: a cup on a counter may stand just above the next base cabinet's span
            if any(overlaps(grown, r) for r in taken) or not self.fits(item, ignore=chain, margin=0.005):
                continue
            if not self.clear_of_boxes(item, chain):
                continue
            return self.add(item)
        return None


# --------------------------------------------------------------------------------------------- lighting


def _value_noise(points: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Smooth random field in [-1, 1] (a sum of a few random plane waves): blotchy light and dirt."""
    out = np.zeros(len(points))
    for _ in range(4):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        out += np.sin(
            points @ direction * (2 * np.pi / scale) * rng.uniform(0.6, 1.6) + rng.uniform(0, 2 * np.pi)
        )
    return out / 4


def contact_shadows(plan: Planner, vertices: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """How much (0 to 0.3) each vertex is darkened by what stands on it or against it.

    The floor darkens around furniture feet, a top around the objects resting on it, a wall behind the
    furniture against it; the shadow is darkest along the object's outline and fades within centimetres.
    """
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    dark = np.zeros(len(vertices))
    floor = np.flatnonzero(owner == next(i for i, it in enumerate(plan.items) if it.model.label == "floor"))
    walls = {wall: np.flatnonzero(owner == oid) for wall, oid in plan.wall_ids.items()}
    for item in plan.items:
        if item.mount == "structure":
            continue
        if item.lo[2] < 0.05:
            d = edge_distance(x[floor], y[floor], item.rect)
            dark[floor] = np.maximum(dark[floor], 0.3 * np.exp(-d / 0.08))
        if item.support is not None:  # the top or the board it stands on
            base = np.flatnonzero((owner == item.support) & (np.abs(z - item.lo[2]) < 0.01))
            d = edge_distance(x[base], y[base], item.rect)
            dark[base] = np.maximum(dark[base], 0.25 * np.exp(-d / 0.04))
        for wall, u0, u1 in plan.near_walls(item.lo, item.hi):
            sel = walls[wall]
            u = vertices[sel, 0] if wall % 2 == 0 else vertices[sel, 1]
            d = edge_distance(u, z[sel], (u0, float(item.lo[2]), u1, float(item.hi[2])))
            dark[sel] = np.maximum(dark[sel], 0.22 * np.exp(-d / 0.08))
    return dark


def bake_lighting(
    plan: Planner,
    vertices: np.ndarray,
    normals: np.ndarray,
    owner: np.ndarray,
    albedo: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vertex colors as a scan records them: albedo under soft light from above, darker in corners and
    contacts, with blotchy light, a per-room exposure and per-vertex sensor noise.

    The light stays within about 0.9 to 1.07 of the albedo over most of a surface, so the color word of an
    object read back from its vertices matches `color_name` (see `objects.tone`).
    """
    key = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
    key /= np.linalg.norm(key)
    shade = 0.99 + 0.04 * normals[:, 2] + 0.04 * np.clip(normals @ key, 0, 1)
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    kind = np.array([item.model.label for item in plan.items])[owner]
    is_floor, is_wall = kind == "floor", kind == "wall"
    things = ~(is_floor | is_wall)
    shade[things] *= 1 - 0.22 * np.exp(-z[things] / 0.05)  # ambient occlusion near the floor
    to_wall = np.minimum.reduce([x, y, plan.W - x, plan.D - y])
    shade[is_floor] *= 1 - 0.15 * np.exp(-to_wall[is_floor] / 0.12)
    shade[is_wall] *= 1 - 0.14 * np.exp(-z[is_wall] / 0.1)
    to_corner = np.sort(np.stack([x, y, plan.W - x, plan.D - y], axis=1), axis=1)[:, 1]
    shade[is_wall] *= 1 - 0.12 * np.exp(-to_corner[is_wall] / 0.15)
    for oid, item in enumerate(plan.items):
        if item.support is not None:  # an object resting on another is darker where it touches it
            own = np.flatnonzero(owner == oid)
            shade[own] *= 1 - 0.15 * np.exp(-(z[own] - item.lo[2]) / 0.02)
    shade *= 1 - contact_shadows(plan, vertices, owner)
    shade *= 1 + 0.025 * _value_noise(vertices, rng, 2.5)
    tint = rng.uniform(0.99, 1.01, 3) * rng.uniform(0.98, 1.03)
    colors = albedo * shade[:, None] * tint
    colors *= 1 + rng.normal(0, 0.01, (len(colors), 1))
    colors += rng.normal(0, 2.0, colors.shape)
    return np.clip(np.round(colors), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------- assembly


def assemble(plan: Planner, room_type: str, rng: np.random.Generator) -> SynthRoom:
    """Merge the placed models into one mesh (no vertex shared between objects) and bake its colors."""
    verts, faces, albedo, owner = [], [], [], []
    offset = 0
    for oid, item in enumerate(plan.items):
        verts.append(item.world_vertices())
        faces.append(item.model.faces + offset)
        albedo.append(item.model.colors)
        owner.append(np.full(len(item.model.vertices), oid, dtype=np.int32))
        offset += len(item.model.vertices)
    vertices, tri = np.concatenate(verts), np.concatenate(faces)
    base, vertex_object = np.concatenate(albedo), np.concatenate(owner)
    normals = vertex_normals(vertices, tri).astype(np.float64)
    colors = bake_lighting(plan, vertices, normals, vertex_object, base, rng)
    mesh = Mesh(vertices.astype(np.float32), colors, tri.astype(np.int32))
    objects = [
        SynthObject(
            oid,
            item.model.label,
            item.model.color_name,
            dict(item.model.attributes),
            item.support,
            item.mount,
        )
        for oid, item in enumerate(plan.items)
    ]
    albedo_u8 = np.clip(np.round(base), 0, 255).astype(np.uint8)
    return SynthRoom(room_type, plan.extent.astype(np.float32), mesh, vertex_object, objects, albedo_u8)


def generate_room(rng: np.random.Generator, room_type: str | None = None) -> SynthRoom:
    """A furnished room of the given type (drawn at random when None), deterministic for a given rng state."""
    if room_type is None:
        room_type = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    if room_type not in ROOM_TYPES:
        raise ValueError(f"unknown room type {room_type!r}; expected one of {ROOM_TYPES}")
    from . import rooms  # the recipes are written against the planner above, so they load after it

    plan = Planner(rooms.room_extent(rng, room_type), rng)
    rooms.furnish(plan, rng, room_type)
    return assemble(plan, room_type, rng)
