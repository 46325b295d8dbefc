"""Category builders: one function per ScanNet raw category, each assembling shape primitives.

Every builder draws its own sizes (realistic ranges, metres), its sub-type (four legs or pedestal, floor or
table lamp...) and its colors from a per-category palette, and returns a `Model` in a local frame: the
xy box centred on the origin, the bottom at z = 0 and the front facing +y (so a piece placed against a
wall turns its back to it). `color_name` is measured, not declared: it is the color word that covers the
largest surface area of the finished model, so captions can trust it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.scene.colors import COLOR_WORDS, sample_color_words

from .shapes import (
    Part,
    box,
    cup,
    cylinder,
    ellipsoid,
    lathe,
    merge,
    rotated,
    torus,
    tray,
    vertex_areas,
    without_faces,
)

# One palette for the whole project: objects are painted with the reference colors that `core.scene.colors`
# names back, so a caption's color word, the namer run on a scan, and this generator all agree.
COLOR_RGB: dict[str, tuple[int, int, int]] = dict(COLOR_WORDS)
COLOR_NAMES: tuple[str, ...] = tuple(COLOR_RGB)

# Colors that make sense for a material; builders draw from these.
WOOD = ("brown", "brown", "beige", "white", "black")
METAL = ("gray", "black", "gray", "white")
FABRIC = (
    "gray",
    "blue",
    "beige",
    "green",
    "red",
    "brown",
    "black",
    "purple",
    "yellow",
    "pink",
    "orange",
    "white",
)
PLASTIC = ("white", "black", "gray", "red", "blue", "green", "orange", "yellow")
DARK_SCREEN = (24, 26, 32)


def color_word_index(rgb: np.ndarray) -> np.ndarray:
    """Index into COLOR_NAMES of the word `core.scene.colors` gives each row of (n, 3) 0-255 colors."""
    q = np.clip(np.round(np.asarray(rgb).reshape(-1, 3)), 0, 255).astype(np.int64)
    keys, inverse = np.unique((q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2], return_inverse=True)
    rows = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    words = sample_color_words(rows.astype(np.float64) / 255.0)
    index = np.array([COLOR_NAMES.index(w) for w in words], dtype=np.int64)
    return index[inverse.reshape(-1)]


def dominant_color(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> str:
    """The color word covering the largest surface area (each vertex votes with its share of area)."""
    weights = vertex_areas(vertices, faces)
    votes = np.bincount(color_word_index(colors), weights=weights, minlength=len(COLOR_NAMES))
    return COLOR_NAMES[int(votes.argmax())]


def tone(rng: np.random.Generator, name: str, spread: float = 12.0) -> np.ndarray:
    """A random shade of a named color that still reads as that name, also a little darker or brighter.

    The margin in brightness keeps the word stable under the baked lighting (about 0.9 to 1.07).
    """
    base = np.asarray(COLOR_RGB[name], dtype=np.float32)
    for _ in range(8):
        rgb = np.clip(base * rng.uniform(0.92, 1.05) + rng.uniform(-spread, spread, 3) / 2, 0, 255)
        probes = np.clip(np.stack([rgb * 0.88, rgb, rgb * 1.07]), 0, 255) / 255.0
        if all(word == name for word in sample_color_words(probes)):
            return rgb.astype(np.float32)
    return base


def pick(rng: np.random.Generator, names: Sequence[str]) -> str:
    return str(names[int(rng.integers(len(names)))])


def pick_builder(rng: np.random.Generator, builders: Sequence[Callable[..., Model]]) -> Callable[..., Model]:
    return builders[int(rng.integers(len(builders)))]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


@dataclass
class Surface:
    """A horizontal top that other objects can stand on: height and local rectangle (x0, y0, x1, y1)."""

    z: float
    rect: tuple[float, float, float, float]


@dataclass
class Model:
    """One object's mesh and albedo in its local frame, with what placement needs to know about it."""

    label: str
    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    color_name: str
    attributes: dict[str, str] = field(default_factory=dict)
    surface: Surface | None = None
    knee: tuple[float, float] = (0.0, 0.0)  # local x centre and width of a desk's leg room (chairs tuck in)
    # Inner boards of a bookcase or shelf unit (below `surface`), with the free height above each one:
    # books and boxes stand on them as objects of their own.
    boards: list[tuple[Surface, float]] = field(default_factory=list)
    lo: np.ndarray = field(init=False, repr=False)
    hi: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lo, self.hi = self.vertices.min(axis=0), self.vertices.max(axis=0)

    @property
    def size(self) -> np.ndarray:
        return self.hi - self.lo


def finish(
    label: str,
    parts: Sequence[Part],
    attributes: dict[str, str] | None = None,
    surface: Surface | None = None,
    knee: tuple[float, float] = (0.0, 0.0),
    recenter: bool = True,
    boards: Sequence[tuple[Surface, float]] = (),
) -> Model:
    """Merge the parts, move the box to the canonical local frame and measure the dominant color."""
    whole = merge(parts)
    vertices = whole.vertices
    shift = np.zeros(3)
    if recenter:
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
        vertices = vertices + shift

    def moved(s: Surface) -> Surface:
        x0, y0, x1, y1 = s.rect
        return Surface(s.z + shift[2], (x0 + shift[0], y0 + shift[1], x1 + shift[0], y1 + shift[1]))

    surface = None if surface is None else moved(surface)
    name = dominant_color(vertices, whole.faces, whole.colors)
    knee = (float(knee[0] + shift[0]), float(knee[1]))
    boards_out = [(moved(b), float(clear)) for b, clear in boards]
    attrs = dict(attributes or {})
    return Model(label, vertices, whole.faces, whole.colors, name, attrs, surface, knee, boards_out)


def legs(
    width: float,
    depth: float,
    height: float,
    thick: float,
    color: np.ndarray,
    inset: float = 0.02,
    round_: bool = False,
) -> list[Part]:
    """Four legs under a width x depth top, standing on z = 0."""
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (width / 2 - inset - thick / 2), sy * (depth / 2 - inset - thick / 2)
            if round_:
                out.append(cylinder(thick / 2, height, (x, y, 0.0), color))
            else:
                out.append(box((thick, thick, height), (x, y, height / 2), color))
    return out


def _front_mask(part: Part, y_front: float, tol: float = 1e-4) -> np.ndarray:
    return part.vertices[:, 1] > y_front - tol


# --------------------------------------------------------------------------------------------- seating


def chair(rng: np.random.Generator) -> Model:
    """A dining/side chair: four legs, a seat, a backrest, sometimes armrests."""
    material = pick(rng, ("wooden", "wooden", "plastic", "fabric", "metal"))
    palette = {"wooden": WOOD, "plastic": PLASTIC, "fabric": FABRIC, "metal": METAL}[material]
    name = pick(rng, palette)
    main = tone(rng, name)
    leg_color = main if material in ("wooden", "plastic") else tone(rng, pick(rng, ("black", "gray")))
    w, d, h = _u(rng, 0.42, 0.52), _u(rng, 0.42, 0.5), _u(rng, 0.43, 0.48)
    t, back_h, back_t = _u(rng, 0.03, 0.06), _u(rng, 0.3, 0.5), _u(rng, 0.025, 0.045)
    radius = 0.02 if material == "fabric" else 0.008
    parts = [box((w, d, t), (0, 0, h - t / 2), main, radius)]
    parts += legs(w, d, h - t, _u(rng, 0.03, 0.04), leg_color, round_=material == "metal")
    parts.append(box((w, back_t, back_h), (0, -d / 2 + back_t / 2, h + back_h / 2), main, radius))
    attributes = {"material": material}
    side = 0.03  # margin of the seat top left free for a backpack
    if rng.random() < 0.2:
        for sx in (-1, 1):
            parts.append(box((0.04, d * 0.8, 0.03), (sx * (w / 2 - 0.02), 0, h + 0.2), main))
            parts.append(box((0.03, 0.03, 0.2), (sx * (w / 2 - 0.02), d * 0.3, h + 0.1), leg_color))
        attributes["armrests"] = "with armrests"
        side = 0.05
    surface = Surface(h, (-w / 2 + side, -d / 2 + back_t + 0.01, w / 2 - side, d / 2 - 0.02))
    return finish("chair", parts, attributes, surface)


def office_chair(rng: np.random.Generator) -> Model:
    """A swivel chair: five-star base on casters, gas lift, padded seat and back, often armrests."""
    name = pick(rng, ("black", "black", "black", "gray", "blue", "red", "green"))
    main = tone(rng, name, 8)
    base = tone(rng, pick(rng, ("black", "gray")), 6)
    seat_h, w, d = _u(rng, 0.44, 0.52), _u(rng, 0.46, 0.52), _u(rng, 0.44, 0.5)
    spoke = _u(rng, 0.27, 0.32)
    parts: list[Part] = []
    start = rng.uniform(0, 2 * np.pi / 5)
    for i in range(5):
        angle = start + 2 * np.pi * i / 5
        arm = box((spoke, 0.045, 0.03), (spoke / 2, 0, 0.065), base)
        parts.append(rotated(arm, angle))
        parts.append(
            ellipsoid((0.025, 0.025, 0.025), (spoke * np.cos(angle), spoke * np.sin(angle), 0.025), base)
        )
    parts.append(cylinder(0.045, 0.06, (0, 0, 0.05), base))
    parts.append(cylinder(0.022, seat_h - 0.17, (0, 0, 0.1), base))
    parts.append(box((w, d, 0.08), (0, 0, seat_h - 0.04), main, 0.03))
    back_h = _u(rng, 0.45, 0.65)
    back_bottom = seat_h + 0.08
    parts.append(box((0.06, 0.03, 0.14), (0, -d / 2 + 0.01, seat_h + 0.03), base))
    parts.append(box((w * 0.92, 0.07, back_h), (0, -d / 2 + 0.01, back_bottom + back_h / 2), main, 0.03))
    attributes = {"material": pick(rng, ("fabric", "leather", "mesh"))}
    if rng.random() < 0.6:
        for sx in (-1, 1):
            x = sx * (w / 2 + 0.02)
            parts.append(box((0.03, 0.03, 0.2), (x, -0.02, seat_h + 0.08), base))
            parts.append(box((0.06, 0.24, 0.03), (x, -0.02, seat_h + 0.195), main, 0.01))
        attributes["armrests"] = "with armrests"
    surface = Surface(seat_h, (-w / 2 + 0.04, -d / 2 + 0.06, w / 2 - 0.04, d / 2 - 0.03))
    return finish("office chair", parts, attributes, surface)


