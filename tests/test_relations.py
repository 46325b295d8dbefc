"""Spatial relations on hand-made layouts whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from core.scene.objects import ObjectInfo
from core.scene.relations import (
    Relation,
    Viewpoint,
    called,
    check_relation,
    direction_of,
    distinguishing_pairs,
    distinguishing_relations,
    holds,
    is_unique,
    relations_of,
    same_class,
    side_of,
)

EXTENT = np.array([6.0, 5.0, 2.6])


def box(label: str, oid: int, lo, hi, color: str | None = None, **attributes: str) -> ObjectInfo:
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return ObjectInfo(oid, label, np.concatenate([(lo + hi) / 2, hi - lo]), color, dict(attributes))


@pytest.fixture()
def room() -> dict[str, ObjectInfo]:
    """An office-bedroom: desk in the corner with a box on it and one under it, a bed against the far wall."""
    objects = [
        box("floor", 0, [0, 0, -0.02], [6, 5, 0]),
        box("desk", 1, [4.6, 0.0, 0], [6.0, 0.8, 0.75], "brown"),
        box("box", 2, [5.0, 0.2, 0.75], [5.3, 0.5, 0.95], "blue"),  # on the desk
        box("box", 3, [5.1, 0.2, 0.0], [5.5, 0.6, 0.35], "blue"),  # under the desk
        box("chair", 4, [4.0, 0.1, 0], [4.5, 0.6, 0.9], "red"),  # next to the desk
        box("chair", 5, [1.0, 2.0, 0], [1.5, 2.5, 0.9], "red"),  # alone in the room
        box("bed", 6, [2.0, 3.0, 0], [4.0, 5.0, 0.5], "white"),
        box("picture", 7, [2.7, 4.95, 1.2], [3.3, 5.0, 1.6], "green"),
        box("door", 8, [0, 3.8, 0], [0.05, 4.7, 2.1], "brown"),
        box("table", 9, [2.5, 1.2, 0], [3.5, 1.8, 0.7], "beige", material="wooden"),
    ]
    return {f"{o.label}{o.object_id}": o for o in objects}


def test_support_and_under(room) -> None:
    assert check_relation("on", room["box2"], [room["desk1"]]) is True
    assert check_relation("on", room["desk1"], [room["box2"]]) is False
    assert check_relation("on", room["box3"], [room["desk1"]]) is False
    assert check_relation("under", room["box3"], [room["desk1"]]) is True
    assert check_relation("under", room["box2"], [room["desk1"]]) is False
    assert check_relation("on", room["chair4"], [room["floor0"]]) is True


def test_on_a_bed_with_a_headboard() -> None:
    """The bed's box reaches the headboard top, above the pillows lying on the mattress."""
    bed = box("bed", 1, [1.0, 2.0, 0], [2.5, 4.0, 1.0])
    pillow = box("pillow", 2, [1.3, 3.4, 0.45], [1.9, 3.8, 0.6])
    picture = box("picture", 3, [1.2, 3.95, 0.8], [2.2, 4.0, 1.5])  # low on the wall behind the headboard
    nightstand = box("nightstand", 4, [2.6, 3.5, 0], [3.1, 4.0, 0.6])
    assert check_relation("on", pillow, [bed]) is True
    assert check_relation("under", pillow, [bed]) is False
    assert check_relation("on", picture, [bed]) is not True  # straddles the headboard top: cannot tell
    assert (
        check_relation("on", nightstand, [bed]) is False
        and check_relation("under", nightstand, [bed]) is False
    )


def test_above_below_next_to_near(room) -> None:
    assert check_relation("above", room["picture7"], [room["bed6"]]) is True
    assert check_relation("below", room["bed6"], [room["picture7"]]) is True
    assert check_relation("above", room["bed6"], [room["picture7"]]) is False
    assert check_relation("next to", room["chair4"], [room["desk1"]]) is True
    assert check_relation("next to", room["chair5"], [room["desk1"]]) is False
    assert check_relation("next to", room["box2"], [room["desk1"]]) is False  # on it, not beside it
    assert check_relation("near", room["chair5"], [room["desk1"]]) is False
    assert check_relation("near", room["chair4"], [room["box3"]]) is True


