"""Room shells (textured floor, walls with openings, door, windows) and one furnishing recipe per room type.

A recipe places the anchor furniture first (a bed, a couch, desks, a counter run, a bathtub, a conference
table), then what goes with it (nightstands and lamps, a coffee table and tv facing the couch, chairs at the
desks), then the rest along free walls, then small objects on tops and pictures on walls, and last the
clutter of a lived-in room: books standing on bookcase boards and stacked on desks, cups, bottles, papers,
keyboards and mice at the screens, bags and clothes on beds and chairs, shoes, bags and boxes on the floor,
cables under desks. Each is an object (an instance) of its own with a ScanNet raw label, resting on its
support. Whatever does not fit is left out, so every room obeys the planner's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from . import objects as ob
from .layout import INWARD, Planner, facing
from .shapes import Part, box, plane, without_faces

Builder = Callable[[np.random.Generator], ob.Model]

# (width range, depth range, height range) of the interior, metres.
EXTENTS = {
    "bedroom": ((3.2, 4.8), (3.4, 5.0), (2.5, 2.8)),
    "living room": ((4.2, 6.8), (4.0, 6.0), (2.5, 3.0)),
    "office": ((4.0, 6.8), (4.0, 6.2), (2.6, 3.0)),
    "kitchen": ((3.2, 5.2), (3.0, 4.8), (2.5, 2.8)),
    "bathroom": ((2.0, 3.0), (2.2, 3.2), (2.4, 2.7)),
    "conference room": ((5.2, 8.0), (4.2, 6.2), (2.6, 3.0)),
}
# Vertices of the floor and walls together (their grid spacing follows): a small room with few objects
# gets a finer shell so that every room is about as dense as a scan.
STRUCTURE_VERTICES = {"bathroom": 85_000}
WINDOWS = {"bedroom": (1, 3), "living room": (1, 4), "office": (1, 4), "kitchen": (0, 3), "bathroom": (0, 2)}
SILLS = {"bathroom": (1.3, 1.5), "kitchen": (1.0, 1.1)}  # high above a tub, above the counter


def room_extent(rng: np.random.Generator, room_type: str) -> np.ndarray:
    (w0, w1), (d0, d1), (h0, h1) = EXTENTS[room_type]
    w, d = rng.uniform(w0, w1), rng.uniform(d0, d1)
    if room_type == "conference room" and d > w:
        w, d = d, w
    return np.array([w, d, rng.uniform(h0, h1)])


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# ------------------------------------------------------------------------------------------- textures


def _planks(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, spacing: float) -> np.ndarray:
    """Brightness of a wood floor: staggered planks of varying tone, faint grain, darker seams."""
    width, length = _u(rng, 0.12, 0.2), _u(rng, 0.9, 1.8)
    row = np.floor(b / width).astype(np.int64)
    shifted = a + rng.uniform(0, length, 256)[row % 256]
    col = np.floor(shifted / length).astype(np.int64)
    out = rng.uniform(0.88, 1.1, (64, 64))[row % 64, col % 64]
    out *= 1 + 0.03 * np.sin(shifted * _u(rng, 15, 30) + row * 1.7)
    seam = (np.abs(b - np.round(b / width) * width) < 0.45 * spacing) | (
        np.abs(shifted - np.round(shifted / length) * length) < 0.45 * spacing
    )
    out[seam] *= 0.85
    return out


def _tiles(
    rng: np.random.Generator, a: np.ndarray, b: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Brightness of a tiled surface and the mask of its grout lines."""
    size = _u(rng, 0.2, 0.6)
    grout = (np.abs(a - np.round(a / size) * size) < 0.45 * spacing) | (
        np.abs(b - np.round(b / size) * size) < 0.45 * spacing
    )
    ia, ib = np.floor(a / size).astype(np.int64) % 64, np.floor(b / size).astype(np.int64) % 64
    return rng.uniform(0.97, 1.03, (64, 64))[ia, ib], grout


def _floor(rng: np.random.Generator, plan: Planner, room_type: str, spacing: float) -> ob.Model:
    """The floor as one upward-facing grid with a wood, tile or carpet pattern."""
    part = plane((0, 0, 0), (plan.W, 0, 0), (0, plan.D, 0), spacing=spacing)
    x, y = part.vertices[:, 0], part.vertices[:, 1]
    wet = room_type in ("kitchen", "bathroom")
    kind = "tiles" if wet or rng.random() < 0.2 else ("carpet" if rng.random() < 0.35 else "wood")
    if kind == "wood":
        name = ob.pick(rng, ("brown", "brown", "beige"))
        along_x = rng.random() < 0.5
        gain = _planks(rng, x if along_x else y, y if along_x else x, spacing)
        part.colors[:] = ob.tone(rng, name, 8) * gain[:, None]
    elif kind == "tiles":
        name = ob.pick(
            rng, ("white", "gray", "beige", "gray", "black") if wet else ("gray", "beige", "white")
        )
        gain, grout = _tiles(rng, x, y, spacing)
        part.colors[:] = ob.tone(rng, name, 8) * gain[:, None]
        part.colors[grout] = (part.colors[grout] + ob.tone(rng, "gray" if name != "gray" else "white", 6)) / 2
    else:
        name = ob.pick(rng, ("gray", "gray", "beige", "blue", "green", "brown"))
        part.colors[:] = ob.tone(rng, name, 8) * rng.uniform(0.93, 1.07, (len(x), 1))
    part.colors[:] = np.clip(part.colors, 0, 255)
    return ob.finish("floor", [part], {"material": kind}, recenter=False)