def back_and_arms(
    w: float,
    d: float,
    leg_h: float,
    back: tuple[float, float],
    arms: tuple[float, float],
    color: np.ndarray,
    bevel: float,
) -> list:
    """An upholstered seat's back (height, thickness) along its rear edge and two arms (width, height)
    along its sides, all standing on legs `leg_h` tall: what armchairs and couches share."""
    (back_h, back_t), (arm_w, arm_h) = back, arms
    parts = [
        box((w, back_t, back_h - leg_h), (0, -d / 2 + back_t / 2, leg_h + (back_h - leg_h) / 2), color, bevel)
    ]
    for sx in (-1, 1):
        size = (arm_w, d, arm_h - leg_h)
        parts.append(box(size, (sx * (w / 2 - arm_w / 2), 0, leg_h + (arm_h - leg_h) / 2), color, bevel))
    return parts


def armchair(rng: np.random.Generator) -> Model:
    """An upholstered armchair: base, seat cushion, back, two arms and short legs."""
    name = pick(rng, FABRIC)
    main = tone(rng, name)
    w, d = _u(rng, 0.75, 0.95), _u(rng, 0.75, 0.9)
    leg_h, seat_h = _u(rng, 0.05, 0.12), _u(rng, 0.4, 0.46)
    back_h, back_t = _u(rng, 0.75, 0.95), _u(rng, 0.16, 0.22)
    arm_w, arm_h = _u(rng, 0.1, 0.18), _u(rng, 0.55, 0.65)
    leg_color = tone(rng, pick(rng, ("brown", "black", "gray")))
    parts = legs(w, d, leg_h, 0.04, leg_color, inset=0.05, round_=True)
    parts.append(box((w, d, seat_h - leg_h - 0.1), (0, 0, leg_h + (seat_h - leg_h - 0.1) / 2), main, 0.03))
    parts.append(box((w - 2 * arm_w, d - back_t, 0.12), (0, back_t / 2, seat_h - 0.06), main, 0.05))
    parts += back_and_arms(w, d, leg_h, (back_h, back_t), (arm_w, arm_h), main, 0.05)
    surface = Surface(seat_h, (-w / 2 + arm_w + 0.02, -d / 2 + back_t, w / 2 - arm_w - 0.02, d / 2 - 0.04))
    return finish("armchair", parts, {"material": pick(rng, ("fabric", "leather"))}, surface)


def stool(rng: np.random.Generator) -> Model:
    """A stool: round or square seat, three/four legs or a pedestal; tall ones get a foot ring."""
    material = pick(rng, ("wooden", "metal", "plastic"))
    name = pick(rng, {"wooden": WOOD, "metal": METAL, "plastic": PLASTIC}[material])
    main = tone(rng, name)
    h = _u(rng, 0.45, 0.5) if rng.random() < 0.5 else _u(rng, 0.62, 0.78)
    round_seat = rng.random() < 0.6
    r = _u(rng, 0.15, 0.2)
    t = _u(rng, 0.03, 0.05)
    if round_seat:
        parts = [cylinder(r, t, (0, 0, h - t), main)]
    else:
        parts = [box((2 * r, 2 * r, t), (0, 0, h - t / 2), main, 0.01)]
    kind = pick(rng, ("four legs", "three legs", "pedestal"))
    if kind == "pedestal":
        parts += [cylinder(0.03, h - t, (0, 0, 0), main), cylinder(r * 0.9, 0.025, (0, 0, 0), main)]
    else:
        n = 4 if kind == "four legs" else 3
        for i in range(n):
            a = 2 * np.pi * i / n + np.pi / 4
            parts.append(cylinder(0.016, h - t, (0.78 * r * np.cos(a), 0.78 * r * np.sin(a), 0), main))
    if h > 0.6:
        parts.append(torus(0.8 * r, 0.012, (0, 0, 0.3), main))
    return finish(
        "stool", parts, {"material": material, "shape": "round" if round_seat else "square", "legs": kind}
    )


def couch(rng: np.random.Generator) -> Model:
    """A sofa: base, 2-3 seat cushions, a back, two arms, short legs; its seat holds pillows."""
    name = pick(rng, FABRIC)
    main = tone(rng, name)
    seats = int(rng.integers(2, 4))
    w, d = _u(rng, 0.6, 0.75) * seats + 0.4, _u(rng, 0.85, 1.0)
    leg_h, seat_h = _u(rng, 0.05, 0.12), _u(rng, 0.4, 0.46)
    back_h, back_t = _u(rng, 0.75, 0.9), _u(rng, 0.18, 0.25)
    arm_w, arm_h = _u(rng, 0.14, 0.22), _u(rng, 0.55, 0.65)
    leg_color = tone(rng, pick(rng, ("brown", "black", "gray")))
    parts = legs(w, d, leg_h, 0.04, leg_color, inset=0.06, round_=True)
    base_h = seat_h - leg_h - 0.12
    parts.append(box((w, d, base_h), (0, 0, leg_h + base_h / 2), main, 0.03))
    inner = w - 2 * arm_w
    cushion_w = inner / seats
    for i in range(seats):
        x = -inner / 2 + cushion_w * (i + 0.5)
        parts.append(box((cushion_w - 0.01, d - back_t, 0.12), (x, back_t / 2, seat_h - 0.06), main, 0.05))
    parts += back_and_arms(w, d, leg_h, (back_h, back_t), (arm_w, arm_h), main, 0.06)
    surface = Surface(seat_h, (-inner / 2 + 0.02, -d / 2 + back_t, inner / 2 - 0.02, d / 2 - 0.05))
    attributes = {"material": pick(rng, ("fabric", "fabric", "leather")), "size": f"{seats}-seat"}
    return finish("couch", parts, attributes, surface)


def bed(rng: np.random.Generator) -> Model:
    """A bed: low frame, bedding block with a turned-down sheet, headboard and sometimes a footboard.

    The head is at -y (against the wall); `surface` is the mattress top (pillows go at its head end).
    """
    w = float(rng.choice([_u(rng, 0.9, 1.0), _u(rng, 1.4, 1.6), _u(rng, 1.4, 1.6), _u(rng, 1.75, 1.85)]))
    length = _u(rng, 1.95, 2.1)
    frame_name = pick(rng, WOOD + ("gray",))
    frame = tone(rng, frame_name)
    bedding_name = pick(
        rng, ("white", "white", "gray", "beige", "blue", "green", "red", "pink", "purple", "yellow")
    )
    bedding = tone(rng, bedding_name)
    sheet = tone(rng, "white" if bedding_name != "white" else pick(rng, ("beige", "gray", "blue")))
    # The bedding is the bulk of what one sees of a bed (and so its color word); the frame stays low.
    rail_h, head_t = _u(rng, 0.15, 0.25), _u(rng, 0.05, 0.09)
    mattress_h = _u(rng, 0.25, 0.35)
    head_h = _u(rng, 0.8, 1.15)
    parts = [box((w + 0.04, head_t, head_h), (0, -length / 2 - head_t / 2, head_h / 2), frame, 0.01)]
    rail = 0.04
    parts.append(box((rail, length, rail_h), (-w / 2 - rail / 2 + 0.02, 0, rail_h / 2), frame))
    parts.append(box((rail, length, rail_h), (w / 2 + rail / 2 - 0.02, 0, rail_h / 2), frame))
    if rng.random() < 0.3:
        foot_h = _u(rng, 0.4, 0.5)
        parts.append(box((w + 0.04, head_t, foot_h), (0, length / 2 + head_t / 2, foot_h / 2), frame, 0.01))
    else:
        parts.append(box((w, rail, rail_h), (0, length / 2 - rail / 2, rail_h / 2), frame))
    top = rail_h - 0.06 + mattress_h
    block = box((w + 0.03, length, mattress_h), (0, 0, rail_h - 0.06 + mattress_h / 2), bedding, 0.06)
    head_band = (block.vertices[:, 1] < -length / 2 + _u(rng, 0.45, 0.6)) & (
        block.vertices[:, 2] > top - 0.02
    )
    parts.append(block.painted(head_band, sheet))
    surface = Surface(top, (-w / 2 + 0.05, -length / 2 + 0.03, w / 2 - 0.05, length / 2 - 0.08))
    kind = "single" if w < 1.2 else ("double" if w < 1.7 else "king")
    return finish(
        "bed", parts, {"size": kind, "material": "wooden" if frame_name != "gray" else "metal"}, surface
    )


# -------------------------------------------------------------------------------------------- tables