def test_between() -> None:
    left = box("chair", 1, [0.5, 1.0, 0], [1.0, 1.5, 0.9])
    table = box("table", 2, [1.5, 0.9, 0], [2.5, 1.6, 0.7])
    right = box("chair", 3, [3.0, 1.0, 0], [3.5, 1.5, 0.9])
    assert check_relation("between", table, [left, right]) is True
    assert check_relation("between", left, [table, right]) is False
    off_line = box("lamp", 4, [1.8, 3.5, 0], [2.1, 3.8, 1.5])
    assert check_relation("between", off_line, [left, right]) is False
    mirror = box("mirror", 5, [3.0, 1.2, 1.2], [3.6, 1.25, 2.0])  # hung high: the table is not between it
    assert check_relation("between", table, [left, mirror]) is False


def test_room_predicates(room) -> None:
    assert check_relation("against the wall", room["bed6"], extent=EXTENT) is True
    assert check_relation("in the corner", room["desk1"], extent=EXTENT) is True
    assert check_relation("in the corner", room["bed6"], extent=EXTENT) is False
    assert check_relation("in the middle of the room", room["desk1"], extent=EXTENT) is False
    assert check_relation("in the middle of the room", room["table9"], extent=EXTENT) is None  # dead band
    middle = box("table", 11, [2.6, 2.1, 0], [3.4, 2.9, 0.7])
    assert check_relation("in the middle of the room", middle, extent=EXTENT) is True
    # without an extent the floor's box gives the room; with neither there is no answer
    assert check_relation("against the wall", room["bed6"], scene=list(room.values())) is True
    assert check_relation("against the wall", room["bed6"]) is None


def test_rankings_within_a_class(room) -> None:
    scene = list(room.values())
    assert check_relation("closest to", room["chair4"], [room["desk1"]], scene=scene) is True
    assert check_relation("closest to", room["chair5"], [room["desk1"]], scene=scene) is False
    assert check_relation("closest to", room["chair5"], [room["door8"]], scene=scene) is True
    assert check_relation("farthest from", room["chair5"], [room["desk1"]], scene=scene) is True
    assert check_relation("largest", room["box3"], scene=scene) is True
    assert check_relation("smallest", room["box3"], scene=scene) is False
    assert check_relation("tallest", room["box3"], scene=scene) is True
    # the two chairs have the same size: no superlative either way
    assert check_relation("largest", room["chair4"], scene=scene) is None
    # a class of one has no ranking
    assert check_relation("largest", room["bed6"], scene=scene) is None


def test_view_dependent_left_right_front_behind() -> None:
    # Observer at the room's south side looking north (+y): west (-x) is on the left.
    view = Viewpoint.looking_at((3.0, 0.5), (3.0, 4.0))
    assert view.local((3.0, 2.5)) == pytest.approx((2.0, 0.0))
    assert view.local((1.0, 0.5)) == pytest.approx((0.0, 2.0))  # 2 m to the west = 2 m to the left
    west = box("lamp", 1, [0.8, 2.0, 0], [1.2, 2.4, 1.5])
    east = box("plant", 2, [4.8, 2.0, 0], [5.2, 2.4, 1.0])
    near_mid = box("box", 3, [2.8, 1.5, 0], [3.2, 1.9, 0.4])
    far_mid = box("bed", 4, [2.0, 3.0, 0], [4.0, 5.0, 0.5])
    assert check_relation("left of", west, [east], viewpoint=view) is True
    assert check_relation("right of", west, [east], viewpoint=view) is False
    assert check_relation("right of", east, [west], viewpoint=view) is True
    assert check_relation("in front of", near_mid, [far_mid], viewpoint=view) is True
    assert check_relation("behind", far_mid, [near_mid], viewpoint=view) is True
    assert check_relation("behind", near_mid, [far_mid], viewpoint=view) is False
    assert check_relation("left of", west, [east]) is None  # no viewpoint, no answer
    # turning around swaps the sides
    back = Viewpoint.looking_at((3.0, 4.0), (3.0, 0.5))
    assert check_relation("left of", west, [east], viewpoint=back) is False
    assert side_of(view, west.center) == "left" and side_of(back, west.center) == "right"
    assert direction_of(view, far_mid.center) == "forward"
    assert direction_of(view, (0.5, 0.6)) == "left"
    assert direction_of(view, (3.0, -1.0)) == "backward"
    assert direction_of(view, (5.0, 2.5)) is None  # 45 degrees: between sectors


