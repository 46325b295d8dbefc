"""Spatial relations between annotated objects, computed from their axis-aligned boxes alone.

One module serves everything that writes or checks language about a scene: the synthetic benchmark
writer, the captioner and its fact checker. Each predicate is three-valued: True when the geometry
clearly supports it, False when it clearly contradicts it, and None inside a dead band around the
threshold or when context is missing (no room extent, no viewpoint, unknown color). A statement is only
written when True, and only refuted when False.

Conventions: boxes are `[cx, cy, cz, dx, dy, dz]` in metres, +Z up, floor at z = 0; the room interior is
x in [0, W], y in [0, D] when an extent (W, D, H) is given, else the footprint of the "floor" object.
A subject's class is every object that "the <subject's label>" could name: the same label, or a label whose
head noun it is. "The chair" could be an office chair, so among chairs an office chair is a distractor;
"the office chair" never means a plain chair. Anchors must differ from the subject both ways round.

Predicates (anchors in parentheses): on, in, under, above, below, next to, near, far from (one anchor, far
from is checked only, never listed by `relations_of`); between (two);
closest to, farthest from (one, among the subject's class); largest, smallest, tallest, shortest (the
subject's class); against the wall, in the corner, in the middle of the room; left of, right of, in front
of, behind (one anchor, from a `Viewpoint`); leftmost, rightmost (the subject's class, from a viewpoint);
color, material, shape, texture (compared with `value`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from core.scene.objects import ObjectInfo
from core.text import singular, singular_phrase  # singular_phrase: re-exported for the relation's users

STRUCTURAL_LABELS = frozenset({"wall", "floor", "ceiling", "door", "window"})
ATTRIBUTE_PREDICATES = ("color", "material", "shape", "texture")

# Thresholds in metres: (clearly true at or below, clearly false at or above).
NEXT_TO_GAP = (0.3, 0.5)  # footprint gap
NEAR_GAP = (1.0, 1.5)  # 3D box gap
WALL_GAP = (0.15, 0.35)  # footprint to the nearest wall
CORNER_GAP = (0.3, 0.6)  # footprint to both walls of a corner
MIDDLE_OFFSET = (0.15, 0.3)  # centre offset from the room centre, as a fraction of the room size
CONTACT = 0.05  # vertical slack of a support contact
RANK_MARGIN = 0.25  # metres between the first and second of a closest / farthest ranking
SIZE_RATIO = 1.3  # volume ratio between the first and second of a largest / smallest ranking
HEIGHT_MARGIN = 0.1  # metres between the first and second of a tallest / shortest ranking
SIDE_MARGIN = 0.3  # lateral metres that make "left of" / "right of" clear
DEPTH_MARGIN = 0.3  # depth metres that make "in front of" / "behind" clear
RAISED = 0.15  # metres above its support's ground from which a base inside the support's box rests on it
# An object reaching above its support's top rests on it when its base is in the support's upper part
# (a pillow on a sofa seat under the backrest's top, a lamp whose base is sunk 17 cm into a table top):
SEAT_FRACTION = 0.35  # base at least this fraction of the support's height above its ground, and
SUNK_DEPTH = 0.6  # at most this many metres below the support's top (a curtain behind a plant is not on it)
EDGE_INSET = 0.08  # and its footprint this far inside the support's (a picture behind a headboard is not)
STABLE_ASPECT = 10.0  # height over its thinnest footprint side above which nothing stands on its own: a
# curtain hung just above a plant is not on it (such a slab rests only by leaning, which a box cannot show)
SMALLER_PLAN = 0.5  # a resting object's floor-plan area is below this fraction of its support's
INSIDE_COVER = (0.8, 0.5)  # footprint cover: clearly in a container at or above, clearly not below
# Head nouns of things that hold objects inside their box ("the box in the bookshelf", "a cup in the sink").
CONTAINERS = frozenset(
    {"bookshelf", "bookcase", "shelf", "cabinet", "closet", "wardrobe", "sink", "bathtub", "basket",
     "bin", "can", "box", "drawer", "refrigerator", "bowl", "tub"}
)  # fmt: skip


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Viewpoint:
    """An observer on the floor plan: a position and a facing direction (both xy).

    `facing_id` names the object looked at, so that text can say "when facing the bed".
    """

    position: tuple[float, float]
    forward: tuple[float, float]
    facing_id: int | None = None

    @classmethod
    def looking_at(cls, position: Sequence[float], target: Sequence[float], facing_id: int | None = None):
        """A viewpoint at `position` facing the point `target` (only x and y are used)."""
        pos = np.asarray(position, dtype=np.float64)[:2]
        direction = np.asarray(target, dtype=np.float64)[:2] - pos
        norm = float(np.linalg.norm(direction))
        if norm < 1e-9:
            raise ValueError("a viewpoint cannot face its own position")
        fwd = direction / norm
        return cls((float(pos[0]), float(pos[1])), (float(fwd[0]), float(fwd[1])), facing_id)

    def local(self, point: Sequence[float]) -> tuple[float, float]:
        """(ahead, left) metres of a point in the observer's frame: +ahead in front, +left to the left."""
        d = np.asarray(point, dtype=np.float64)[:2] - np.asarray(self.position)
        fx, fy = self.forward
        return float(d[0] * fx + d[1] * fy), float(-d[0] * fy + d[1] * fx)

    def bearing(self, point: Sequence[float]) -> float:
        """Angle in degrees of a point from straight ahead: positive to the left, in (-180, 180]."""
        ahead, left = self.local(point)
        return float(np.degrees(np.arctan2(left, ahead)))