def table(rng: np.random.Generator, kind: str = "dining", size: tuple[float, float] | None = None) -> Model:
    """A table: rectangular or round top on four legs, a pedestal or two panels.

    `kind` is "dining", "side" (small, by a couch or bed) or "conference" (long, panel legs).
    """
    name = pick(rng, WOOD + ("gray",))
    top_color = tone(rng, name)
    metal_legs = rng.random() < 0.35
    leg_color = tone(rng, pick(rng, ("black", "gray"))) if metal_legs else top_color
    if kind == "side":
        h, (lx, ly) = _u(rng, 0.5, 0.62), size or (_u(rng, 0.45, 0.6),) * 2
    elif kind == "conference":
        h, (lx, ly) = _u(rng, 0.73, 0.76), size or (_u(rng, 2.4, 4.0), _u(rng, 1.0, 1.3))
    else:
        h, (lx, ly) = _u(rng, 0.72, 0.76), size or (_u(rng, 1.1, 1.7), _u(rng, 0.75, 0.95))
    t = _u(rng, 0.03, 0.05)
    round_top = kind != "conference" and rng.random() < 0.3
    if round_top:
        r = min(lx, ly) / 2 if kind != "dining" else _u(rng, 0.45, 0.6)
        parts = [cylinder(r, t, (0, 0, h - t), top_color)]
        parts += [cylinder(0.04, h - t, (0, 0, 0), leg_color), cylinder(r * 0.55, 0.03, (0, 0, 0), leg_color)]
        s = r / np.sqrt(2)
        surface = Surface(h, (-s, -s, s, s))
        shape, support = "round", "pedestal"
    else:
        parts = [box((lx, ly, t), (0, 0, h - t / 2), top_color, 0.005)]
        if kind == "conference":
            for sx in (-1, 1):
                parts.append(box((0.05, ly * 0.6, h - t), (sx * (lx / 2 - 0.35), 0, (h - t) / 2), leg_color))
            parts.append(box((lx - 0.7, 0.04, 0.12), (0, 0, h - t - 0.06), leg_color))
            support = "panel legs"
        else:
            parts += legs(lx, ly, h - t, _u(rng, 0.04, 0.06), leg_color, inset=0.04, round_=metal_legs)
            support = "four legs"
        surface = Surface(h, (-lx / 2 + 0.02, -ly / 2 + 0.02, lx / 2 - 0.02, ly / 2 - 0.02))
        shape = "rectangular" if abs(lx - ly) > 0.1 else "square"
    material = "wooden" if name in ("brown", "beige") else pick(rng, ("wooden", "laminate"))
    return finish("table", parts, {"shape": shape, "material": material, "legs": support}, surface)


def coffee_table(rng: np.random.Generator) -> Model:
    """A low table in front of a couch: rectangular or round, legs or side panels, maybe a lower shelf."""
    name = pick(rng, WOOD + ("gray",))
    top = tone(rng, name)
    h, t = _u(rng, 0.38, 0.46), _u(rng, 0.03, 0.05)
    if rng.random() < 0.25:
        r = _u(rng, 0.4, 0.5)
        parts = [cylinder(r, t, (0, 0, h - t), top), cylinder(0.05, h - t, (0, 0, 0), top)]
        parts.append(cylinder(r * 0.6, 0.03, (0, 0, 0), top))
        s = r / np.sqrt(2)
        return finish(
            "coffee table", parts, {"shape": "round", "material": "wooden"}, Surface(h, (-s, -s, s, s))
        )
    lx, ly = _u(rng, 0.9, 1.3), _u(rng, 0.5, 0.75)
    parts = [box((lx, ly, t), (0, 0, h - t / 2), top, 0.006)]
    if rng.random() < 0.5:
        for sx in (-1, 1):
            parts.append(box((0.04, ly, h - t), (sx * (lx / 2 - 0.02), 0, (h - t) / 2), top))
    else:
        parts += legs(lx, ly, h - t, 0.05, top, inset=0.03)
    if rng.random() < 0.5:
        parts.append(box((lx - 0.1, ly - 0.1, 0.02), (0, 0, 0.12), top))
    surface = Surface(h, (-lx / 2 + 0.02, -ly / 2 + 0.02, lx / 2 - 0.02, ly / 2 - 0.02))
    return finish("coffee table", parts, {"shape": "rectangular", "material": "wooden"}, surface)


def desk(rng: np.random.Generator, width: float | None = None) -> Model:
    """A desk: top on metal legs, on two side panels, or on a panel and a drawer pedestal."""
    name = pick(rng, ("white", "white", "brown", "beige", "black", "gray"))
    top = tone(rng, name)
    w = width or _u(rng, 1.0, 1.6)
    d, h, t = _u(rng, 0.6, 0.8), _u(rng, 0.72, 0.76), _u(rng, 0.025, 0.04)
    parts = [box((w, d, t), (0, 0, h - t / 2), top, 0.004)]
    kind = pick(rng, ("legs", "panels", "pedestal"))
    knee = (0.0, w - 0.16)
    if kind == "legs":
        parts += legs(w, d, h - t, 0.05, tone(rng, pick(rng, ("black", "gray", "white"))), inset=0.03)
    else:
        knee = (0.0, w - 0.1)
        parts.append(box((0.03, d - 0.04, h - t), (-w / 2 + 0.035, 0, (h - t) / 2), top))
        parts.append(box((w - 0.1, 0.02, 0.35), (0, -d / 2 + 0.04, h - t - 0.175), top))
        if kind == "panels":
            parts.append(box((0.03, d - 0.04, h - t), (w / 2 - 0.035, 0, (h - t) / 2), top))
        else:
            pw = _u(rng, 0.38, 0.45)
            parts.append(box((pw, d - 0.04, h - t), (w / 2 - pw / 2 - 0.02, 0, (h - t) / 2), top))
            handle = tone(rng, pick(rng, ("gray", "black")))
            for i in range(3):
                z = (h - t) * (i + 0.5) / 3
                parts.append(box((0.12, 0.015, 0.015), (w / 2 - pw / 2 - 0.02, d / 2 - 0.01, z), handle))
            knee = ((0.03 - pw) / 2, w - pw - 0.07)
    surface = Surface(h, (-w / 2 + 0.02, -d / 2 + 0.02, w / 2 - 0.02, d / 2 - 0.02))
    return finish(
        "desk", parts, {"material": "wooden" if name in ("brown", "beige") else "laminate"}, surface, knee
    )


# ------------------------------------------------------------------------------------------- storage


def _door_fronts(
    w: float, h: float, y: float, z0: float, n: int, handle: np.ndarray, color: np.ndarray, drawers: bool
) -> list[Part]:
    """Door or drawer fronts side by side (doors) or stacked (drawers), each with a bar handle."""
    parts = []
    gap = 0.006
    for i in range(n):
        if drawers:
            fw, fh = w - 2 * gap, (h - (n + 1) * gap) / n
            cx, cz = 0.0, z0 + gap + fh / 2 + i * (fh + gap)
            hx, hz, hs = cx, cz + fh * 0.25, (min(0.16, fw * 0.4), 0.015, 0.015)
        else:
            fw, fh = (w - (n + 1) * gap) / n, h - 2 * gap
            cx, cz = -w / 2 + gap + fw / 2 + i * (fw + gap), z0 + h / 2
            side = 1 if i % 2 == 0 else -1
            hx, hz, hs = cx + side * (fw / 2 - 0.04), cz, (0.015, 0.015, min(0.16, fh * 0.3))
        if n == 1 and not drawers:
            hx = cx + fw / 2 - 0.04
        parts.append(box((fw, 0.018, fh), (cx, y + 0.009, cz), color, 0.003))
        parts.append(box(hs, (hx, y + 0.025, hz), handle))
    return parts


def cabinet(
    rng: np.random.Generator, kind: str | None = None, width: float | None = None, depth: float | None = None
) -> Model:
    """A cabinet: "low" (sideboard/tv stand), "tall" (wardrobe), "file" (drawers) or "vanity" (bathroom)."""
    kind = kind or pick(rng, ("low", "tall", "file"))
    name = pick(rng, ("white", "white", "brown", "beige", "gray", "black") if kind != "file" else METAL)
    main = tone(rng, name)
    handle = tone(rng, pick(rng, ("gray", "black")) if name != "black" else "gray")
    w, d, h = {
        "low": (_u(rng, 1.0, 1.8), _u(rng, 0.4, 0.5), _u(rng, 0.45, 0.7)),
        "tall": (_u(rng, 0.8, 1.2), _u(rng, 0.45, 0.6), _u(rng, 1.7, 2.05)),
        "file": (_u(rng, 0.4, 0.5), _u(rng, 0.5, 0.6), _u(rng, 0.7, 1.3)),
        "vanity": (_u(rng, 0.6, 1.0), _u(rng, 0.45, 0.52), _u(rng, 0.78, 0.84)),
    }[kind]
    w, d = width or w, depth or d
    plinth = 0.08
    body_d = d - 0.03
    parts = [box((w - 0.04, body_d - 0.04, plinth), (0, -0.03, plinth / 2), tone(rng, "black"))]
    parts.append(box((w, body_d, h - plinth), (0, -0.015, plinth + (h - plinth) / 2), main, 0.004))
    y_front = -0.015 + body_d / 2
    if kind == "file":
        parts += _door_fronts(
            w, h - plinth, y_front, plinth, int(np.clip(round(h / 0.32), 2, 4)), handle, main, True
        )
    else:
        n = 1 if w < 0.6 else (2 if w < 1.3 else 3)
        parts += _door_fronts(w, h - plinth, y_front, plinth, n, handle, main, False)
    surface = Surface(h, (-w / 2 + 0.02, -d / 2 + 0.02, w / 2 - 0.02, d / 2 - 0.03))
    material = "metal" if kind == "file" else ("wooden" if name in ("brown", "beige") else "laminate")
    return finish("cabinet", parts, {"type": kind, "material": material}, surface)


def nightstand(rng: np.random.Generator) -> Model:
    """A bedside table: 1-2 drawers (or a drawer over an open shelf), on legs or a plinth."""
    name = pick(rng, WOOD + ("gray",))
    main = tone(rng, name)
    w, d, h = _u(rng, 0.4, 0.55), _u(rng, 0.35, 0.45), _u(rng, 0.45, 0.62)
    leg_h = _u(rng, 0.08, 0.18) if rng.random() < 0.5 else 0.0
    parts = legs(w, d, leg_h, 0.035, main) if leg_h else []
    parts.append(box((w, d - 0.02, h - leg_h), (0, -0.01, leg_h + (h - leg_h) / 2), main, 0.005))
    handle = tone(rng, pick(rng, ("gray", "black", "beige")))
    parts += _door_fronts(w, h - leg_h, d / 2 - 0.02, leg_h, int(rng.integers(1, 3)), handle, main, True)
    surface = Surface(h, (-w / 2 + 0.02, -d / 2 + 0.02, w / 2 - 0.02, d / 2 - 0.02))
    return finish("nightstand", parts, {"material": "wooden"}, surface)