def _wall(
    rng: np.random.Generator,
    plan: Planner,
    wall: int,
    paint: np.ndarray,
    openings: list[tuple[float, float, float, float]],
    spacing: float,
    tiled: tuple[float, np.ndarray] | None,
    skirting: np.ndarray,
) -> ob.Model:
    """One wall: an inward-facing grid with its door/window openings cut out, and a skirting board."""
    W, D, H = plan.W, plan.D, plan.H
    origin, u_vec, v_vec = [
        ((0, 0, 0), (0, 0, H), (W, 0, 0)),
        ((W, 0, 0), (0, 0, H), (0, D, 0)),
        ((0, D, 0), (W, 0, 0), (0, 0, H)),
        ((0, 0, 0), (0, D, 0), (0, 0, H)),
    ][wall]
    part = plane(origin, u_vec, v_vec, paint, spacing)
    axis = 0 if wall % 2 == 0 else 1
    centroid = part.vertices[part.faces].mean(axis=1)
    drop = np.zeros(len(part.faces), dtype=bool)
    for u0, u1, z0, z1 in openings:
        u, z = centroid[:, axis], centroid[:, 2]
        drop |= (u > u0 + 0.01) & (u < u1 - 0.01) & (z > z0 + 0.01) & (z < z1 - 0.01)
    part = without_faces(part, drop)
    u, z = part.vertices[:, axis], part.vertices[:, 2]
    if tiled is not None:
        top, tile_rgb = tiled
        gain, grout = _tiles(rng, u, z, spacing)
        low = z <= top
        part.colors[low] = tile_rgb * gain[low, None]
        part.colors[low & grout] = np.clip(tile_rgb * 0.88, 0, 255)
    parts = [part]
    length, height, depth = plan.wall_length(wall), _u(rng, 0.06, 0.1), 0.012
    doors = sorted((u0, u1) for u0, u1, z0, _ in openings if z0 <= 0.01)
    start = 0.0
    for u0, u1 in [*doors, (length, length)]:
        if u0 - start > 0.05:
            parts.append(_skirting(plan, wall, start, u0, height, depth, skirting))
        start = u1
    return ob.finish("wall", parts, {}, recenter=False)


def _skirting(
    plan: Planner, wall: int, u0: float, u1: float, height: float, depth: float, rgb: np.ndarray
) -> Part:
    (x0, y0, x1, y1) = plan.wall_rect(wall, u0, u1, 0.0, depth)
    return box((x1 - x0, y1 - y0, height), ((x0 + x1) / 2, (y0 + y1) / 2, height / 2), rgb, spacing=0.04)


def build_shell(plan: Planner, rng: np.random.Generator, room_type: str) -> None:
    """Floor, four walls, a door and windows; the door swing is kept free of furniture."""
    W, D, H = plan.W, plan.D, plan.H
    door_wall = int(rng.integers(4))
    door_w, door_h = _u(rng, 0.8, 0.95), _u(rng, 2.0, min(2.1, H - 0.3))
    length = plan.wall_length(door_wall)
    reach = _u(rng, 0.15, 0.6) + door_w / 2 + 0.08
    door_u = reach if rng.random() < 0.5 else length - reach
    if rng.random() < 0.25:
        door_u = _u(rng, door_w / 2 + 0.2, length - door_w / 2 - 0.2)
    openings: dict[int, list[tuple[float, float, float, float]]] = {w: [] for w in range(4)}
    openings[door_wall].append((door_u - door_w / 2, door_u + door_w / 2, 0.0, door_h))

    windows = []
    small = room_type == "bathroom"
    for _ in range(int(rng.integers(*WINDOWS.get(room_type, (1, 3))))):
        wall = int(rng.integers(4))
        w = _u(rng, 0.5, 1.3) if small else _u(rng, 0.8, 1.6)
        sill = _u(rng, *SILLS.get(room_type, (0.75, 1.0)))
        h = min(_u(rng, 0.5, 0.7) if small else _u(rng, 1.0, 1.5), H - sill - 0.3)
        if plan.wall_length(wall) < w + 0.9:
            continue
        u = _u(rng, w / 2 + 0.45, plan.wall_length(wall) - w / 2 - 0.45)
        if any(u - w / 2 - 0.4 < b1 and a1 < u + w / 2 + 0.4 for a1, b1, *_ in openings[wall]):
            continue
        openings[wall].append((u - w / 2, u + w / 2, sill, sill + h))
        windows.append((wall, u, w, h, sill))

    budget = STRUCTURE_VERTICES.get(room_type, 70_000)
    spacing = float(np.clip(np.sqrt((W * D + 2 * (W + D) * H) / budget), 0.018, 0.05))
    plan.put(_floor(rng, plan, room_type, spacing), 0, np.zeros(3), "structure")
    paint_name = ob.pick(rng, ("white",) * 8 + ("beige",) * 3 + ("gray", "gray", "yellow", "green"))
    paint = ob.tone(rng, paint_name, 6)
    skirting = ob.tone(rng, ob.pick(rng, ("white", "brown", "gray")), 6)
    tiled = None
    if room_type in ("bathroom", "kitchen") and rng.random() < 0.7:
        # Tiles up to the ceiling may take any color; a lower band keeps the paint's color word, so that
        # the wall's name never hangs on how much of it is tiled.
        if rng.random() < 0.5:
            tiled = (H, ob.tone(rng, ob.pick(rng, ("white", "white", "beige", "gray", "blue", "green")), 8))
        else:
            tiled = (_u(rng, 1.0, 1.4), ob.tone(rng, paint_name, 8))
    for wall in range(4):
        model = _wall(rng, plan, wall, paint, openings[wall], spacing, tiled, skirting)
        plan.wall_ids[wall] = plan.put(model, 0, np.zeros(3), "structure")

    door = ob.door(rng, door_w, door_h)
    depth = float(door.size[1])
    plan.put(door, door_wall, np.array([*plan.wall_point(door_wall, door_u, depth / 2), 0.0]), "wall")
    plan.keepout.append(
        plan.wall_rect(door_wall, door_u - door_w / 2 - 0.15, door_u + door_w / 2 + 0.15, 0, 1.0)
    )
    for wall, u, w, h, sill in windows:
        model = ob.window(rng, w, h)
        depth = float(model.size[1])
        z = sill - (float(model.size[2]) - h)
        plan.windows.append(
            plan.put(model, wall, np.array([*plan.wall_point(wall, u, depth / 2), z]), "wall")
        )


# ---------------------------------------------------------------------------------------------- helpers


def _shuffled_walls(plan: Planner, rng: np.random.Generator, avoid: tuple[int, ...] = ()) -> list[int]:
    """The four walls in random order, the ones in `avoid` last."""
    walls = [int(w) for w in rng.permutation(4)]
    return [w for w in walls if w not in avoid] + [w for w in walls if w in avoid]


def _door_wall(plan: Planner) -> int:
    return next(item.k for item in plan.items if item.model.label == "door")


def _window_walls(plan: Planner) -> tuple[int, ...]:
    return tuple(plan.items[i].k for i in plan.windows)