@dataclass(frozen=True)
class Relation:
    """`subject_id predicate object_ids`, e.g. (3, "on", (7,)); `value` holds a measure or an attribute."""

    subject_id: int
    predicate: str
    object_ids: tuple[int, ...] = ()
    value: float | str | None = None
    viewpoint: Viewpoint | None = None


# -------------------------------------------------------------------------------------------- geometry


def _lo_hi(obj: ObjectInfo) -> tuple[np.ndarray, np.ndarray]:
    box = np.asarray(obj.box, dtype=np.float64)
    return box[:3] - box[3:6] / 2, box[:3] + box[3:6] / 2


def _axis_gaps(a: ObjectInfo, b: ObjectInfo) -> np.ndarray:
    (alo, ahi), (blo, bhi) = _lo_hi(a), _lo_hi(b)
    return np.maximum(0.0, np.maximum(alo - bhi, blo - ahi))


def footprint_gap(a: ObjectInfo, b: ObjectInfo) -> float:
    """Distance between the floor-plan rectangles of two boxes (0 when they overlap)."""
    return float(np.linalg.norm(_axis_gaps(a, b)[:2]))


def box_gap(a: ObjectInfo, b: ObjectInfo) -> float:
    """Distance between two boxes in 3D (0 when they touch or overlap)."""
    return float(np.linalg.norm(_axis_gaps(a, b)))


def footprint_cover(a: ObjectInfo, b: ObjectInfo) -> float:
    """Fraction of a's floor-plan area that lies over b's."""
    (alo, ahi), (blo, bhi) = _lo_hi(a), _lo_hi(b)
    overlap = np.clip(np.minimum(ahi, bhi) - np.maximum(alo, blo), 0, None)[:2].prod()
    area = max(float((ahi - alo)[:2].prod()), 1e-9)
    return float(overlap / area)


def _inside_footprint(point: np.ndarray, obj: ObjectInfo, pad: float) -> bool:
    lo, hi = _lo_hi(obj)
    return bool(np.all(point[:2] >= lo[:2] - pad) and np.all(point[:2] <= hi[:2] + pad))


def _band(value: float, limits: tuple[float, float]) -> bool | None:
    """True at or below the first limit, False at or above the second, None between."""
    if value <= limits[0]:
        return True
    if value >= limits[1]:
        return False
    return None


def _all(*values: bool | None) -> bool | None:
    """Three-valued AND."""
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def normalize_label(label: str) -> str:
    return " ".join(label.replace("_", " ").lower().split())


def head_noun(label: str) -> str:
    """The last word of a label, singular: 'kitchen cabinets' -> 'cabinet' (English: `core.text`)."""
    words = normalize_label(label).split()
    return singular(words[-1]) if words else ""


@lru_cache(maxsize=65536)
def called(label: str, name: str) -> bool:
    """Can "the <name>" refer to an object labelled `label`? Yes for the same label (any number) and for
    its head noun: an office chair is a "chair", but a chair is not an "office chair"."""
    name = singular_phrase(name)
    return singular_phrase(label) == name or head_noun(label) == name