def dresser(rng: np.random.Generator) -> Model:
    """A chest of drawers: rows of one or two drawers, top slab, plinth or legs."""
    name = pick(rng, WOOD + ("gray",))
    main = tone(rng, name)
    w, d, h = _u(rng, 0.8, 1.5), _u(rng, 0.42, 0.55), _u(rng, 0.75, 1.1)
    base = _u(rng, 0.06, 0.12)
    handle = tone(rng, pick(rng, ("gray", "black", "beige")))
    parts = legs(w, d - 0.02, base, 0.04, main)
    parts.append(box((w, d - 0.02, h - base - 0.03), (0, -0.01, base + (h - base - 0.03) / 2), main))
    parts.append(box((w + 0.02, d, 0.03), (0, 0, h - 0.015), main, 0.005))
    rows, cols = int(rng.integers(3, 6)), (2 if w > 1.1 else 1)
    col_w = (w - 0.02) / cols
    for c in range(cols):
        fronts = _door_fronts(col_w, h - base - 0.03, d / 2 - 0.02, base, rows, handle, main, True)
        parts += [f.moved((-w / 2 + 0.01 + col_w * (c + 0.5), 0, 0)) for f in fronts]
    surface = Surface(h, (-w / 2 + 0.02, -d / 2 + 0.02, w / 2 - 0.02, d / 2 - 0.02))
    return finish("dresser", parts, {"material": "wooden"}, surface)


def bookshelf(rng: np.random.Generator) -> Model:
    """A tall bookcase: sides, top, bottom, back panel and 3-5 shelves (`boards`: books stand there as
    objects of their own, see `rooms._fill_boards`)."""
    name = pick(rng, WOOD + ("gray",))
    main = tone(rng, name)
    w, d, h = _u(rng, 0.6, 1.2), _u(rng, 0.28, 0.4), _u(rng, 1.5, 2.1)
    t = 0.02
    parts = [
        box((t, d, h), (-w / 2 + t / 2, 0, h / 2), main),
        box((t, d, h), (w / 2 - t / 2, 0, h / 2), main),
        box((w - 2 * t, t, h), (0, -d / 2 + t / 2, h / 2), main),
    ]
    levels = int(rng.integers(4, 7))
    gap = (h - 0.06 - t) / (levels - 1) - t
    boards = []
    for i in range(levels):
        z = 0.06 + (h - 0.06 - t) * i / (levels - 1)
        parts.append(box((w - 2 * t, d - t, t), (0, t / 2, z + t / 2), main))
        if i < levels - 1:
            boards.append(
                (Surface(z + t, (-w / 2 + t + 0.005, -d / 2 + t + 0.005, w / 2 - t - 0.005, d / 2)), gap)
            )
    surface = Surface(h, (-w / 2 + 0.02, -d / 2 + 0.02, w / 2 - 0.02, d / 2 - 0.02))
    attributes = {"material": "wooden" if name != "gray" else "metal"}
    return finish("bookshelf", parts, attributes, surface, boards=boards)


def shelf(rng: np.random.Generator) -> Model:
    """A low open shelf unit (no back): 2-4 boards between two sides (`boards` hold books and boxes)."""
    name = pick(rng, WOOD + ("gray",))
    main = tone(rng, name)
    w, d, h = _u(rng, 0.6, 1.2), _u(rng, 0.3, 0.4), _u(rng, 0.6, 1.2)
    t = 0.025
    parts = [
        box((t, d, h), (-w / 2 + t / 2, 0, h / 2), main),
        box((t, d, h), (w / 2 - t / 2, 0, h / 2), main),
    ]
    levels = int(rng.integers(2, 5))
    gap = (h - 0.04 - t) / (levels - 1) - t
    boards = []
    for i in range(levels):
        z = 0.04 + (h - 0.04 - t) * i / (levels - 1)
        parts.append(box((w - 2 * t, d, t), (0, 0, z + t / 2), main))
        if i < levels - 1:
            boards.append(
                (Surface(z + t, (-w / 2 + t + 0.005, -d / 2 + 0.01, w / 2 - t - 0.005, d / 2 - 0.01)), gap)
            )
    surface = Surface(h, (-w / 2 + 0.02, -d / 2 + 0.02, w / 2 - 0.02, d / 2 - 0.02))
    attributes = {"material": "wooden" if name != "gray" else "metal", "type": "open"}
    return finish("shelf", parts, attributes, surface, boards=boards)


def kitchen_cabinet(
    rng: np.random.Generator,
    width: float,
    upper: bool = False,
    color: str | None = None,
    height: float | None = None,
) -> Model:
    """A kitchen unit: a base cabinet (plinth, doors or drawers) or a wall cabinet above the counter.

    A kitchen passes one `color` and one `height` to all its base units so the counter lies flat.
    """
    name = color or pick(rng, ("white", "white", "beige", "brown", "gray", "black", "blue", "green"))
    main = tone(rng, name, 8)
    handle = tone(rng, "gray" if name != "gray" else "black")
    n = 1 if width < 0.55 else 2
    if upper:
        d, h = _u(rng, 0.3, 0.36), height or _u(rng, 0.6, 0.75)
        parts = [box((width, d - 0.02, h), (0, -0.01, h / 2), main, 0.003)]
        parts += _door_fronts(width, h, d / 2 - 0.02, 0.0, n, handle, main, False)
        return finish("kitchen cabinet", parts, {"type": "wall cabinet"})
    d, h, plinth = 0.58, height or _u(rng, 0.84, 0.88), 0.1
    parts = [box((width - 0.02, d - 0.08, plinth), (0, -0.04, plinth / 2), tone(rng, "black"))]
    parts.append(box((width, d - 0.02, h - plinth), (0, -0.01, plinth + (h - plinth) / 2), main, 0.003))
    drawers = rng.random() < 0.3
    parts += _door_fronts(width, h - plinth, d / 2 - 0.02, plinth, 3 if drawers else n, handle, main, drawers)
    surface = Surface(h, (-width / 2, -d / 2, width / 2, d / 2))
    return finish("kitchen cabinet", parts, {"type": "base cabinet"}, surface)


def kitchen_counter(rng: np.random.Generator, length: float, depth: float = 0.62) -> Model:
    """A countertop slab laid over a run of base cabinets."""
    name = pick(rng, ("white", "gray", "black", "beige", "brown"))
    t = _u(rng, 0.03, 0.045)
    slab = box((length, depth, t), (0, 0, t / 2), tone(rng, name, 8), 0.004, spacing=0.025)
    surface = Surface(t, (-length / 2 + 0.02, -depth / 2 + 0.02, length / 2 - 0.02, depth / 2 - 0.02))
    material = {"white": "stone", "gray": "stone", "black": "granite", "beige": "stone", "brown": "wooden"}[
        name
    ]
    return finish("kitchen counter", [slab], {"material": material}, surface)


# -------------------------------------------------------------------------------------------- lights


def lamp(rng: np.random.Generator, kind: str | None = None) -> Model:
    """A floor lamp (base, pole, shade) or a table lamp (base, stem, shade); cone, drum or globe shades."""
    kind = kind or pick(rng, ("table", "floor"))
    shade_name = pick(
        rng, ("white", "white", "beige", "beige", "black", "gray", "yellow", "red", "blue", "green")
    )
    shade_c = tone(rng, shade_name)
    base_c = tone(rng, pick(rng, ("black", "gray", "white", "brown", "beige")))
    shade_kind = pick(rng, ("drum", "cone", "globe"))
    if kind == "floor":
        h, r = _u(rng, 1.4, 1.75), _u(rng, 0.17, 0.25)
        parts = [
            cylinder(_u(rng, 0.13, 0.18), 0.03, (0, 0, 0), base_c),
            cylinder(0.015, h - 0.2, (0, 0, 0.03), base_c),
        ]
        stem_top, shade_h = h - 0.3, 0.3
    else:
        h, r = _u(rng, 0.35, 0.6), _u(rng, 0.11, 0.18)
        base_h = _u(rng, 0.08, 0.2)
        if rng.random() < 0.5:
            parts = [ellipsoid((0.07, 0.07, base_h / 2), (0, 0, base_h / 2), base_c)]
        else:
            parts = [cylinder(_u(rng, 0.06, 0.09), base_h, (0, 0, 0), base_c)]
        shade_h = min(_u(rng, 0.14, 0.24), h - base_h - 0.02)
        parts.append(cylinder(0.01, h - shade_h * 0.6 - base_h, (0, 0, base_h), base_c))
        stem_top = h - shade_h
    if shade_kind == "globe":
        rr = min(r, shade_h / 2 + 0.04)
        parts.append(ellipsoid((rr, rr, shade_h / 2), (0, 0, stem_top + shade_h / 2), shade_c))
    else:
        top_r = r if shade_kind == "drum" else r * 0.6
        parts.append(cylinder(r, shade_h, (0, 0, stem_top), shade_c, top_radius=top_r))
    return finish("lamp", parts, {"type": f"{kind} lamp", "shape": shade_kind})


# --------------------------------------------------------------------------------------- electronics


def _screen(w: float, h: float, t: float, z0: float, body: np.ndarray, bezel: float) -> Part:
    """A panel whose front face is a dark screen inside a bezel of the body color."""
    panel = box((w, t, h), (0, 0, z0 + h / 2), body, 0.004, spacing=0.025)
    v = panel.vertices
    screen = (
        _front_mask(panel, t / 2)
        & (np.abs(v[:, 0]) < w / 2 - bezel)
        & (np.abs(v[:, 2] - z0 - h / 2) < h / 2 - bezel)
    )
    return panel.painted(screen, DARK_SCREEN)