def _against_any(
    plan: Planner,
    rng: np.random.Generator,
    model: ob.Model,
    avoid: tuple[int, ...] = (),
    corner: bool = False,
) -> int | None:
    """Stand a model against the first wall (in random order, `avoid` last) where it fits."""
    for wall in _shuffled_walls(plan, rng, avoid):
        oid = plan.against_wall(model, wall, corner=corner)
        if oid is not None:
            return oid
    return None


def _span(plan: Planner, oid: int) -> tuple[int, float, float]:
    """(wall, u0, u1) of an object standing against a wall (its back is on wall `k`)."""
    item = plan.items[oid]
    u0, u1, _ = plan.wall_coords(item.k, item.lo, item.hi)
    return item.k, u0, u1


def _beside(plan: Planner, model: ob.Model, oid: int, side: int, gap: float = 0.05) -> int | None:
    """Stand a model against the same wall right next to another object (side -1: lower u, +1: higher u)."""
    wall, u0, u1 = _span(plan, oid)
    half = float(model.size[0]) / 2
    u = u1 + gap + half if side > 0 else u0 - gap - half
    return plan.against_wall(model, wall, u=u, tries=3, margin=0.0)


def _on_wall_any(
    plan: Planner, rng: np.random.Generator, model: ob.Model, z: float, walls: Iterable[int] | None = None
) -> int | None:
    """Hang a model at height `z` on the first wall where it fits."""
    for wall in walls if walls is not None else _shuffled_walls(plan, rng):
        oid = plan.on_wall(model, wall, z, tries=15)
        if oid is not None:
            return oid
    return None


def _pictures(plan: Planner, rng: np.random.Generator, n: int, above: int | None = None) -> None:
    """Hang n pictures at eye height; the first centred above the object `above` if given."""
    for i in range(n):
        model = ob.picture(rng)
        z = _u(rng, 1.35, 1.75) - float(model.size[2]) / 2
        if i == 0 and above is not None:
            wall, u0, u1 = _span(plan, above)
            z = max(z, float(plan.items[above].hi[2]) + 0.2)
            if plan.on_wall(model, wall, z, u=(u0 + u1) / 2, tries=4) is not None:
                continue
        _on_wall_any(plan, rng, model, z)


def _curtains(plan: Planner, rng: np.random.Generator, chance: float) -> None:
    """Curtain panels drawn to the sides of windows, from above the window to the floor or below the sill."""
    for wid in list(plan.windows):
        if rng.random() > chance:
            continue
        window = plan.items[wid]
        wall, u0, u1 = _span(plan, wid)
        top = min(float(window.hi[2]) + _u(rng, 0.08, 0.2), plan.H - 0.05)
        bottom = 0.01 if rng.random() < 0.6 else max(0.01, float(window.lo[2]) - 0.15)
        color = ob.pick(
            rng, ("white", "white", "beige", "gray", "blue", "green", "red", "brown", "yellow", "pink")
        )
        sides = (-1, 1) if rng.random() < 0.7 else (int(rng.choice([-1, 1])),)
        for side in sides:
            width = _u(rng, 0.3, 0.55)
            model = ob.curtain(rng, width, top - bottom, color)
            u = u0 - 0.02 - width / 2 if side < 0 else u1 + 0.02 + width / 2
            xy = plan.wall_point(wall, u, 0.03 + float(model.size[1]) / 2)
            plan.place(model, wall, xy, bottom, mount="wall", margin=0.0)


def _scatter(
    plan: Planner, rng: np.random.Generator, builders: Iterable[Builder], tries: int = 1, corner: bool = True
) -> None:
    """Floor objects along free walls, preferably near corners (plants, bins, boxes...)."""
    for build in builders:
        for _ in range(tries):
            oid = _against_any(plan, rng, build(rng), corner=corner and rng.random() < 0.7)
            if oid is not None:
                if plan.items[oid].model.boards:
                    _fill_boards(plan, rng, oid)
                break


def _boxes(plan: Planner, rng: np.random.Generator, n: int) -> None:
    """Cardboard/storage boxes on the floor along walls, some stacked on each other."""
    for _ in range(n):
        oid = _against_any(plan, rng, ob.cardboard_box(rng), corner=rng.random() < 0.5)
        if oid is not None and rng.random() < 0.35:
            plan.on_support(ob.cardboard_box(rng), oid, along=0.5, across=0.5)


def _bookcase(plan: Planner, rng: np.random.Generator, build: Builder) -> int | None:
    """A bookcase or shelf unit against a free wall, its boards filled with books (`_fill_boards`)."""
    oid = _against_any(plan, rng, build(rng))
    if oid is not None:
        _fill_boards(plan, rng, oid)
    return oid


def _decorate(
    plan: Planner, rng: np.random.Generator, support: int, builders: Iterable[Builder], chance: float = 0.5
) -> None:
    """Small objects on a top, each with probability `chance`."""
    for build in builders:
        if rng.random() < chance:
            plan.on_support(build(rng), support)


def _small_plant(rng: np.random.Generator) -> ob.Model:
    return ob.plant(rng, small=True)


def _table_lamp(rng: np.random.Generator) -> ob.Model:
    return ob.lamp(rng, "table")


def _floor_lamp(rng: np.random.Generator) -> ob.Model:
    return ob.lamp(rng, "floor")


# ---------------------------------------------------------------------------------------------- clutter


def _lying_book(rng: np.random.Generator) -> ob.Model:
    return ob.book(rng, standing=False)


DESK_CLUTTER: tuple[Builder, ...] = (
    ob.paper,
    ob.paper,
    ob.mug,
    ob.bottle,
    _lying_book,
    ob.small_box,
    ob.cable,
)
TABLE_CLUTTER: tuple[Builder, ...] = (ob.mug, ob.mug, ob.bottle, ob.paper, _lying_book, ob.bag)
BEDSIDE_CLUTTER: tuple[Builder, ...] = (_lying_book, ob.mug, ob.bottle, ob.small_box)
KITCHEN_CLUTTER: tuple[Builder, ...] = (ob.bottle, ob.bottle, ob.mug, ob.mug, ob.small_box, ob.paper)
SEAT_CLUTTER: tuple[Builder, ...] = (ob.clothes, ob.bag, ob.backpack, _lying_book)
BATH_CLUTTER: tuple[Builder, ...] = (ob.bottle, ob.bottle, ob.bottle, ob.mug, ob.small_box)