def same_class(a: str, b: str) -> bool:
    """Labels that one noun phrase could name both ways round ("office chair" ~ "chair")."""
    return called(a, b) or called(b, a)


def class_members(subject: ObjectInfo, objects: Sequence[ObjectInfo]) -> list[ObjectInfo]:
    """The objects that "the <subject's label>" could name, the subject included: its class."""
    return [o for o in objects if o is subject or called(o.label, subject.label)]


def is_unique(target: ObjectInfo | int, objects: Sequence[ObjectInfo]) -> bool:
    """True when "the <target's label>" names the target alone in `objects`."""
    target = _resolve(target, objects)
    return len(class_members(target, objects)) == 1


def _resolve(target: ObjectInfo | int, objects: Sequence[ObjectInfo]) -> ObjectInfo:
    if isinstance(target, ObjectInfo):
        return target
    for obj in objects:
        if obj.object_id == target:
            return obj
    raise KeyError(f"object {target} is not in the scene")


def room_bounds(
    objects: Sequence[ObjectInfo], extent: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Floor-plan rectangle (lo, hi) of the room: [0, W] x [0, D] from the extent, else the floor's box."""
    if extent is not None:
        return np.zeros(2), np.asarray(extent, dtype=np.float64)[:2]
    floors = [o for o in objects if normalize_label(o.label) == "floor"]
    if not floors:
        return None
    lo, hi = _lo_hi(floors[0])
    return lo[:2], hi[:2]


# ----------------------------------------------------------------------------------- support, vertical


def on(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """a rests on b: most of a's footprint is over b and a's bottom meets b's top (a lamp on a nightstand),
    or a's base lies inside b's box off b's ground (a pillow on a sofa seat under the backrest's top, a box
    on a shelf, a lamp whose base is sunk into the table top); a may then reach above b's top. Objects
    standing on the same ground as b are never on it."""
    cover = footprint_cover(a, b)
    if cover < 0.2 or a.bottom > b.top + 3 * CONTACT:
        return False
    unstable = float(a.size[2]) > STABLE_ASPECT * max(float(a.size[:2].min()), 1e-3)
    if a.bottom >= b.top - 2 * CONTACT and a.top > b.top:  # standing on b's top surface
        return True if cover >= 0.5 and a.bottom <= b.top + CONTACT and not unstable else None
    if a.bottom <= b.bottom + CONTACT:  # on b's own ground: beside or under it
        return False
    smaller = np.prod(a.size[:2]) < SMALLER_PLAN * np.prod(b.size[:2])
    if not (cover >= 0.5 and smaller and a.bottom >= b.bottom + RAISED) or unstable:
        return None
    if a.top <= b.top:  # within b's box: on a shelf of it, on a bed under the headboard's top
        return True
    upper = a.bottom >= b.bottom + SEAT_FRACTION * (b.top - b.bottom) and a.bottom >= b.top - SUNK_DEPTH
    (alo, ahi), (blo, bhi) = _lo_hi(a), _lo_hi(b)
    inset = float(min((alo - blo)[:2].min(), (bhi - ahi)[:2].min()))
    return True if upper and inset >= EDGE_INSET else None  # on a seat under the backrest, or sunk into b


def inside(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """a is in b: b holds things (`CONTAINERS`: a bookshelf, a sink, a trash can), a's box lies within b's
    and a rests inside it rather than standing on b's top ("the box in the bookshelf")."""
    if head_noun(b.label) not in CONTAINERS or same_class(a.label, b.label):
        return False
    cover = footprint_cover(a, b)
    if cover < INSIDE_COVER[1] or a.bottom >= b.top - CONTACT or a.top > b.top + 3 * CONTACT:
        return False
    smaller = np.prod(a.size) < SMALLER_PLAN * np.prod(b.size)
    if cover >= INSIDE_COVER[0] and smaller and a.top <= b.top + CONTACT and a.bottom >= b.bottom - CONTACT:
        return True
    return None


def under(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """a is beneath b on b's own ground (a box under the table): smaller in plan, centred over b's
    footprint, standing where b stands and lower than b's top."""
    centre = a.center
    smaller = np.prod(a.size[:2]) < np.prod(b.size[:2])
    if not smaller or not _inside_footprint(centre, b, 0.1) or a.top > b.top + CONTACT:
        return False
    if abs(a.bottom - b.bottom) >= 3 * CONTACT:  # raised inside b (on a shelf of it) or hanging below it
        return False
    if _inside_footprint(centre, b, 0.0) and a.top <= b.top - CONTACT and abs(a.bottom - b.bottom) <= CONTACT:
        return True
    return None


def above(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """a is higher than b's top without touching it, roughly over b (a picture above the bed)."""
    gap = a.bottom - b.top
    if gap < -CONTACT or not _inside_footprint(a.center, b, 0.6):
        return False
    if gap >= 0.1 and _inside_footprint(a.center, b, 0.25):
        return True
    return None


def below(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    return above(b, a)


# -------------------------------------------------------------------------------------------- distance


def next_to(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """Side by side on the floor plan (footprint gap), and not stacked on or under each other."""
    stacked = [on(a, b), on(b, a), under(a, b), under(b, a), above(a, b), above(b, a)]
    if any(s is True for s in stacked):
        return False
    beside = _band(footprint_gap(a, b), NEXT_TO_GAP)
    return beside if beside is not True or all(s is False for s in stacked) else None


def near(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    return _band(box_gap(a, b), NEAR_GAP)


def far_from(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """The negation of `near` with the same dead band: clearly far at or beyond its upper gap, clearly not
    within its lower one ("far from the couch" said of a pillow lying on it is False)."""
    close = near(a, b)
    return None if close is None else not close


def between(a: ObjectInfo, b: ObjectInfo, c: ObjectInfo) -> bool | None:
    """a's centre lies on the floor-plan segment joining b's and c's centres, away from both ends, both
    anchors are close by and at a's height (a nightstand between the bed and the dresser, not "between"
    a mirror hung above it and a chair). Geometry only: `relations_of` never writes it with two anchors
    of one class ("between the pillow and the pillow" names neither)."""
    p, q1, q2 = a.center[:2], b.center[:2], c.center[:2]
    d = q2 - q1
    length = float(np.linalg.norm(d))
    if length < 0.6:
        return None
    t = float((p - q1) @ d) / length**2
    off = abs(float(d[0] * (p - q1)[1] - d[1] * (p - q1)[0])) / length
    gaps = (box_gap(a, b), box_gap(a, c))
    level = all(min(a.top, o.top) > max(a.bottom, o.bottom) for o in (b, c))  # heights overlap
    if t <= 0.0 or t >= 1.0 or off >= max(1.0, 0.6 * length) or max(gaps) >= 2.5 or not level:
        return False
    if 0.2 <= t <= 0.8 and off <= min(0.4, 0.25 * length) and max(gaps) <= 1.5:
        return True
    return None


def _extreme(mine: float, others: list[float], margin: float, largest: bool) -> bool | None:
    """Is `mine` the largest (or smallest) by at least `margin`; False when another clearly beats it."""
    if not others:
        return None
    sign = 1.0 if largest else -1.0
    best_other = max(sign * v for v in others)
    if sign * mine >= best_other + margin:
        return True
    if best_other >= sign * mine + margin:
        return False
    return None


def _ranked(
    subject: ObjectInfo, anchor: ObjectInfo, scene: Sequence[ObjectInfo], closest: bool
) -> bool | None:
    rivals = [o for o in class_members(subject, scene) if o is not subject and o is not anchor]
    if subject is anchor or not rivals:
        return None
    return _extreme(box_gap(subject, anchor), [box_gap(o, anchor) for o in rivals], RANK_MARGIN, not closest)


def _sized(subject: ObjectInfo, scene: Sequence[ObjectInfo], measure: str, largest: bool) -> bool | None:
    rivals = [o for o in class_members(subject, scene) if o is not subject]
    if measure == "volume":  # compared as log volumes, so the margin is a ratio
        mine, others = np.log(np.prod(subject.size) + 1e-9), [np.log(np.prod(o.size) + 1e-9) for o in rivals]
        return _extreme(float(mine), [float(v) for v in others], float(np.log(SIZE_RATIO)), largest)
    return _extreme(float(subject.size[2]), [float(o.size[2]) for o in rivals], HEIGHT_MARGIN, largest)


# ------------------------------------------------------------------------------------------------ room


def _wall_gaps(obj: ObjectInfo, bounds: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Footprint distance to the walls x = lo, x = hi, y = lo, y = hi (negative when poking through)."""
    lo, hi = _lo_hi(obj)
    return np.array([lo[0] - bounds[0][0], bounds[1][0] - hi[0], lo[1] - bounds[0][1], bounds[1][1] - hi[1]])


def against_wall(obj: ObjectInfo, bounds: tuple[np.ndarray, np.ndarray] | None) -> bool | None:
    if bounds is None:
        return None
    return _band(float(max(_wall_gaps(obj, bounds).min(), 0.0)), WALL_GAP)


def in_corner(obj: ObjectInfo, bounds: tuple[np.ndarray, np.ndarray] | None) -> bool | None:
    if bounds is None:
        return None
    gaps = np.maximum(_wall_gaps(obj, bounds), 0.0)
    corner = max(float(gaps[:2].min()), float(gaps[2:].min()))  # nearest x-wall and nearest y-wall
    return _band(corner, CORNER_GAP)


def in_middle(obj: ObjectInfo, bounds: tuple[np.ndarray, np.ndarray] | None) -> bool | None:
    if bounds is None:
        return None
    size = np.maximum(bounds[1] - bounds[0], 1e-6)
    offset = float(np.max(np.abs(obj.center[:2] - (bounds[0] + bounds[1]) / 2) / size))
    wall = against_wall(obj, bounds)
    return _all(_band(offset, MIDDLE_OFFSET), None if wall is None else not wall)


# ------------------------------------------------------------------------------------------------ view


def left_of(a: ObjectInfo, b: ObjectInfo, view: Viewpoint) -> bool | None:
    """a is further left than b as seen from the viewpoint."""
    shift = view.local(a.center)[1] - view.local(b.center)[1]
    return True if shift >= SIDE_MARGIN else False if shift <= 0 else None


def right_of(a: ObjectInfo, b: ObjectInfo, view: Viewpoint) -> bool | None:
    shift = view.local(b.center)[1] - view.local(a.center)[1]
    return True if shift >= SIDE_MARGIN else False if shift <= 0 else None


def _in_line(a: ObjectInfo, b: ObjectInfo, view: Viewpoint, closer: bool) -> bool | None:
    (ahead_a, left_a), (ahead_b, left_b) = view.local(a.center), view.local(b.center)
    depth = (ahead_b - ahead_a) if closer else (ahead_a - ahead_b)
    lateral = abs(left_a - left_b)
    if depth <= 0 or lateral >= 1.2:
        return False
    if depth >= DEPTH_MARGIN and lateral <= 0.6:
        return True
    return None


def in_front_of(a: ObjectInfo, b: ObjectInfo, view: Viewpoint) -> bool | None:
    """a stands between the observer and b, roughly on the same line of sight."""
    return _in_line(a, b, view, closer=True)


def behind(a: ObjectInfo, b: ObjectInfo, view: Viewpoint) -> bool | None:
    return _in_line(a, b, view, closer=False)


def _sidemost(subject: ObjectInfo, scene: Sequence[ObjectInfo], view: Viewpoint, left: bool) -> bool | None:
    rivals = [o for o in class_members(subject, scene) if o is not subject]
    others = [view.local(o.center)[1] for o in rivals]
    return _extreme(view.local(subject.center)[1], others, SIDE_MARGIN, largest=left)


def side_of(view: Viewpoint, point: Sequence[float], margin: float = SIDE_MARGIN) -> str | None:
    """'left' or 'right' of the observer when the point is clearly to one side, else None."""
    left = view.local(point)[1]
    return "left" if left >= margin else "right" if left <= -margin else None


def direction_of(view: Viewpoint, point: Sequence[float]) -> str | None:
    """'forward', 'left', 'right' or 'backward' by bearing sectors with 30-degree dead bands between."""
    angle = view.bearing(point)
    if abs(angle) <= 30:
        return "forward"
    if abs(angle) >= 150:
        return "backward"
    if 60 <= angle <= 120:
        return "left"
    if -120 <= angle <= -60:
        return "right"
    return None


# ------------------------------------------------------------------------------------------- interface

_PAIR = {
    "on": on, "in": inside, "under": under, "above": above, "below": below, "next to": next_to, "near": near,
}  # fmt: skip
_VIEW_PAIR = {"left of": left_of, "right of": right_of, "in front of": in_front_of, "behind": behind}
_ROOM = {"against the wall": against_wall, "in the corner": in_corner, "in the middle of the room": in_middle}
_SIZE = {
    "largest": ("volume", True),
    "smallest": ("volume", False),
    "tallest": ("height", True),
    "shortest": ("height", False),
}
PREDICATES = (
    *_PAIR, "between", "closest to", "farthest from", *_SIZE, *_ROOM, *_VIEW_PAIR, "leftmost", "rightmost",
    *ATTRIBUTE_PREDICATES,
)  # fmt: skip


def check_relation(
    predicate: str,
    subject: ObjectInfo,
    anchors: Sequence[ObjectInfo] = (),
    *,
    scene: Sequence[ObjectInfo] = (),
    extent: np.ndarray | None = None,
    viewpoint: Viewpoint | None = None,
    value: float | str | None = None,
) -> bool | None:
    """Is `subject predicate anchors` true of the geometry? None when it cannot tell.

    `scene` is needed by class rankings (closest to, largest, leftmost ...) and by the room predicates when
    no `extent` is given; `viewpoint` by the view-dependent ones; `value` by the attribute predicates.
    """
    anchors = list(anchors)
    if predicate in _PAIR and len(anchors) == 1:
        return _PAIR[predicate](subject, anchors[0])
    if predicate == "between" and len(anchors) == 2:
        return between(subject, anchors[0], anchors[1])
    if predicate == "far from" and len(anchors) == 1:
        return far_from(subject, anchors[0])
    if predicate in ("closest to", "farthest from") and len(anchors) == 1 and scene:
        return _ranked(subject, anchors[0], scene, closest=predicate == "closest to")
    if predicate in _SIZE and scene:
        return _sized(subject, scene, *_SIZE[predicate])
    if predicate in _ROOM:
        return _ROOM[predicate](subject, room_bounds(scene, extent))
    if predicate in _VIEW_PAIR and len(anchors) == 1 and viewpoint is not None:
        return _VIEW_PAIR[predicate](subject, anchors[0], viewpoint)
    if predicate in ("leftmost", "rightmost") and viewpoint is not None and scene:
        return _sidemost(subject, scene, viewpoint, left=predicate == "leftmost")
    if predicate in ATTRIBUTE_PREDICATES and value is not None:
        known = subject.color_name if predicate == "color" else subject.attributes.get(predicate)
        return None if known is None else normalize_label(str(known)) == normalize_label(str(value))
    return None


def holds(
    relation: Relation, subject: ObjectInfo, objects: Sequence[ObjectInfo], extent: np.ndarray | None = None
) -> bool | None:
    """Evaluate a relation's predicate, anchors, value and viewpoint for another subject."""
    by_id = {o.object_id: o for o in objects}
    anchors = [by_id[i] for i in relation.object_ids]
    return check_relation(
        relation.predicate,
        subject,
        anchors,
        scene=objects,
        extent=extent,
        viewpoint=relation.viewpoint,
        value=relation.value,
    )


def _attribute_relations(subject: ObjectInfo) -> list[Relation]:
    found = [Relation(subject.object_id, "color", (), subject.color_name)] if subject.color_name else []
    for key in ATTRIBUTE_PREDICATES[1:]:
        if subject.attributes.get(key):
            found.append(Relation(subject.object_id, key, (), str(subject.attributes[key])))
    return found


def relations_of(
    subject: ObjectInfo | int,
    objects: Sequence[ObjectInfo],
    extent: np.ndarray | None = None,
    viewpoint: Viewpoint | None = None,
    anchors: Sequence[ObjectInfo] | None = None,
    with_inside: bool = False,
) -> list[Relation]:
    """Every relation that clearly holds for the subject, attributes included.

    `anchors` limits the objects a relation may point at (default: every other object, except walls,
    which "against the wall" covers; the floor only as a support); "between" uses pairs of non-structural
    anchors of two different classes, neither the subject's. "in" (a container) only with `with_inside`,
    for writers that can phrase it.
    """
    subject = _resolve(subject, objects)
    sid = subject.object_id
    if anchors is None:
        anchors = [o for o in objects if o is not subject and normalize_label(o.label) != "wall"]
    anchors = [a for a in anchors if a is not subject]
    found = _attribute_relations(subject)
    for predicate in (*_ROOM, *_SIZE):
        if check_relation(predicate, subject, scene=objects, extent=extent):
            found.append(Relation(sid, predicate))
    for anchor in anchors:
        if normalize_label(anchor.label) == "floor":  # everything is above and near the floor
            if on(subject, anchor):
                found.append(Relation(sid, "on", (anchor.object_id,), 0.0))
            continue
        for predicate in (*_PAIR, "closest to", "farthest from"):
            if predicate == "in" and not with_inside:
                continue
            if check_relation(predicate, subject, [anchor], scene=objects):
                found.append(
                    Relation(sid, predicate, (anchor.object_id,), round(box_gap(subject, anchor), 3))
                )
        if viewpoint is not None:
            for predicate in _VIEW_PAIR:
                if check_relation(predicate, subject, [anchor], viewpoint=viewpoint):
                    found.append(Relation(sid, predicate, (anchor.object_id,), viewpoint=viewpoint))
    others = [
        a for a in anchors if not same_class(a.label, subject.label) and a.label not in STRUCTURAL_LABELS
    ]
    for b, c in combinations(others, 2):
        if not same_class(b.label, c.label) and between(subject, b, c):
            found.append(Relation(sid, "between", (b.object_id, c.object_id)))
    if viewpoint is not None:
        for predicate in ("leftmost", "rightmost"):
            if check_relation(predicate, subject, scene=objects, viewpoint=viewpoint):
                found.append(Relation(sid, predicate, viewpoint=viewpoint))
    return found


def unique_anchors(target: ObjectInfo, objects: Sequence[ObjectInfo]) -> list[ObjectInfo]:
    """Objects that "the <label>" names unambiguously and that are not of the target's class."""
    return [
        o
        for o in objects
        if o is not target
        and not same_class(o.label, target.label)
        and normalize_label(o.label) != "wall"
        and is_unique(o, objects)
    ]


def distinguishing_relations(
    target_id: int,
    objects: Sequence[ObjectInfo],
    extent: np.ndarray | None = None,
    viewpoint: Viewpoint | None = None,
) -> list[Relation]:
    """Relations that hold for the target and clearly fail for every other object of its class.

    Anchors are limited to objects that are unique in the scene, so that "the <anchor label>" in a
    description is unambiguous. With no same-class distractor every true relation qualifies.
    """
    target = _resolve(target_id, objects)
    distractors = [o for o in class_members(target, objects) if o is not target]
    candidates = relations_of(target, objects, extent, viewpoint, unique_anchors(target, objects))
    return [r for r in candidates if all(holds(r, d, objects, extent) is False for d in distractors)]


def distinguishing_pairs(
    target_id: int,
    objects: Sequence[ObjectInfo],
    extent: np.ndarray | None = None,
    viewpoint: Viewpoint | None = None,
    limit: int = 20,
) -> list[tuple[Relation, Relation]]:
    """Pairs of true relations that together single out the target: every distractor fails one of them."""
    target = _resolve(target_id, objects)
    distractors = [o for o in class_members(target, objects) if o is not target]
    candidates = relations_of(target, objects, extent, viewpoint, unique_anchors(target, objects))
    fails = [{d.object_id for d in distractors if holds(r, d, objects, extent) is False} for r in candidates]
    everyone = {d.object_id for d in distractors}
    pairs = []
    for i, j in combinations(range(len(candidates)), 2):
        if fails[i] | fails[j] == everyone and fails[i] != everyone and fails[j] != everyone:
            pairs.append((candidates[i], candidates[j]))
            if len(pairs) >= limit:
                break
    return pairs


def identifying_relation(
    obj: ObjectInfo, objects: Sequence[ObjectInfo], exclude: Sequence[int] = (), sizes: bool = True
) -> Relation | None:
    """A short, view-independent relation that singles `obj` out among its class, so that a text can name
    it as an anchor: "the largest chair", or "the nightstand closest to the bed" with a reference that is
    unique in the scene, of another class and not in `exclude` (the sentence's subject: a target never
    names itself). Size rankings first (unless `sizes` is False), then references nearest `obj` first.
    None when nothing does (or when `obj` is already unique: nothing to single out)."""
    if is_unique(obj, objects):
        return None
    for predicate, (measure, largest) in _SIZE.items() if sizes else ():
        if _sized(obj, objects, measure, largest):
            return Relation(obj.object_id, predicate)
    references = sorted(
        (
            o
            for o in unique_anchors(obj, objects)
            if o.object_id not in exclude and normalize_label(o.label) != "floor"
        ),
        key=lambda o: (box_gap(obj, o), o.object_id),
    )
    for ref in references:
        if _ranked(obj, ref, objects, closest=True):
            return Relation(obj.object_id, "closest to", (ref.object_id,))
    return None