def monitor(rng: np.random.Generator) -> Model:
    """A computer monitor: screen panel on a neck and a base plate."""
    name = pick(rng, ("black", "black", "black", "gray", "white"))
    body = tone(rng, name, 6)
    w = _u(rng, 0.48, 0.7)
    h, t = w * _u(rng, 0.56, 0.62), _u(rng, 0.02, 0.035)
    lift = _u(rng, 0.06, 0.16)
    parts = [box((_u(rng, 0.18, 0.24), _u(rng, 0.14, 0.2), 0.015), (0, -0.02, 0.0075), body, 0.004)]
    parts.append(box((0.045, 0.025, lift + h / 2), (0, -t / 2 - 0.0125, 0.015 + (lift + h / 2) / 2), body))
    parts.append(_screen(w, h, t, lift, body, _u(rng, 0.008, 0.02)))
    return finish("monitor", parts, {"shape": "widescreen" if h / w < 0.58 else "rectangular"})


def tv(rng: np.random.Generator, stand: bool = True, width: float | None = None) -> Model:
    """A flat TV, on feet/a base (stand) or bare for the wall."""
    name = pick(rng, ("black", "black", "black", "gray", "white"))
    body = tone(rng, name, 6)
    w = width or _u(rng, 0.8, 1.5)
    h, t = w * 0.58, _u(rng, 0.04, 0.07)
    lift = _u(rng, 0.05, 0.1) if stand else 0.0
    parts = [_screen(w, h, t, lift, body, 0.012)]
    if stand:
        if rng.random() < 0.5:
            parts.append(box((w * 0.3, 0.22, 0.02), (0, 0, 0.01), body, 0.005))
            parts.append(box((0.08, 0.03, lift + 0.1), (0, -t / 2 - 0.01, (lift + 0.1) / 2), body))
        else:
            for sx in (-1, 1):
                parts.append(box((0.05, 0.22, lift + 0.05), (sx * w * 0.38, 0, (lift + 0.05) / 2), body))
    return finish("tv", parts, {"type": "on a stand" if stand else "wall-mounted"})


def keyboard(rng: np.random.Generator) -> Model:
    """A keyboard: a thin slab whose top shows a grid of keys."""
    name = pick(rng, ("black", "black", "white", "gray"))
    body = tone(rng, name, 6)
    w, d, h = _u(rng, 0.36, 0.46), _u(rng, 0.12, 0.16), _u(rng, 0.018, 0.028)
    slab = box((w, d, h), (0, 0, h / 2), body, 0.003, spacing=0.01)
    v = slab.vertices
    gaps = (v[:, 2] > h - 1e-4) & ((np.mod(v[:, 0], 0.019) < 0.004) | (np.mod(v[:, 1], 0.019) < 0.004))
    shade = body * (0.85 if name != "black" else 1.6)
    return finish("keyboard", [slab.painted(gaps, np.clip(shade, 0, 255))], {})


def laptop(rng: np.random.Generator) -> Model:
    """An open laptop: base with a dark key area, lid tilted back with its screen facing +y."""
    name = pick(rng, ("gray", "gray", "black", "white"))
    body = tone(rng, name, 6)
    w, d, t = _u(rng, 0.3, 0.36), _u(rng, 0.21, 0.25), _u(rng, 0.014, 0.02)
    base = box((w, d, t), (0, 0, t / 2), body, 0.003, spacing=0.015)
    v = base.vertices
    keys = (
        (v[:, 2] > t - 1e-4) & (np.abs(v[:, 0]) < w / 2 - 0.03) & (v[:, 1] < 0.02) & (v[:, 1] > -d / 2 + 0.02)
    )
    base = base.painted(keys, DARK_SCREEN)
    lt = 0.007
    lid = box((w, d, lt), (0, 0, t + lt / 2), body, 0.002, spacing=0.015)
    v = lid.vertices
    screen = (v[:, 2] < t + 1e-4) & (np.abs(v[:, 0]) < w / 2 - 0.015) & (np.abs(v[:, 1]) < d / 2 - 0.015)
    lid = rotated(
        lid.painted(screen, DARK_SCREEN), np.deg2rad(_u(rng, 100, 120)), axis=0, pivot=(0, -d / 2, t)
    )
    return finish("laptop", [base, lid], {"state": "open"})


def microwave(rng: np.random.Generator) -> Model:
    """A microwave oven: a box with a dark door window and a control strip."""
    name = pick(rng, ("white", "black", "gray"))
    body = tone(rng, name, 6)
    w, d, h = _u(rng, 0.44, 0.55), _u(rng, 0.33, 0.4), _u(rng, 0.26, 0.32)
    shell = box((w, d, h), (0, 0, h / 2), body, 0.01, spacing=0.025)
    v = shell.vertices
    window = _front_mask(shell, d / 2) & (v[:, 0] > -w / 2 + 0.04) & (v[:, 0] < w / 2 - 0.16)
    window &= np.abs(v[:, 2] - h / 2) < h / 2 - 0.05
    panel_c = tone(rng, "gray" if name != "gray" else "black", 6)
    parts = [
        shell.painted(window, DARK_SCREEN),
        box((0.1, 0.01, h - 0.08), (w / 2 - 0.08, d / 2 + 0.005, h / 2), panel_c),
    ]
    return finish("microwave", parts, {})


def refrigerator(rng: np.random.Generator) -> Model:
    """A fridge: tall box, freezer and fridge doors split by a seam, vertical handles."""
    name = pick(rng, ("white", "white", "gray", "gray", "black"))
    body = tone(rng, name, 6)
    w, d, h = _u(rng, 0.6, 0.85), _u(rng, 0.62, 0.75), _u(rng, 1.6, 1.9)
    shell = box((w, d, h), (0, 0, h / 2), body, 0.015, spacing=0.03)
    split = h * _u(rng, 0.3, 0.4) if rng.random() < 0.6 else h * _u(rng, 0.62, 0.7)
    v = shell.vertices
    seam = _front_mask(shell, d / 2) & (np.abs(v[:, 2] - split) < 0.012)
    shell = shell.painted(seam, tone(rng, "black"))
    handle_c = tone(rng, "gray" if name != "gray" else "black")
    parts = [shell]
    for z0, z1 in ((0.08, split - 0.05), (split + 0.05, h - 0.08)):
        hl = min(0.6, z1 - z0 - 0.1)
        zc = z1 - 0.05 - hl / 2 if z0 < split else z0 + 0.05 + hl / 2
        parts.append(box((0.025, 0.04, hl), (w / 2 - 0.07, d / 2 + 0.02, zc), handle_c))
    kind = "bottom freezer" if split < h / 2 else "top freezer"
    return finish("refrigerator", parts, {"type": kind, "material": "metal"})


# -------------------------------------------------------------------------------------------- bathroom


def toilet(rng: np.random.Generator) -> Model:
    """A toilet: pedestal, bowl, oval seat ring, lid up or down, and a tank at the back (-y)."""
    main = tone(rng, pick(rng, ("white", "white", "white", "beige", "gray")), 6)
    seat_c = main if rng.random() < 0.7 else tone(rng, pick(rng, ("white", "black", "brown")))
    oval = (1.0, _u(rng, 1.25, 1.4))
    bowl_r, seat_z = _u(rng, 0.17, 0.19), _u(rng, 0.39, 0.42)
    parts = [lathe([(0, 0), (0.13, 0), (0.1, 0.22), (0, 0.22)], (0, 0.02, 0), main, scale_xy=oval)]
    parts.append(cup(bowl_r * 0.7, bowl_r, seat_z - 0.2, 0.02, (0, 0.04, 0.2), main, scale_xy=oval))
    parts.append(torus(bowl_r - 0.03, 0.025, (0, 0.04, seat_z + 0.012), seat_c, scale_xy=oval))
    tank_w, tank_d, tank_h = _u(rng, 0.36, 0.44), _u(rng, 0.15, 0.2), _u(rng, 0.32, 0.4)
    tank_y = -bowl_r * oval[1] - tank_d / 2 + 0.06
    parts.append(box((tank_w, tank_d, tank_h), (0, tank_y, seat_z + tank_h / 2 - 0.02), main, 0.02))
    parts.append(box((0.16, 0.12, seat_z - 0.02), (0, tank_y + 0.02, (seat_z - 0.02) / 2), main, 0.02))
    if rng.random() < 0.6:  # lid down
        lid = [(0, 0), (bowl_r + 0.01, 0), (bowl_r + 0.01, 0.02), (0, 0.02)]
        parts.append(lathe(lid, (0, 0.04, seat_z + 0.037), seat_c, scale_xy=oval))
    else:
        parts.append(
            box(
                (2 * bowl_r, 0.02, 2 * bowl_r * oval[1] * 0.9),
                (0, tank_y + tank_d / 2 + 0.015, seat_z + bowl_r * 1.2),
                seat_c,
                0.01,
            )
        )
    tank_top = seat_z - 0.02 + tank_h
    lid = (-tank_w / 2 + 0.025, tank_y - tank_d / 2 + 0.025, tank_w / 2 - 0.025, tank_y + tank_d / 2 - 0.025)
    return finish("toilet", parts, {"material": "ceramic"}, Surface(tank_top, lid))


def _faucet(color: np.ndarray, x: float, y: float, z: float, reach: float, height: float) -> list[Part]:
    return [
        cylinder(0.02, height, (x, y, z), color),
        box((0.03, reach, 0.03), (x, y + reach / 2, z + height - 0.015), color),
    ]