def _clutter(
    plan: Planner, rng: np.random.Generator, support: int, builders: Sequence[Builder], n: int
) -> int:
    """Up to n small things drawn from `builders` resting on a support's top, often two or three of a kind
    (cups, bottles, papers); a lying book may get more books stacked on it. Returns how many were placed."""
    placed, build = 0, None
    for _ in range(n):
        if build is None or rng.random() < 0.45:
            build = builders[int(rng.integers(len(builders)))]
        oid = plan.on_support(build(rng), support, tries=8)
        if oid is None:
            continue
        placed += 1
        if build is _lying_book:
            placed += _stack_books(plan, rng, oid, int(rng.integers(0, 3)))
    return placed


def _stack_books(plan: Planner, rng: np.random.Generator, base: int, n: int) -> int:
    """Up to n more lying books, each on the one below (a smaller one fits inside its cover)."""
    placed = 0
    for _ in range(n):
        for _ in range(4):
            oid = plan.on_support(_lying_book(rng), base, along=0.5, across=0.5, tries=3)
            if oid is not None:
                break
        if oid is None:
            return placed
        base, placed = oid, placed + 1
    return placed


def _fill_boards(
    plan: Planner, rng: np.random.Generator, shelf_id: int, fill: float = 0.7, others: Sequence[Builder] = ()
) -> None:
    """Rows of books standing on the inner boards of a bookcase or shelf unit (each book an object of its
    own), with gaps, and now and then a small box or one of `others` (bottles on a bathroom shelf)."""
    model = plan.items[shelf_id].model
    for b, (surface, _) in enumerate(model.boards):
        if rng.random() > fill:
            continue
        x0, y0, x1, y1 = surface.rect
        x = x0 + _u(rng, 0.0, 0.2)
        for _ in range(1 if rng.random() < 0.65 else 2):
            for _ in range(int(rng.integers(2, 7))):
                r = rng.random()
                if others and r < 0.5:
                    item = others[int(rng.integers(len(others)))](rng)
                elif r < 0.1:
                    item = ob.small_box(rng)
                else:
                    item = ob.book(rng)
                sx, sy = float(item.size[0]), float(item.size[1])
                if x + sx > x1:
                    break
                ly = y1 - sy / 2 - _u(rng, 0.0, 0.03)  # pushed to the front edge, as people shelve books
                if plan.on_board(item, shelf_id, b, x + sx / 2, max(ly, y0 + sy / 2)) is not None:
                    x += sx + (0.002 if item.label == "book" else _u(rng, 0.02, 0.05))
            x += _u(rng, 0.08, 0.3)


def _floor_clutter(plan: Planner, rng: np.random.Generator, n: int, builders: Sequence[Builder]) -> None:
    """Things left on the floor along the walls: pairs of shoes, bags, heaps of clothes, boxes."""
    for _ in range(n):
        build = builders[int(rng.integers(len(builders)))]
        if build is ob.shoe:
            _shoe_pair(plan, rng)
        else:
            _against_any(plan, rng, build(rng), corner=rng.random() < 0.3)


def _shoe_pair(plan: Planner, rng: np.random.Generator) -> None:
    """Two shoes side by side (each an object), toes into the room."""
    seed, color = (
        int(rng.integers(1 << 30)),
        ob.pick(rng, ("black", "black", "white", "brown", "gray", "blue")),
    )
    first = _against_any(plan, rng, ob.shoe(rng, color, seed))
    if first is not None:
        _beside(plan, ob.shoe(rng, color, seed), first, int(rng.choice([-1, 1])), gap=_u(rng, 0.02, 0.06))


def _cable_under(plan: Planner, rng: np.random.Generator, desk_id: int) -> int | None:
    """A cable on the floor under the back of a desk, where the plugs are."""
    desk = plan.items[desk_id]
    model = ob.cable(rng)
    normal = np.array(INWARD[desk.k])
    along = np.array([normal[1], -normal[0]])
    width = float((desk.hi[:2] - desk.lo[:2]) @ np.abs(along))
    if width < float(model.size[0]) + 0.1:
        return None
    centre = (desk.lo[:2] + desk.hi[:2]) / 2
    depth = float((desk.hi[:2] - desk.lo[:2]) @ np.abs(normal))
    xy = centre + along * _u(rng, -0.2, 0.2) * width - normal * (depth / 2 - float(model.size[1]) / 2 - 0.03)
    return plan.place(model, desk.k, xy, ignore={desk_id}, margin=0.0)


def _chairs_around(
    plan: Planner,
    rng: np.random.Generator,
    table_id: int,
    build: Builder,
    per_side: dict[int, int],
    tuck: float = 0.12,
) -> list[int]:
    """Chairs facing a table, spread along its sides; side 0/1/2/3 = -y, +x, +y, -x of the table."""
    table = plan.items[table_id]
    placed = []
    for side, n in per_side.items():
        normal = np.array([(0, -1), (1, 0), (0, 1), (-1, 0)][side], dtype=float)
        along = np.array([normal[1], -normal[0]])
        span = (table.hi[0] - table.lo[0]) if side % 2 == 0 else (table.hi[1] - table.lo[1])
        half_depth = (table.hi[1] - table.lo[1]) / 2 if side % 2 == 0 else (table.hi[0] - table.lo[0]) / 2
        centre = (table.lo[:2] + table.hi[:2]) / 2
        for i in range(n):
            model = build(rng)
            cd = float(model.size[1])
            offset = (i + 0.5) / n - 0.5
            edge = 0.45 * span - float(model.size[0]) / 2
            t = offset * span
            if n > 1:
                t = float(np.clip(t, -edge, edge))
            clear_of_legs = abs(t) + float(model.size[0]) / 2 < span / 2 - 0.12
            tk = _u(rng, 0.0, tuck) if clear_of_legs else _u(rng, -0.15, -0.02)
            xy = centre + normal * (half_depth + cd / 2 - tk) + along * t
            oid = plan.place(model, facing(-normal), xy, ignore={table_id})
            if oid is None:
                oid = plan.place(model, facing(-normal), xy + normal * (max(tk, 0) + 0.15), ignore={table_id})
            if oid is not None:
                placed.append(oid)
    return placed