def test_leftmost_among_a_class() -> None:
    view = Viewpoint.looking_at((3.0, 0.5), (3.0, 4.0))
    chairs = [box("chair", i, [x, 2.0, 0], [x + 0.5, 2.5, 0.9]) for i, x in enumerate([1.0, 2.5, 4.0])]
    assert check_relation("leftmost", chairs[0], scene=chairs, viewpoint=view) is True
    assert check_relation("leftmost", chairs[1], scene=chairs, viewpoint=view) is False
    assert check_relation("rightmost", chairs[2], scene=chairs, viewpoint=view) is True


def test_attributes_and_unknowns(room) -> None:
    assert check_relation("color", room["bed6"], value="white") is True
    assert check_relation("color", room["bed6"], value="red") is False
    assert check_relation("material", room["table9"], value="wooden") is True
    assert check_relation("material", room["bed6"], value="wooden") is None  # not known
    assert check_relation("color", box("box", 1, [0, 0, 0], [1, 1, 1]), value="red") is None
    assert check_relation("levitating", room["bed6"]) is None


def test_classes_and_uniqueness(room) -> None:
    scene = list(room.values())
    assert called("office chair", "chair") and not called("chair", "office chair")
    assert called("kitchen cabinets", "kitchen cabinet") and called("kitchen cabinets", "cabinet")
    assert same_class("office chair", "chair") and same_class("chair", "office chair")
    assert not same_class("armchair", "chair") and not same_class("table", "desk")
    assert is_unique(room["bed6"], scene) and is_unique(6, scene)
    assert not is_unique(room["chair4"], scene)
    office_chair = box("office chair", 20, [0, 0, 0], [0.5, 0.5, 1.0])
    assert is_unique(office_chair, [*scene, office_chair])  # "the office chair" is not one of the chairs
    assert len([o for o in [*scene, office_chair] if called(o.label, "chair")]) == 3


def test_relations_of_lists_true_facts(room) -> None:
    scene = list(room.values())
    found = relations_of(room["box2"], scene, EXTENT)
    assert Relation(2, "on", (1,), 0.0) in found
    assert Relation(2, "color", (), "blue") in found
    assert all(holds(r, room["box2"], scene, EXTENT) is True for r in found)


def test_distinguishing_relations_single_out_the_target(room) -> None:
    scene = list(room.values())
    found = distinguishing_relations(2, scene, EXTENT)  # the box on the desk, not the one under it
    predicates = {(r.predicate, r.object_ids) for r in found}
    assert ("on", (1,)) in predicates
    assert ("color", ()) not in predicates  # both boxes are blue
    for r in found:
        assert holds(r, room["box2"], scene, EXTENT) is True
        assert holds(r, room["box3"], scene, EXTENT) is False
    chair = {(r.predicate, r.object_ids) for r in distinguishing_relations(4, scene, EXTENT)}
    assert ("next to", (1,)) in chair and ("closest to", (1,)) in chair
    # a unique object: every true relation singles it out
    bed = distinguishing_relations(6, scene, EXTENT)
    assert Relation(6, "against the wall") in bed and Relation(6, "color", (), "white") in bed
    assert all(holds(r, room["bed6"], scene, EXTENT) is True for r in bed)


def test_distinguishing_pairs_when_no_single_fact_is_enough() -> None:
    desk = box("desk", 0, [2.0, 0.0, 0], [3.4, 0.8, 0.75], "brown")
    chairs = [
        box("chair", 1, [1.4, 0.1, 0], [1.9, 0.6, 0.9], "red"),  # red, next to the desk
        box("chair", 2, [3.5, 0.1, 0], [4.0, 0.6, 0.9], "blue"),  # blue, next to the desk
        box("chair", 3, [0.5, 3.0, 0], [1.0, 3.5, 0.9], "red"),  # red, far away
        box("chair", 4, [4.5, 3.0, 0], [5.0, 3.5, 0.9], "blue"),  # blue, far away
    ]
    scene = [desk, *chairs]
    assert not any(r.predicate in ("color", "next to") for r in distinguishing_relations(1, scene))
    pairs = distinguishing_pairs(1, scene)
    keys = [{(r.predicate, r.object_ids) for r in pair} for pair in pairs]
    assert {("color", ()), ("next to", (0,))} in keys
    for pair in pairs:
        for other in chairs[1:]:
            assert any(holds(r, other, scene) is False for r in pair)