def sink(rng: np.random.Generator, kind: str = "bathroom") -> Model:
    """A sink: a basin with a faucet at the back; "bathroom" (ceramic, oval or square), "kitchen"
    (steel, rectangular) or "pedestal" (a bathroom basin on its own floor column)."""
    chrome = tone(rng, "gray", 6)
    if kind == "kitchen":
        main = tone(rng, pick(rng, ("gray", "gray", "black", "white")), 6)
        w, d, h = _u(rng, 0.5, 0.8), _u(rng, 0.4, 0.48), _u(rng, 0.08, 0.12)
        parts = tray((w, d, h), 0.02, (0, 0, 0), main)
        parts += _faucet(chrome, 0, -d / 2 + 0.03, h, _u(rng, 0.15, 0.22), _u(rng, 0.22, 0.32))
        return finish("sink", parts, {"material": "metal", "type": "kitchen sink"})
    main = tone(rng, pick(rng, ("white", "white", "white", "beige", "gray")), 6)
    z0 = 0.0
    parts: list[Part] = []
    if kind == "pedestal":
        z0 = _u(rng, 0.66, 0.74)
        parts.append(lathe([(0, 0), (0.13, 0), (0.08, 0.05), (0.07, z0), (0, z0)], (0, -0.06, 0), main))
    w, d, h = _u(rng, 0.45, 0.6), _u(rng, 0.38, 0.48), _u(rng, 0.12, 0.17)
    if rng.random() < 0.5:
        parts.append(cup(w / 2 - 0.04, w / 2, h, 0.02, (0, 0, z0), main, scale_xy=(1.0, d / w)))
        shape = "oval"
    else:
        parts += tray((w, d, h), 0.025, (0, 0, z0), main, radius=0.01)
        shape = "rectangular"
    parts.append(box((w, 0.08, h + 0.01), (0, -d / 2 - 0.04 + 0.01, z0 + (h + 0.01) / 2), main, 0.01))
    parts += _faucet(chrome, 0, -d / 2 - 0.03, z0 + h, _u(rng, 0.08, 0.12), _u(rng, 0.1, 0.16))
    return finish("sink", parts, {"material": "ceramic", "shape": shape, "type": kind})


def bathtub(rng: np.random.Generator) -> Model:
    """A bathtub: a thick-walled rounded basin with a faucet at one end."""
    main = tone(rng, pick(rng, ("white", "white", "white", "beige")), 6)
    w, d, h = _u(rng, 1.5, 1.75), _u(rng, 0.7, 0.8), _u(rng, 0.5, 0.58)
    parts = tray((w, d, h), _u(rng, 0.07, 0.1), (0, 0, 0), main, radius=0.03)
    parts += _faucet(tone(rng, "gray", 6), -w / 2 + 0.04, -d / 2 + 0.04, h, 0.12, 0.08)
    return finish("bathtub", parts, {"material": "ceramic"})


def mirror(rng: np.random.Generator, width: float | None = None) -> Model:
    """A wall mirror: silvery glass in a frame (or frameless)."""
    w = width or _u(rng, 0.45, 0.9)
    h, t = _u(rng, 0.6, 1.0), _u(rng, 0.02, 0.03)
    glass = box((w, t, h), (0, 0, h / 2), (150, 158, 166), spacing=0.025)
    parts = [glass]
    if rng.random() < 0.6:
        frame = tone(rng, pick(rng, ("black", "brown", "white", "beige")))
        f = _u(rng, 0.03, 0.06)
        for x in (-w / 2 - f / 2, w / 2 + f / 2):
            parts.append(box((f, t + 0.01, h + 2 * f), (x, 0.005, h / 2), frame))
        for z in (-f / 2, h + f / 2):
            parts.append(box((w, t + 0.01, f), (0, 0.005, z), frame))
    return finish(
        "mirror", parts, {"shape": "rectangular", "frame": "framed" if len(parts) > 1 else "frameless"}
    )


def towel(rng: np.random.Generator) -> Model:
    """A towel hanging flat against a wall, folded over at the top, with a woven band near the hem."""
    name = pick(rng, ("white", "white", "blue", "beige", "gray", "pink", "green", "yellow", "red"))
    main = tone(rng, name)
    w, h, t = _u(rng, 0.3, 0.6), _u(rng, 0.4, 0.7), _u(rng, 0.025, 0.045)
    cloth = box((w, t, h), (0, 0, h / 2), main, t / 2, spacing=0.025)
    band = np.abs(cloth.vertices[:, 2] - 0.1) < 0.025
    accent = tone(rng, pick(rng, [c for c in ("white", "blue", "gray", "red") if c != name]))
    fold = box((w, t, h * 0.25), (0, t * 0.9, h - h * 0.125), main, t / 2, spacing=0.025)
    return finish("towel", [cloth.painted(band, accent), fold], {"material": "fabric"})


# ---------------------------------------------------------------------------------------- small things


def pillow(rng: np.random.Generator, upright: bool = False, width: float | None = None) -> Model:
    """A pillow: a puffy rounded slab, lying flat (bed) or standing against a backrest (couch)."""
    name = pick(rng, FABRIC)
    main = tone(rng, name)
    w = width or _u(rng, 0.4, 0.65)
    t = _u(rng, 0.1, 0.18)
    size = (w, t, _u(rng, 0.38, 0.5)) if upright else (w, _u(rng, 0.35, 0.5), t)
    return finish(
        "pillow", [box(size, (0, 0, size[2] / 2), main, t / 2 * 0.95, spacing=0.025)], {"material": "fabric"}
    )


def cardboard_box(rng: np.random.Generator) -> Model:
    """A box: a taped cardboard carton or a lidded plastic storage box."""
    w, d, h = _u(rng, 0.22, 0.6), _u(rng, 0.2, 0.45), _u(rng, 0.15, 0.45)
    top = Surface(h, (-w / 2 + 0.01, -d / 2 + 0.01, w / 2 - 0.01, d / 2 - 0.01))
    if rng.random() < 0.6:
        main = tone(rng, pick(rng, ("brown", "brown", "beige")))
        shell = box((w, d, h), (0, 0, h / 2), main, 0.004, spacing=0.025)
        v = shell.vertices
        tape = (np.abs(v[:, 1]) < 0.025) & (v[:, 2] > h - 0.06)
        return finish("box", [shell.painted(tape, tone(rng, "beige", 6))], {"material": "cardboard"}, top)
    main = tone(rng, pick(rng, PLASTIC))
    parts = [box((w - 0.02, d - 0.02, h - 0.03), (0, 0, (h - 0.03) / 2), main, 0.01, spacing=0.025)]
    parts.append(box((w, d, 0.03), (0, 0, h - 0.015), main, 0.01, spacing=0.025))
    return finish("box", parts, {"material": "plastic"}, top)


def trash_can(rng: np.random.Generator) -> Model:
    """A bin: round and open, or rectangular with a lid."""
    name = pick(rng, ("gray", "black", "white", "blue", "green", "gray", "black"))
    main = tone(rng, name)
    h = _u(rng, 0.3, 0.65)
    if rng.random() < 0.6:
        r = _u(rng, 0.12, 0.2)
        return finish(
            "trash can",
            [cup(r * 0.85, r, h, 0.01, (0, 0, 0), main)],
            {"shape": "round", "material": "plastic"},
        )
    w, d = _u(rng, 0.25, 0.38), _u(rng, 0.22, 0.32)
    parts = [
        box((w, d, h - 0.03), (0, 0, (h - 0.03) / 2), main, 0.01),
        box((w + 0.01, d + 0.01, 0.03), (0, 0, h - 0.015), main, 0.01),
    ]
    return finish("trash can", parts, {"shape": "rectangular", "material": pick(rng, ("plastic", "metal"))})


def plant(rng: np.random.Generator, small: bool = False) -> Model:
    """A potted plant: tapered pot, soil, and a clump of leafy blobs (taller plants get a stem)."""
    pot_name = pick(rng, ("white", "gray", "black", "brown", "orange", "beige"))
    pot_c = tone(rng, pot_name)
    scale = _u(rng, 0.45, 0.7) if small else _u(rng, 1.0, 1.6)
    pr, ph = 0.12 * scale, 0.22 * scale
    parts = [cup(pr * 0.75, pr, ph, 0.012, (0, 0, 0), pot_c)]
    parts.append(cylinder(pr - 0.012, 0.01, (0, 0, ph - 0.04), tone(rng, "brown", 5) * 0.6))
    stem = 0.0 if small or rng.random() < 0.5 else _u(rng, 0.2, 0.5) * scale
    if stem:
        parts.append(cylinder(0.015, stem + 0.05, (0, 0, ph - 0.04), tone(rng, "brown")))
    crown = 0.2 * scale
    base_z = ph + stem + crown * 0.6
    for _ in range(int(rng.integers(4, 8))):
        offset = rng.normal(0, crown * 0.45, 3) * (1, 1, 0.8)
        radii = crown * rng.uniform(0.45, 0.8, 3)
        leaf = ellipsoid(
            radii, (offset[0], offset[1], base_z + offset[2]), tone(rng, "green", 15), spacing=0.025
        )
        leaf.colors[:] = np.clip(leaf.colors * rng.uniform(0.9, 1.08, (len(leaf.colors), 1)), 0, 255)
        parts.append(leaf)
    return finish(
        "plant", parts, {"type": "small potted plant" if small else "potted plant", "pot": pot_name}
    )


# --------------------------------------------------------------------------------------------- clutter
# The small things of a lived-in room, each an object (and an instance) of its own, as ScanNet annotates
# them: books, cups, bottles, papers, bags, clothes, shoes, mice, cables and small boxes.

PAGES = ("white", "beige")