def _chair_at_desk(plan: Planner, rng: np.random.Generator, desk_id: int, model: ob.Model) -> int | None:
    """A chair in front of a desk, facing it, tucked into the leg room when it fits there."""
    desk = plan.items[desk_id]
    normal = np.array(INWARD[desk.k])
    along = np.array([normal[1], -normal[0]])  # the desk's own +x in the room
    knee_x, knee_w = desk.model.knee
    centre = (desk.lo[:2] + desk.hi[:2]) / 2 + along * knee_x
    depth = (desk.hi[:2] - desk.lo[:2]) @ np.abs(normal)
    fits_under = float(model.size[0]) < knee_w - 0.06
    for tuck in [0.12, 0.0, -0.2] if fits_under else [-0.02, -0.2]:
        xy = centre + normal * (depth / 2 + float(model.size[1]) / 2 - tuck)
        oid = plan.place(model, (desk.k + 2) % 4, xy, ignore={desk_id})
        if oid is not None:
            return oid
    return None


def _desk_setup(plan: Planner, rng: np.random.Generator, desk_id: int) -> None:
    """Screens with a keyboard and a mouse in front, or a laptop (when no screen fits: in front of a
    window, say); a lamp, clutter on the top and a cable under it."""
    r = rng.random()
    screens = []
    if r < 0.7:
        two = rng.random() < 0.25
        for along in (0.2, 0.8) if two else (_u(rng, 0.35, 0.65),):
            for across in (0.0, 0.45):  # pulled forward, clear of a window behind the desk
                screens.append(plan.on_support(ob.monitor(rng), desk_id, along=along, across=across))
                if screens[-1] is not None:
                    break
    if any(s is not None for s in screens):
        along = _u(rng, 0.4, 0.5)
        if plan.on_support(ob.keyboard(rng), desk_id, along=along, across=0.85) is not None:
            plan.on_support(ob.mouse(rng), desk_id, along=along + 0.35, across=0.85)
    elif r < 0.92:
        laptop = plan.on_support(ob.laptop(rng), desk_id, across=_u(rng, 0.5, 0.8))
        if laptop is not None and rng.random() < 0.5:
            plan.on_support(ob.mouse(rng), desk_id, across=0.8)
    if rng.random() < 0.35:
        plan.on_support(_table_lamp(rng), desk_id, along=float(rng.choice([0.0, 1.0])), across=0.0)
    _decorate(plan, rng, desk_id, (_small_plant,), 0.15)
    _clutter(plan, rng, desk_id, DESK_CLUTTER, int(rng.integers(1, 5)))
    if rng.random() < 0.5:
        _cable_under(plan, rng, desk_id)


# ---------------------------------------------------------------------------------------------- recipes


def _bedroom(plan: Planner, rng: np.random.Generator) -> None:
    avoid = (_door_wall(plan), *_window_walls(plan))
    bed = ob.bed(rng)
    bed_id = None
    for wall in _shuffled_walls(plan, rng, avoid):
        bed_id = plan.against_wall(bed, wall, u=plan.wall_length(wall) / 2 + _u(rng, -0.4, 0.4), tries=12)
        if bed_id is not None:
            break
    if bed_id is not None:
        top = plan.items[bed_id].model.surface
        room = top.rect[2] - top.rect[0]
        n = 1 if room < 1.1 else (2 if room < 1.6 else int(rng.integers(2, 4)))
        n += int(room >= 1.1 and rng.random() < 0.4)  # a second row: cushions on the pillows' width
        width = min(_u(rng, 0.5, 0.7), room / n - 0.04)
        for i in range(n):
            plan.on_support(
                ob.pillow(rng, width=width), bed_id, along=i / (n - 1) if n > 1 else 0.5, across=0.0
            )
        sides = (-1, 1) if rng.random() < 0.7 else (int(rng.choice([-1, 1])),)
        for side in sides:
            stand = _beside(plan, ob.nightstand(rng), bed_id, side, gap=_u(rng, 0.03, 0.12))
            if stand is not None:
                if rng.random() < 0.85:
                    plan.on_support(_table_lamp(rng), stand, across=0.2)
                _decorate(plan, rng, stand, (_small_plant,), 0.2)
                _clutter(plan, rng, stand, BEDSIDE_CLUTTER, int(rng.integers(1, 4)))
        if rng.random() < 0.6:
            _pictures(plan, rng, 1, above=bed_id)
    dresser = _against_any(plan, rng, ob.dresser(rng))
    if dresser is not None:
        _decorate(plan, rng, dresser, (_table_lamp, ob.cardboard_box, _small_plant), 0.35)
        _clutter(
            plan, rng, dresser, (ob.small_box, ob.bottle, _lying_book, ob.clothes), int(rng.integers(0, 3))
        )
        if rng.random() < 0.25:
            plan.on_support(ob.tv(rng, stand=True, width=_u(rng, 0.6, 0.9)), dresser, along=0.5, across=0.3)
        if rng.random() < 0.3:
            wall, u0, u1 = _span(plan, dresser)
            plan.on_wall(
                ob.mirror(rng), wall, float(plan.items[dresser].hi[2]) + 0.25, u=(u0 + u1) / 2, tries=3
            )
    if rng.random() < 0.5:
        desk = _against_any(plan, rng, ob.desk(rng, _u(rng, 0.9, 1.3)))
        if desk is not None:
            chair = ob.office_chair(rng) if rng.random() < 0.5 else ob.chair(rng)
            cid = _chair_at_desk(plan, rng, desk, chair)
            _desk_setup(plan, rng, desk)
            if cid is not None and rng.random() < 0.5:
                _clutter(plan, rng, cid, SEAT_CLUTTER, 1)
    if rng.random() < 0.4:
        _against_any(plan, rng, ob.cabinet(rng, "tall"))
    extras = [ob.trash_can] if rng.random() < 0.8 else []
    extras += [ob.plant] if rng.random() < 0.5 else []
    extras += [ob.bookshelf] if rng.random() < 0.4 else []
    extras += [ob.shelf] if rng.random() < 0.3 else []
    extras += [ob.backpack] if rng.random() < 0.3 else []
    extras += [ob.armchair] if rng.random() < 0.2 else []
    _scatter(plan, rng, extras, tries=2)
    _boxes(plan, rng, int(rng.integers(0, 4)))
    _curtains(plan, rng, 0.8)
    _pictures(plan, rng, int(rng.integers(0, 3)))
    if bed_id is not None:  # on the free foot end of the bed
        _clutter(plan, rng, bed_id, (ob.clothes, ob.clothes, _lying_book, ob.bag), int(rng.integers(1, 4)))
    _floor_clutter(plan, rng, int(rng.integers(2, 5)), (ob.shoe, ob.shoe, ob.clothes, ob.bag, ob.backpack))


def _living_room(plan: Planner, rng: np.random.Generator) -> None:
    avoid = (_door_wall(plan), *_window_walls(plan))
    couch_id = None
    for wall in _shuffled_walls(plan, rng, avoid):
        couch_id = plan.against_wall(
            ob.couch(rng), wall, u=plan.wall_length(wall) / 2 + _u(rng, -0.5, 0.5), tries=10
        )
        if couch_id is not None:
            break
    if couch_id is not None:
        _couch_group(plan, rng, couch_id)
    for _ in range(int(rng.random() < 0.7) + int(rng.random() < 0.3)):
        _bookcase(plan, rng, ob.bookshelf)
    if rng.random() < 0.3:
        shelf = _bookcase(plan, rng, ob.shelf)
        if shelf is not None:
            _decorate(plan, rng, shelf, (_small_plant, ob.cardboard_box), 0.5)
    if rng.random() < 0.3:
        cab = _against_any(plan, rng, ob.cabinet(rng, "low"))
        if cab is not None:
            _decorate(plan, rng, cab, (_small_plant, _table_lamp, ob.cardboard_box), 0.4)
    if plan.W * plan.D > 22 and rng.random() < 0.45:
        table = _meeting_table(plan, rng, ob.table(rng, "dining"), 2)
        if table is not None:
            _clutter(plan, rng, table, TABLE_CLUTTER, int(rng.integers(1, 4)))
    extras = [ob.plant] * int(rng.integers(1, 3))
    extras += [ob.trash_can] if rng.random() < 0.4 else []
    extras += [ob.stool] if rng.random() < 0.2 else []
    _scatter(plan, rng, extras, tries=2)
    _boxes(plan, rng, int(rng.integers(0, 2)))
    _curtains(plan, rng, 0.8)
    _pictures(plan, rng, int(rng.integers(1, 3)))
    _floor_clutter(
        plan, rng, int(rng.integers(1, 4)), (ob.shoe, ob.bag, ob.backpack, ob.clothes, ob.small_box)
    )