def book(rng: np.random.Generator, standing: bool = True) -> Model:
    """A book: hard covers in one color and page edges on three sides. Standing (on a shelf board: the
    spine faces +y) or lying flat (on a desk or a stack: its top cover is a `surface` for the next one)."""
    name = pick(rng, FABRIC + ("black", "blue", "red"))
    cover = tone(rng, name)
    height, depth, thick = _u(rng, 0.18, 0.3), _u(rng, 0.13, 0.21), _u(rng, 0.012, 0.05)
    pages = tone(rng, pick(rng, PAGES), 6)
    if standing:
        body = box((thick, depth, height), (0, 0, height / 2), cover, spacing=0.025)
        v = body.vertices
        edge = (v[:, 2] > height - 1e-4) | (v[:, 1] < -depth / 2 + 1e-4) | (v[:, 2] < 1e-4)
        inner = np.abs(v[:, 0]) < thick / 2 - 0.002
        parts = [body.painted(edge & inner, pages)]
        return finish("book", parts, {"state": "standing", "material": "paper"})
    body = box((height, depth, thick), (0, 0, thick / 2), cover, spacing=0.025)
    v = body.vertices
    side = (v[:, 0] > height / 2 - 1e-4) | (np.abs(v[:, 1]) > depth / 2 - 1e-4)
    inner = np.abs(v[:, 2] - thick / 2) < thick / 2 - 0.002
    top = Surface(thick, (-height / 2 + 0.01, -depth / 2 + 0.01, height / 2 - 0.01, depth / 2 - 0.01))
    return finish("book", [body.painted(side & inner, pages)], {"state": "lying", "material": "paper"}, top)


def mug(rng: np.random.Generator) -> Model:
    """A cup: a mug with a handle, or a plain paper/plastic cup."""
    name = pick(rng, ("white", "black", "red", "blue", "yellow", "green", "gray", "orange"))
    main = tone(rng, name)
    r, h = _u(rng, 0.035, 0.045), _u(rng, 0.08, 0.11)
    parts = [cup(r * 0.9, r, h, 0.005, (0, 0, 0), main, spacing=0.015)]
    if rng.random() < 0.7:  # a C-shaped handle: a ring in the xz plane less its half inside the wall
        ring = rotated(torus(0.022, 0.006, (0, 0, 0), main, spacing=0.015), np.pi / 2, axis=0)
        inside = ring.vertices[ring.faces].mean(axis=1)[:, 0] < -0.004
        parts.append(without_faces(ring, inside).moved((r - 0.004, 0, h * 0.55)))
        return finish("cup", parts, {"type": "mug", "material": "ceramic"})
    return finish("cup", parts, {"type": "cup", "material": pick(rng, ("paper", "plastic"))})


def bottle(rng: np.random.Generator) -> Model:
    """A bottle: a body, a shoulder, a neck and a cap (water, wine, soap, shampoo)."""
    name = pick(rng, ("green", "blue", "white", "brown", "gray", "red", "yellow", "pink"))
    main = tone(rng, name)
    r, h = _u(rng, 0.03, 0.045), _u(rng, 0.18, 0.32)
    neck = _u(rng, 0.3, 0.45) * r
    shoulder, top = h * _u(rng, 0.6, 0.72), h * 0.9
    profile = [(0, 0), (r, 0), (r, shoulder), (neck, top - 0.02), (neck, top), (0, top)]
    parts = [lathe(profile, (0, 0, 0), main, spacing=0.015)]
    cap = tone(rng, pick(rng, ("white", "black", "gray", "red", "blue")))
    parts.append(cylinder(neck * 1.15, h - top, (0, 0, top), cap, spacing=0.015))
    return finish("bottle", parts, {"material": "glass" if name in ("green", "brown") else "plastic"})


def paper(rng: np.random.Generator) -> Model:
    """Paper: a sheet or a small pile of A4 sheets, a little askew."""
    n = int(rng.integers(1, 6))
    parts = []
    for i in range(n):
        sheet = box((0.21, 0.297, 0.002), (0, 0, 0.001 + 0.002 * i), tone(rng, "white", 6), spacing=0.05)
        parts.append(rotated(sheet, rng.normal(0, 0.08)).moved((*rng.normal(0, 0.01, 2), 0)))
    top_z = 0.002 * n
    return finish("paper", parts, {"material": "paper", "state": "pile" if n > 1 else "sheet"},
                  Surface(top_z, (-0.09, -0.13, 0.09, 0.13)))  # fmt: skip


def bag(rng: np.random.Generator) -> Model:
    """A bag: a tote, shopping or paper bag with two handles."""
    kind = pick(rng, ("tote", "shopping", "paper"))
    palette = ("brown", "beige", "white") if kind == "paper" else FABRIC + PLASTIC
    main = tone(rng, pick(rng, palette))
    w, d, h = _u(rng, 0.28, 0.45), _u(rng, 0.1, 0.2), _u(rng, 0.25, 0.42)
    parts = [box((w, d, h), (0, 0, h / 2), main, 0.015 if kind != "paper" else 0.003, spacing=0.035)]
    strap = main if rng.random() < 0.6 else tone(rng, pick(rng, ("black", "brown", "beige")))
    for sy in (-1, 1):
        ring = rotated(torus(w * 0.2, 0.008, (0, 0, 0), strap, spacing=0.02), np.pi / 2, axis=0)
        parts.append(ring.moved((0, sy * (d / 2 - 0.01), h - 0.01)))
    material = {"paper": "paper", "shopping": "plastic", "tote": "fabric"}[kind]
    return finish("bag", parts, {"type": f"{kind} bag", "material": material})


def clothes(rng: np.random.Generator) -> Model:
    """Clothes: a heap of a few folded or crumpled garments (lumpy flattened blobs) in one or two colors."""
    names = [pick(rng, FABRIC), pick(rng, FABRIC + ("white", "black", "blue"))]
    w, d = _u(rng, 0.3, 0.55), _u(rng, 0.25, 0.45)
    parts = []
    for i in range(int(rng.integers(2, 5))):
        size = (w * _u(rng, 0.5, 0.9), d * _u(rng, 0.5, 0.9), _u(rng, 0.03, 0.07))
        centre = (rng.uniform(-0.25, 0.25) * w, rng.uniform(-0.25, 0.25) * d, size[2] / 2 + 0.02 * i)
        garment = box(
            size, centre, tone(rng, names[int(rng.random() < 0.3)]), size[2] / 2 * 0.95, spacing=0.04
        )
        garment = rotated(garment, rng.uniform(-0.5, 0.5), pivot=centre)
        garment.vertices[:, 2] += (
            0.006 * np.sin(garment.vertices[:, 0] * 40 + i) * (garment.vertices[:, 2] > centre[2])
        )
        parts.append(garment)
    lowest = min(float(p.vertices[:, 2].min()) for p in parts)
    parts = [p.moved((0, 0, -lowest)) for p in parts]
    return finish(
        "clothes", parts, {"material": "fabric", "state": "folded" if rng.random() < 0.4 else "heap"}
    )


def shoe(rng: np.random.Generator, color: str | None = None, seed: int | None = None) -> Model:
    """A shoe, toe at +y: a dark sole, an upper over the back two thirds and a rounded toe cap. Pass the
    same `color` and `seed` to make its pair."""
    r = np.random.default_rng(seed) if seed is not None else rng
    name = color or pick(r, ("black", "black", "white", "brown", "gray", "blue", "red", "beige"))
    main = tone(r, name, 6)
    length, width = _u(r, 0.24, 0.3), _u(r, 0.085, 0.105)
    sole_c = tone(r, "black" if name != "black" else "gray", 6)
    sole_h, upper_h = 0.025, _u(r, 0.06, 0.11)
    parts = [box((width, length, sole_h), (0, 0, sole_h / 2), sole_c, 0.008, spacing=0.02)]
    parts.append(box((width * 0.95, length * 0.62, upper_h), (0, -length * 0.17, sole_h + upper_h / 2), main,
                     0.025, spacing=0.02))  # fmt: skip
    parts.append(ellipsoid((width * 0.46, length * 0.25, upper_h * 0.45), (0, length * 0.22, sole_h), main,
                           spacing=0.02))  # fmt: skip
    return finish("shoe", parts, {"material": pick(r, ("leather", "fabric"))})


def mouse(rng: np.random.Generator) -> Model:
    """A computer mouse: a low rounded shell."""
    main = tone(rng, pick(rng, ("black", "black", "white", "gray")), 6)
    w, length, h = _u(rng, 0.055, 0.07), _u(rng, 0.1, 0.12), _u(rng, 0.03, 0.04)
    shell = ellipsoid((w / 2, length / 2, h), (0, 0, 0), main, spacing=0.012)
    keep = shell.vertices[:, 2] >= 0
    shell.vertices[~keep, 2] = 0.0  # the flat underside
    return finish("mouse", [shell], {"type": pick(rng, ("wired", "wireless"))})


def cable(rng: np.random.Generator) -> Model:
    """A cable lying in loose curves (a charger, a power or a network cable)."""
    main = tone(rng, pick(rng, ("black", "black", "white", "gray")), 6)
    thick = _u(rng, 0.006, 0.01)
    n = int(rng.integers(5, 9))
    angle = rng.uniform(0, 2 * np.pi)
    points = [np.zeros(2)]
    for _ in range(n):
        angle += rng.normal(0, 0.7)
        points.append(points[-1] + _u(rng, 0.08, 0.15) * np.array([np.cos(angle), np.sin(angle)]))
    parts = []
    for a, b in zip(points[:-1], points[1:]):
        step = b - a
        seg = box((float(np.linalg.norm(step)) + thick, thick, thick), (0, 0, thick / 2), main, spacing=0.03)
        mid = (a + b) / 2
        parts.append(rotated(seg, float(np.arctan2(step[1], step[0]))).moved((mid[0], mid[1], 0)))
    return finish("cable", parts, {"material": "rubber"})


def small_box(rng: np.random.Generator) -> Model:
    """A small box for a shelf or a desk: a tissue box, a shoebox-sized carton or a lidded storage box."""
    w, d, h = _u(rng, 0.1, 0.3), _u(rng, 0.08, 0.2), _u(rng, 0.05, 0.15)
    main = tone(rng, pick(rng, ("brown", "white", "blue", "red", "beige", "gray", "green", "black")))
    shell = box((w, d, h), (0, 0, h / 2), main, 0.003, spacing=0.025)
    top = Surface(h, (-w / 2 + 0.01, -d / 2 + 0.01, w / 2 - 0.01, d / 2 - 0.01))
    return finish("box", [shell], {"material": pick(rng, ("cardboard", "plastic")), "size": "small"}, top)