def _couch_group(plan: Planner, rng: np.random.Generator, couch_id: int) -> None:
    """Pillows on the couch, a coffee table in front, a tv facing it, armchairs, side table and lamp."""
    couch = plan.items[couch_id]
    top = couch.model.surface
    room = top.rect[2] - top.rect[0]
    n = int(np.clip(rng.integers(2, 5), 1, int(room // 0.5)))
    for i in range(n):
        plan.on_support(
            ob.pillow(rng, upright=True, width=_u(rng, 0.38, 0.48)),
            couch_id,
            along=i / max(n - 1, 1),
            across=0.0,
        )
    wall, u0, u1 = _span(plan, couch_id)
    u = (u0 + u1) / 2
    front = float(couch.model.size[1]) + 0.02
    table = ob.coffee_table(rng)
    gap = _u(rng, 0.35, 0.5)
    table_id = plan.place(table, wall, plan.wall_point(wall, u, front + gap + float(table.size[1]) / 2))
    if table_id is not None:
        _decorate(plan, rng, table_id, (_small_plant, ob.laptop), 0.3)
        _clutter(
            plan, rng, table_id, (ob.mug, ob.mug, _lying_book, ob.paper, ob.bottle), int(rng.integers(1, 4))
        )
        for side in (-1, 1):
            if rng.random() < 0.55:
                _armchair_by(plan, rng, table_id, wall, side)
    opposite = (wall + 2) % 4
    if rng.random() < 0.6:
        stand = plan.against_wall(ob.cabinet(rng, "low"), opposite, u=u, tries=8)
        if stand is not None:
            width = float(plan.items[stand].model.size[0])
            plan.on_support(
                ob.tv(rng, stand=True, width=min(width - 0.1, _u(rng, 0.8, 1.5))),
                stand,
                along=0.5,
                across=0.3,
            )
    else:
        screen = ob.tv(rng, stand=False)
        plan.on_wall(screen, opposite, _u(rng, 1.0, 1.4) - float(screen.size[2]) / 2, u=u, tries=8)
    side = int(rng.choice([-1, 1]))
    if rng.random() < 0.5:
        side_table = _beside(plan, ob.table(rng, "side"), couch_id, side)
        if side_table is not None:
            plan.on_support(_table_lamp(rng), side_table, along=0.5, across=0.5)
    else:
        _beside(plan, _floor_lamp(rng), couch_id, side)
    if rng.random() < 0.7:
        _pictures(plan, rng, 1, above=couch_id)
    if rng.random() < 0.5:
        _clutter(plan, rng, couch_id, (ob.clothes, ob.bag, _lying_book), 1)


def _armchair_by(plan: Planner, rng: np.random.Generator, table_id: int, wall: int, side: int) -> int | None:
    """An armchair at one end of the coffee table, turned to face it."""
    table = plan.items[table_id]
    model = ob.armchair(rng)
    along = np.array([1.0, 0.0]) if wall % 2 == 0 else np.array([0.0, 1.0])  # direction of growing u
    centre = (table.lo[:2] + table.hi[:2]) / 2
    half_t = float((table.hi[:2] - table.lo[:2]) @ along) / 2
    direction = along * side
    xy = centre + direction * (half_t + _u(rng, 0.25, 0.45) + float(model.size[1]) / 2)
    return plan.place(model, facing(-direction), xy)


def _office(plan: Planner, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(2, 5))):
        desk = _against_any(plan, rng, ob.desk(rng), avoid=(_door_wall(plan),))
        if desk is None:
            continue
        chair = ob.office_chair(rng) if rng.random() < 0.85 else ob.chair(rng)
        cid = _chair_at_desk(plan, rng, desk, chair)
        _desk_setup(plan, rng, desk)
        if rng.random() < 0.5:
            _beside(plan, ob.trash_can(rng), desk, int(rng.choice([-1, 1])))
        if rng.random() < 0.45:
            if cid is not None and rng.random() < 0.5:
                _clutter(plan, rng, cid, SEAT_CLUTTER, 1)
            else:
                _beside(
                    plan, ob.pick_builder(rng, (ob.backpack, ob.bag))(rng), desk, int(rng.choice([-1, 1]))
                )
    for _ in range(int(rng.integers(1, 3))):
        _bookcase(plan, rng, ob.bookshelf)
    for _ in range(int(rng.integers(1, 4))):
        cab = _against_any(plan, rng, ob.cabinet(rng, ob.pick(rng, ("file", "file", "low", "tall"))))
        if cab is not None:
            _decorate(plan, rng, cab, (_small_plant, ob.cardboard_box), 0.3)
            _clutter(plan, rng, cab, (ob.paper, ob.small_box, _lying_book, ob.mug), int(rng.integers(0, 3)))
    if rng.random() < 0.85:
        board = ob.whiteboard(rng)
        _on_wall_any(plan, rng, board, _u(rng, 0.85, 1.0))
    if plan.W * plan.D > 24 and rng.random() < 0.5:
        table = _meeting_table(plan, rng, ob.table(rng, "dining"), 2)
        if table is not None:
            _clutter(plan, rng, table, TABLE_CLUTTER, int(rng.integers(1, 4)))
    extras = [ob.plant] * int(rng.integers(1, 3)) + [ob.trash_can]
    extras += [ob.shelf] if rng.random() < 0.3 else []
    _scatter(plan, rng, extras, tries=2)
    _boxes(plan, rng, int(rng.integers(0, 4)))
    _curtains(plan, rng, 0.4)
    _pictures(plan, rng, int(rng.integers(0, 3)))
    _floor_clutter(plan, rng, int(rng.integers(1, 3)), (ob.bag, ob.backpack, ob.small_box))


def _meeting_table(
    plan: Planner, rng: np.random.Generator, table: ob.Model, max_per_side: int, chair: Builder = ob.chair
) -> int | None:
    """A free-standing table near the middle with a walkway all round, and chairs along its sides."""
    clearance = 1.25
    size = table.size[:2]
    for _ in range(25):
        k = int(rng.integers(2))
        sx, sy = (size if k == 0 else size[::-1]) / 2
        x0, x1 = sx + clearance, plan.W - sx - clearance
        y0, y1 = sy + clearance, plan.D - sy - clearance
        if x1 < x0 or y1 < y0:
            return None
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        grown = (
            cx - sx - clearance + 0.5,
            cy - sy - clearance + 0.5,
            cx + sx + clearance - 0.5,
            cy + sy + clearance - 0.5,
        )
        if not plan.floor_free(grown):
            continue
        tid = plan.place(table, k, (cx, cy))
        if tid is None:
            continue
        long_x = (size[0] > size[1]) == (k == 0)
        per_side = {0: max_per_side, 2: max_per_side} if long_x else {1: max_per_side, 3: max_per_side}
        per_side = {s: int(rng.integers(1, n + 1)) for s, n in per_side.items()}
        _chairs_around(plan, rng, tid, chair, per_side)
        return tid
    return None


def _kitchen(plan: Planner, rng: np.random.Generator) -> None:
    walls = _shuffled_walls(plan, rng, (_door_wall(plan),))
    runs = [walls[0]]
    if rng.random() < 0.6:
        runs.append(int(rng.choice([(walls[0] + 1) % 4, (walls[0] + 3) % 4])))
    color = ob.pick(rng, ("white", "beige", "brown", "gray", "black", "blue", "green"))
    height = _u(rng, 0.84, 0.88)
    upper_z = _u(rng, 1.45, 1.55)
    if rng.random() < 0.9:
        plan.against_wall(ob.refrigerator(rng), runs[0], corner=True)
    counters = []
    for wall in runs:
        counters += _counter_run(plan, rng, wall, color, height, upper_z)
    rng.shuffle(counters)
    for i, (counter, _) in enumerate(counters):
        if i == 0:
            plan.on_support(ob.sink(rng, "kitchen"), counter, across=0.3)
        if i == len(counters) - 1 or rng.random() < 0.5:
            plan.on_support(ob.microwave(rng), counter, across=0.0)
        _decorate(plan, rng, counter, (ob.cardboard_box, _small_plant), 0.3)
        _clutter(plan, rng, counter, KITCHEN_CLUTTER, int(rng.integers(2, 6)))
    if plan.W * plan.D > 12 and rng.random() < 0.75:
        size = (_u(rng, 0.8, 1.3), _u(rng, 0.7, 0.9))
        table = _meeting_table(plan, rng, ob.table(rng, "dining", size), 2)
        if table is not None:
            _clutter(plan, rng, table, TABLE_CLUTTER, int(rng.integers(1, 4)))
    n_stools = int(rng.integers(0, 3))
    for counter, wall in counters[:1]:
        for _ in range(n_stools):
            stool = ob.stool(rng)
            _, u0, u1 = _span(plan, counter)
            u = _u(rng, u0 + 0.25, u1 - 0.25) if u1 - u0 > 0.5 else (u0 + u1) / 2
            plan.place(stool, (wall + 2) % 4, plan.wall_point(wall, u, 0.72 + float(stool.size[1]) / 2))
    _scatter(plan, rng, [ob.trash_can] + ([ob.plant] if rng.random() < 0.3 else []), tries=2)
    _boxes(plan, rng, int(rng.integers(0, 2)))
    _curtains(plan, rng, 0.3)
    _pictures(plan, rng, int(rng.integers(0, 2)))
    _floor_clutter(plan, rng, int(rng.integers(0, 3)), (ob.bag, ob.small_box, ob.bottle))


def _counter_run(
    plan: Planner, rng: np.random.Generator, wall: int, color: str, height: float, upper_z: float
) -> list[tuple[int, int]]:
    """Base cabinets side by side along a wall, a counter over each unbroken run, wall cabinets above."""
    length = plan.wall_length(wall)
    groups: list[list[int]] = [[]]
    cursor = 0.02
    while cursor < length - 0.4:
        width = _u(rng, 0.4, 0.9)
        if cursor + width > length - 0.02:
            width = length - 0.02 - cursor
        model = ob.kitchen_cabinet(rng, width, color=color, height=height)
        oid = plan.against_wall(model, wall, u=cursor + float(model.size[0]) / 2, tries=1, margin=0.0)
        if oid is None:
            if groups[-1]:
                groups.append([])
            cursor += 0.1
            continue
        groups[-1].append(oid)
        cursor += float(model.size[0])
        if rng.random() < 0.7:
            upper = ob.kitchen_cabinet(rng, width, upper=True, color=color, height=_u(rng, 0.6, 0.72))
            _, u0, u1 = _span(plan, oid)
            plan.on_wall(upper, wall, upper_z, u=(u0 + u1) / 2, tries=1, margin=0.0)
    counters = []
    for group in (g for g in groups if g):
        _, u0, _ = _span(plan, group[0])
        _, _, u1 = _span(plan, group[-1])
        depth = max(float(plan.items[i].model.size[1]) for i in group) + 0.02
        counter = ob.kitchen_counter(rng, u1 - u0, depth)
        mid = (u0 + u1) / 2
        support = next(i for i in group if _span(plan, i)[1] <= mid <= _span(plan, i)[2])
        xy = plan.wall_point(wall, mid, 0.02 + float(counter.size[1]) / 2)
        top = float(plan.items[support].hi[2])
        oid = plan.place(counter, wall, xy, top, mount="on", support=support, ignore=set(group), margin=0.0)
        if oid is not None:
            counters.append((oid, wall))
    return counters


def _bathroom(plan: Planner, rng: np.random.Generator) -> None:
    tub = ob.bathtub(rng)
    walls = sorted(_shuffled_walls(plan, rng), key=lambda w: -plan.wall_length(w))
    for wall in walls:
        if plan.against_wall(tub, wall, corner=True, tries=6) is not None:
            break
    toilet = _against_any(plan, rng, ob.toilet(rng))
    if toilet is not None and rng.random() < 0.6:  # a spare bottle or box on the cistern
        _clutter(plan, rng, toilet, (ob.bottle, ob.small_box), int(rng.integers(1, 3)))
    basin = ob.sink(rng, "bathroom")
    sink_id = None
    if rng.random() < 0.6:
        width, depth = float(basin.size[0]) + _u(rng, 0.1, 0.4), float(basin.size[1]) + _u(rng, 0.08, 0.12)
        vanity = _against_any(plan, rng, ob.cabinet(rng, "vanity", width=width, depth=depth))
        if vanity is not None:
            sink_id = plan.on_support(basin, vanity, along=0.5, across=0.5)
            if rng.random() < 0.3:
                plan.on_support(_small_plant(rng), vanity)
            _clutter(plan, rng, vanity, BATH_CLUTTER, int(rng.integers(2, 5)))
    if sink_id is None:
        sink_id = _against_any(plan, rng, ob.sink(rng, "pedestal"))
    if sink_id is not None:
        item = plan.items[sink_id]
        mirror = ob.mirror(rng, width=min(float(item.model.size[0]) + _u(rng, 0.0, 0.3), 0.9))
        wall = item.k
        u0, u1, _ = plan.wall_coords(wall, item.lo, item.hi)
        plan.on_wall(mirror, wall, float(item.hi[2]) + _u(rng, 0.15, 0.3), u=(u0 + u1) / 2, tries=5)
    for _ in range(int(rng.integers(2, 5))):
        model = ob.towel(rng)
        _on_wall_any(plan, rng, model, _u(rng, 1.3, 1.6) - float(model.size[2]))
    if rng.random() < 0.8:
        shelf = _against_any(plan, rng, ob.shelf(rng))
        if shelf is not None:
            _fill_boards(plan, rng, shelf, 0.9, (ob.bottle, ob.bottle, ob.small_box, ob.mug))
            _clutter(plan, rng, shelf, BATH_CLUTTER, int(rng.integers(1, 4)))
    _scatter(plan, rng, [ob.trash_can], tries=2)
    _boxes(plan, rng, int(rng.random() < 0.2))
    _curtains(plan, rng, 0.3)
    _floor_clutter(plan, rng, int(rng.integers(1, 3)), (ob.clothes, ob.bottle, ob.shoe))


def _conference_room(plan: Planner, rng: np.random.Generator) -> None:
    length = min(_u(rng, 2.4, 4.5), plan.W - 3.2)
    width = min(_u(rng, 1.0, 1.3), plan.D - 3.0)
    table = ob.table(rng, "conference", (max(length, 1.6), max(width, 0.9)))
    centre = np.array([plan.W / 2 + _u(rng, -0.2, 0.2), plan.D / 2 + _u(rng, -0.15, 0.15)])
    tid = plan.place(table, 0, centre)
    if tid is not None:
        n_side = int(np.clip((float(table.size[0]) - 0.2) // 0.68, 2, 4))
        ends = max(int(rng.integers(0, 3)) if 2 * n_side < 10 else 0, 6 - 2 * n_side)
        per_side = {0: n_side, 2: n_side, 1: int(ends >= 1), 3: int(ends >= 2)}
        office = rng.random() < 0.7

        def seat(r: np.random.Generator) -> ob.Model:
            return ob.office_chair(r) if office else ob.chair(r)

        _chairs_around(plan, rng, tid, seat, {s: n for s, n in per_side.items() if n})
        if rng.random() < 0.3:
            _decorate(plan, rng, tid, (ob.laptop, ob.laptop, _small_plant), 0.5)
        _clutter(
            plan,
            rng,
            tid,
            (ob.paper, ob.paper, ob.mug, ob.bottle, ob.bottle, ob.laptop),
            int(rng.integers(3, 8)),
        )
    end_walls = [1, 3] if rng.random() < 0.5 else [3, 1]
    screen = ob.tv(rng, stand=False, width=_u(rng, 1.2, 1.6))
    if rng.random() < 0.8:
        plan.on_wall(
            screen, end_walls[0], _u(rng, 1.1, 1.4) - float(screen.size[2]) / 2, u=plan.D / 2, tries=6
        )
    if rng.random() < 0.8:
        _on_wall_any(plan, rng, ob.whiteboard(rng), _u(rng, 0.85, 1.0), walls=[end_walls[1], 0, 2])
    if rng.random() < 0.4:
        cab = _against_any(plan, rng, ob.cabinet(rng, "low"))
        if cab is not None:
            _decorate(plan, rng, cab, (_small_plant, ob.cardboard_box), 0.4)
    _scatter(plan, rng, [ob.plant] * int(rng.integers(1, 3)) + [ob.trash_can], tries=2)
    _curtains(plan, rng, 0.5)
    _pictures(plan, rng, int(rng.integers(0, 3)))
    _floor_clutter(plan, rng, int(rng.integers(0, 3)), (ob.bag, ob.backpack, ob.small_box))


RECIPES = {
    "bedroom": _bedroom,
    "living room": _living_room,
    "office": _office,
    "kitchen": _kitchen,
    "bathroom": _bathroom,
    "conference room": _conference_room,
}


def furnish(plan: Planner, rng: np.random.Generator, room_type: str) -> None:
    """Build the shell, then run the room type's recipe."""
    build_shell(plan, rng, room_type)
    RECIPES[room_type](plan, rng)