# ------------------------------------------------------------------------------------------ wall items


def picture(rng: np.random.Generator) -> Model:
    """A framed picture: a canvas with a main color and a few colored shapes."""
    w, h, t = _u(rng, 0.3, 1.0), _u(rng, 0.3, 0.8), _u(rng, 0.02, 0.035)
    main_name = pick(rng, COLOR_NAMES)
    canvas = box((w, t, h), (0, 0, h / 2), tone(rng, main_name), spacing=0.02)
    v = canvas.vertices
    others = [c for c in COLOR_NAMES if c != main_name]
    for _ in range(int(rng.integers(1, 4))):
        cx, cz = rng.uniform(-w / 3, w / 3), rng.uniform(h / 4, 3 * h / 4)
        rx, rz = rng.uniform(0.1, 0.22) * w, rng.uniform(0.1, 0.22) * h
        blob = (((v[:, 0] - cx) / rx) ** 2 + ((v[:, 2] - cz) / rz) ** 2 < 1) & _front_mask(canvas, t / 2)
        canvas = canvas.painted(blob, tone(rng, pick(rng, others)))
    frame = tone(rng, pick(rng, ("black", "white", "brown", "beige", "gray")))
    f = _u(rng, 0.015, 0.04)
    parts = [canvas]
    for x in (-w / 2 - f / 2, w / 2 + f / 2):
        parts.append(box((f, t + 0.008, h + 2 * f), (x, 0.004, h / 2), frame))
    for z in (-f / 2, h + f / 2):
        parts.append(box((w, t + 0.008, f), (0, 0.004, z), frame))
    shape = "square" if abs(w - h) < 0.1 else ("landscape" if w > h else "portrait")
    return finish("picture", parts, {"shape": shape})


def whiteboard(rng: np.random.Generator, width: float | None = None) -> Model:
    """A whiteboard: white board with some marker strokes, aluminium frame and a pen tray."""
    w = width or _u(rng, 1.2, 2.4)
    h, t = _u(rng, 0.9, 1.2), 0.02
    board = box((w, t, h), (0, 0, h / 2), tone(rng, "white", 6), spacing=0.03)
    v = board.vertices
    for _ in range(int(rng.integers(0, 5))):
        z, x0 = rng.uniform(0.2, 0.85) * h, rng.uniform(-0.4, 0.2) * w
        stroke = (np.abs(v[:, 2] - z) < 0.012) & (v[:, 0] > x0) & (v[:, 0] < x0 + rng.uniform(0.1, 0.3) * w)
        board = board.painted(
            stroke & _front_mask(board, t / 2), tone(rng, pick(rng, ("blue", "black", "red", "green")))
        )
    frame = tone(rng, "gray", 6)
    parts = [board]
    for x in (-w / 2 - 0.01, w / 2 + 0.01):
        parts.append(box((0.02, t + 0.01, h + 0.04), (x, 0.005, h / 2), frame))
    for z in (-0.01, h + 0.01):
        parts.append(box((w, t + 0.01, 0.02), (0, 0.005, z), frame))
    parts.append(box((w * 0.6, 0.06, 0.02), (0, t / 2 + 0.03, 0.0), frame))
    return finish("whiteboard", parts, {})


def curtain(rng: np.random.Generator, width: float, height: float, color: str | None = None) -> Model:
    """A gathered curtain panel: a thin sheet folded into vertical pleats."""
    name = color or pick(
        rng, ("white", "white", "beige", "gray", "blue", "green", "red", "brown", "yellow", "pink", "purple")
    )
    t, amp, period = 0.02, _u(rng, 0.02, 0.035), _u(rng, 0.1, 0.16)
    sheet = box((width, t, height), (0, 0, height / 2), tone(rng, name), spacing=0.025)
    phase = rng.uniform(0, 2 * np.pi)
    sheet.vertices[:, 1] += amp * np.sin(2 * np.pi * sheet.vertices[:, 0] / period + phase)
    return finish("curtain", [sheet], {"material": "fabric"})


def backpack(rng: np.random.Generator) -> Model:
    """A backpack: padded body, front pocket, shoulder straps on the back and a top handle."""
    name = pick(rng, ("black", "black", "blue", "red", "gray", "green", "purple", "orange"))
    main = tone(rng, name)
    w, d, h = _u(rng, 0.27, 0.34), _u(rng, 0.13, 0.2), _u(rng, 0.38, 0.48)
    parts = [box((w, d, h), (0, 0, h / 2), main, 0.05, spacing=0.025)]
    parts.append(box((w * 0.75, 0.06, h * 0.4), (0, d / 2, h * 0.28), main, 0.025, spacing=0.025))
    strap = tone(rng, "black" if name != "black" else "gray")
    for sx in (-1, 1):
        parts.append(box((0.05, 0.02, h * 0.75), (sx * w * 0.25, -d / 2 - 0.005, h * 0.5), strap, 0.008))
    parts.append(rotated(torus(0.035, 0.008, (0, 0, 0), strap), np.pi / 2, axis=0).moved((0, 0, h + 0.02)))
    return finish("backpack", parts, {"material": "fabric"})


# ------------------------------------------------------------------------------------------- openings


def door(rng: np.random.Generator, width: float, height: float) -> Model:
    """A closed door leaf with raised panels and a lever handle, in a casing laid on the wall (back at -y)."""
    name = pick(rng, ("white", "white", "brown", "beige", "gray"))
    main = tone(rng, name, 8)
    casing, t = _u(rng, 0.05, 0.08), 0.035
    parts = [box((width, t, height), (0, t / 2, height / 2), main, 0.003, spacing=0.03)]
    for x in (-width / 2 - casing / 2, width / 2 + casing / 2):
        parts.append(box((casing, 0.02, height + casing), (x, 0.01, (height + casing) / 2), main))
    parts.append(box((width + 2 * casing, 0.02, casing), (0, 0.01, height + casing / 2), main))
    if rng.random() < 0.6:
        for z0, z1 in ((0.15, height * 0.45), (height * 0.52, height - 0.15)):
            parts.append(
                box((width - 0.24, 0.008, z1 - z0), (0, t + 0.004, (z0 + z1) / 2), main, spacing=0.03)
            )
    metal = tone(rng, pick(rng, ("gray", "black")))
    hx = width / 2 - 0.08
    parts.append(rotated(cylinder(0.03, 0.012, (0, 0, 0), metal), -np.pi / 2, axis=0).moved((hx, t, 1.0)))
    parts.append(box((0.12, 0.02, 0.02), (hx - 0.05, t + 0.05, 1.0), metal))
    parts.append(box((0.02, 0.05, 0.02), (hx, t + 0.025, 1.0), metal))
    return finish("door", parts, {"material": "wooden"})


def window(rng: np.random.Generator, width: float, height: float) -> Model:
    """A window: glass panes in a frame with a mullion, and a sill board, set on the wall (back at -y)."""
    name = pick(rng, ("white", "white", "white", "black", "brown", "gray"))
    frame = tone(rng, name, 8)
    f, depth = _u(rng, 0.05, 0.08), _u(rng, 0.05, 0.07)
    parts = [
        box((width - 2 * f, 0.012, height - 2 * f), (0, 0.006, height / 2), (172, 186, 196), spacing=0.03)
    ]
    for x in (-width / 2 + f / 2, width / 2 - f / 2):
        parts.append(box((f, depth, height), (x, depth / 2, height / 2), frame))
    for z in (f / 2, height - f / 2):
        parts.append(box((width - 2 * f, depth, f), (0, depth / 2, z), frame))
    if width > 0.9:
        parts.append(box((0.04, depth * 0.7, height - 2 * f), (0, depth * 0.35, height / 2), frame))
    sill = _u(rng, 0.1, 0.16)
    parts.append(box((width + 0.1, sill, 0.03), (0, sill / 2, -0.015), frame))
    return finish("window", parts, {"panes": "two panes" if width > 0.9 else "one pane"})


BUILDERS: dict[str, Callable[..., Model]] = {
    "chair": chair,
    "office chair": office_chair,
    "armchair": armchair,
    "stool": stool,
    "couch": couch,
    "bed": bed,
    "table": table,
    "coffee table": coffee_table,
    "desk": desk,
    "cabinet": cabinet,
    "nightstand": nightstand,
    "dresser": dresser,
    "bookshelf": bookshelf,
    "shelf": shelf,
    "kitchen cabinet": lambda rng: kitchen_cabinet(rng, float(rng.uniform(0.4, 0.9))),
    "kitchen counter": lambda rng: kitchen_counter(rng, float(rng.uniform(1.2, 2.8))),
    "lamp": lamp,
    "monitor": monitor,
    "tv": tv,
    "keyboard": keyboard,
    "laptop": laptop,
    "microwave": microwave,
    "refrigerator": refrigerator,
    "toilet": toilet,
    "sink": sink,
    "bathtub": bathtub,
    "mirror": mirror,
    "towel": towel,
    "pillow": pillow,
    "box": cardboard_box,
    "trash can": trash_can,
    "plant": plant,
    "picture": picture,
    "whiteboard": whiteboard,
    "curtain": lambda rng: curtain(rng, float(rng.uniform(0.4, 0.8)), float(rng.uniform(1.4, 2.3))),
    "backpack": backpack,
    "book": book,
    "cup": mug,
    "bottle": bottle,
    "paper": paper,
    "bag": bag,
    "clothes": clothes,
    "shoe": shoe,
    "mouse": mouse,
    "cable": cable,
    "door": lambda rng: door(rng, float(rng.uniform(0.8, 0.95)), float(rng.uniform(2.0, 2.1))),
    "window": lambda rng: window(rng, float(rng.uniform(0.8, 1.6)), float(rng.uniform(1.0, 1.5))),
}
