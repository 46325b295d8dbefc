"""Synthetic rooms: every room type generated for real and checked against the rules a real room follows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from core.scene.colors import COLOR_WORDS, color_name, sample_color_words
from core.scene.labels import LabelMap
from core.synth.annotations import SceneContext, SceneFacts, scanrefer_records
from core.synth.dataset import object_infos
from core.synth.layout import COLOR_NAMES, COLOR_RGB, ROOM_TYPES, SynthRoom, generate_room
from core.synth.objects import BUILDERS
from core.synth.shapes import (
    box,
    cup,
    cylinder,
    ellipsoid,
    merge,
    signed_volume,
    torus,
    tray,
    vertex_areas,
)

SEEDS = (0, 1)
SEATS = {"chair", "office chair", "stool", "armchair"}
TABLES = {"table", "desk", "coffee table"}


@pytest.fixture(scope="module")
def rooms() -> dict[tuple[str, int], SynthRoom]:
    return {(rt, seed): generate_room(np.random.default_rng(seed), rt) for rt in ROOM_TYPES for seed in SEEDS}


def boxes(room: SynthRoom) -> tuple[np.ndarray, np.ndarray]:
    """Per-object (K, 3) min and max corners measured on the mesh, as ScanNet boxes are."""
    k = len(room.objects)
    lo, hi = np.full((k, 3), np.inf), np.full((k, 3), -np.inf)
    np.minimum.at(lo, room.vertex_object, room.mesh.vertices)
    np.maximum.at(hi, room.vertex_object, room.mesh.vertices)
    return lo, hi


def test_every_room_type_generates_with_its_anchor_furniture(rooms):
    anchors = {
        "bedroom": {"bed"},
        "living room": {"couch"},
        "office": {"desk", "office chair"},
        "kitchen": {"kitchen cabinet", "kitchen counter"},
        "bathroom": {"toilet", "sink"},
        "conference room": {"table"},
    }
    for (room_type, _), room in rooms.items():
        labels = [o.label for o in room.objects]
        assert room.room_type == room_type
        assert room.extent.shape == (3,)
        assert labels.count("wall") == 4 and labels.count("floor") == 1 and labels.count("door") >= 1
        assert anchors[room_type] <= set(labels), (room_type, labels)
        assert room.mesh.vertices.dtype == np.float32 and room.mesh.colors.dtype == np.uint8
        assert room.mesh.faces.dtype == np.int32 and room.vertex_object.dtype == np.int32
        assert room.albedo is not None and room.albedo.shape == room.mesh.colors.shape
    conference = [r for (t, _), r in rooms.items() if t == "conference room"]
    assert all(6 <= sum(o.label in SEATS for o in r.objects) <= 10 for r in conference)


def test_random_room_type_when_none_is_given():
    room = generate_room(np.random.default_rng(5))
    assert room.room_type in ROOM_TYPES
    with pytest.raises(ValueError):
        generate_room(np.random.default_rng(5), "garage")


def test_mesh_is_dense_but_within_the_triangle_budget(rooms):
    counts = np.array([room.mesh.num_vertices for room in rooms.values()])
    assert np.median(counts) >= 100_000 and counts.min() >= 80_000
    assert max(room.mesh.num_faces for room in rooms.values()) <= 450_000


def test_object_ids_are_dense_and_every_object_has_vertices(rooms):
    for room in rooms.values():
        ids = [o.object_id for o in room.objects]
        assert ids == list(range(len(ids)))
        assert np.array_equal(np.unique(room.vertex_object), np.arange(len(ids)))
        assert all(o.color_name in COLOR_NAMES for o in room.objects)
        assert {o.mount for o in room.objects} <= {"floor", "wall", "on", "structure"}


def test_rooms_hold_many_categories_and_distractors(rooms):
    labels = {o.label for room in rooms.values() for o in room.objects}
    assert len(labels - {"wall", "floor", "door", "window"}) >= 20
    for seed in SEEDS:
        repeated = 0
        for room_type in ROOM_TYPES:
            things = [o.label for o in rooms[room_type, seed].objects if o.mount != "structure"]
            repeated += any(things.count(label) >= 2 for label in set(things))
        assert repeated >= 4


def test_supported_objects_rest_on_the_support_top(rooms):
    """Every object that rests on another stands on the support's surface right under it (a bed's
    mattress, not its headboard; a bookcase's board, not its top): no gap above a few mm, and no vertex of
    the support inside its footprint above that surface (nothing sunk into the support)."""
    checked = 0
    for room in rooms.values():
        lo, hi = boxes(room)
        for obj in room.objects:
            if obj.mount != "on":
                assert obj.support_id is None
                continue
            i, s = obj.object_id, obj.support_id
            assert s is not None and room.objects[s].mount != "structure"
            centre = (lo[i, :2] + hi[i, :2]) / 2
            assert np.all(centre >= lo[s, :2]) and np.all(centre <= hi[s, :2]), (
                obj.label,
                room.objects[s].label,
            )
            half = (hi[i, :2] - lo[i, :2]) / 2
            support = room.mesh.vertices[room.vertex_object == s]
            under = np.all(np.abs(support[:, :2] - centre) <= np.maximum(half * 0.6, 0.02), axis=1)
            if not under.any():
                under = np.all(np.abs(support[:, :2] - centre) <= half, axis=1)
            below = support[under & (support[:, 2] <= lo[i, 2] + 0.003), 2]
            assert len(below) and lo[i, 2] - below.max() < 0.01, (obj.label, room.objects[s].label, lo[i, 2])
            inside = np.all(
                (support[:, :2] > lo[i, :2] + 0.005) & (support[:, :2] < hi[i, :2] - 0.005), axis=1
            )
            sunk = inside & (support[:, 2] > lo[i, 2] + 0.005) & (support[:, 2] < hi[i, 2] - 0.005)
            assert not sunk.any(), (obj.label, room.objects[s].label)
            checked += 1
    assert checked >= 100


def test_small_objects_do_not_interpenetrate(rooms):
    """An object resting on something keeps its box out of every other object's box but its supports'
    (clutter on a chair tucked under a desk does not sink into the desk; books on a board stand apart)."""
    for room in rooms.values():
        lo, hi = boxes(room)
        for obj in room.objects:
            if obj.mount != "on":
                continue
            chain, s = {obj.object_id}, obj.support_id
            while s is not None:
                chain.add(s)
                s = room.objects[s].support_id
            for other in room.objects:
                j = other.object_id
                if j in chain or other.mount == "structure" or room.objects[j].support_id == obj.object_id:
                    continue
                s = obj.support_id
                tucked = np.all(np.minimum(hi[j, :2], hi[s, :2]) > np.maximum(lo[j, :2], lo[s, :2]))
                if other.label in SEATS and tucked:  # a chair tucked under the table the object is on
                    continue
                overlap = np.minimum(hi[obj.object_id], hi[j]) - np.maximum(lo[obj.object_id], lo[j])
                assert not np.all(overlap > 0.005), (room.room_type, obj.label, other.label, overlap)


def test_floor_furniture_does_not_interpenetrate(rooms):
    for room in rooms.values():
        lo, hi = boxes(room)
        floor = [o for o in room.objects if o.mount == "floor"]
        for i, a in enumerate(floor):
            for b in floor[i + 1 :]:
                overlap = np.minimum(hi[a.object_id], hi[b.object_id]) - np.maximum(
                    lo[a.object_id], lo[b.object_id]
                )
                if np.all(overlap > 0.005):
                    pair = {a.label, b.label}
                    tucked = pair & (SEATS | {"cable"})  # chairs tuck in, cables lie under desks
                    assert tucked and pair & TABLES, (room.room_type, a.label, b.label, overlap)


def test_wall_objects_hang_on_a_wall_and_nothing_leaves_the_room(rooms):
    for room in rooms.values():
        lo, hi = boxes(room)
        w, d, _ = room.extent
        for obj in room.objects:
            if obj.mount == "wall":
                i = obj.object_id
                gap = min(lo[i, 1], w - hi[i, 0], d - hi[i, 1], lo[i, 0])
                assert gap <= 0.05, (obj.label, gap)
        v = room.mesh.vertices
        assert np.all(v >= -0.03) and np.all(v <= room.extent + 0.03)


def test_middle_of_the_room_stays_walkable(rooms):
    for room in rooms.values():
        lo, hi = boxes(room)
        w, d, _ = room.extent
        xs, ys = np.meshgrid(np.arange(0.025, w, 0.05), np.arange(0.025, d, 0.05), indexing="ij")
        taken = np.zeros(xs.shape, dtype=bool)
        for obj in room.objects:
            i = obj.object_id
            if obj.mount != "structure" and lo[i, 2] < 1.0:
                taken |= (xs >= lo[i, 0]) & (xs <= hi[i, 0]) & (ys >= lo[i, 1]) & (ys <= hi[i, 1])
        assert (~taken).mean() >= 0.3, (room.room_type, (~taken).mean())


def test_same_seed_same_room_other_seed_other_room():
    a = generate_room(np.random.default_rng(42), "office")
    b = generate_room(np.random.default_rng(42), "office")
    c = generate_room(np.random.default_rng(43), "office")
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.mesh.faces, b.mesh.faces)
    assert np.array_equal(a.mesh.colors, b.mesh.colors) and np.array_equal(a.vertex_object, b.vertex_object)
    assert [(o.label, o.color_name, o.support_id) for o in a.objects] == [
        (o.label, o.color_name, o.support_id) for o in b.objects
    ]
    assert a.mesh.num_vertices != c.mesh.num_vertices or not np.array_equal(a.mesh.vertices, c.mesh.vertices)


def test_color_name_is_the_dominant_color(rooms):
    """The named color covers the largest area of the unlit albedo, as named by `core.scene.colors`;
    after lighting and noise, the namer run on the vertex colors still agrees for almost every object."""
    assert dict(COLOR_WORDS) == COLOR_RGB
    lit_agree, total = 0, 0
    for room in rooms.values():
        words = np.array([COLOR_NAMES.index(w) for w in sample_color_words(room.albedo / 255.0)])
        area = vertex_areas(room.mesh.vertices.astype(np.float64), room.mesh.faces)
        votes = np.zeros((len(room.objects), len(COLOR_NAMES)))
        np.add.at(votes, (room.vertex_object, words), area)
        for obj in room.objects:
            assert COLOR_NAMES[int(votes[obj.object_id].argmax())] == obj.color_name, obj.label
            lit_agree += color_name(room.mesh.colors[room.vertex_object == obj.object_id]) == obj.color_name
            total += 1
    assert lit_agree / total >= 0.9


def test_every_connected_component_belongs_to_one_object(rooms):
    for room in list(rooms.values())[:6]:
        f = room.mesh.faces
        assert np.all(room.vertex_object[f[:, 0]] == room.vertex_object[f[:, 1]])
        assert np.all(room.vertex_object[f[:, 1]] == room.vertex_object[f[:, 2]])
        n = room.mesh.num_vertices
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]]])
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        owners = np.zeros(component.max() + 1, dtype=np.int64) - 1
        owners[component] = room.vertex_object
        assert np.array_equal(owners[component], room.vertex_object)


def test_triangles_are_wound_consistently_and_shells_face_the_room(rooms):
    room = rooms["living room", 0]
    f = room.mesh.faces.astype(np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    keys = directed[:, 0] * room.mesh.num_vertices + directed[:, 1]
    assert len(np.unique(keys)) == len(keys)  # no edge run twice the same way: neighbours agree
    normals = room.mesh.normals
    floor = room.vertex_object == next(o.object_id for o in room.objects if o.label == "floor")
    assert np.all(normals[floor, 2] > 0.99)
    centre = room.extent[:2] / 2
    for obj in room.objects:
        if obj.label == "wall":
            mine = room.vertex_object == obj.object_id
            inward = np.einsum("ij,ij->i", normals[mine, :2], centre - room.mesh.vertices[mine, :2])
            assert np.mean(inward > 0) > 0.95


def test_primitives_are_closed_and_face_outwards():
    assert signed_volume(box((1.0, 0.5, 0.3))) == pytest.approx(0.15, rel=1e-6)
    assert signed_volume(cylinder(0.2, 0.5)) == pytest.approx(np.pi * 0.04 * 0.5, rel=0.02)
    assert signed_volume(ellipsoid((0.3, 0.2, 0.1))) == pytest.approx(4 / 3 * np.pi * 0.006, rel=0.03)
    assert signed_volume(torus(0.2, 0.03)) == pytest.approx(2 * np.pi**2 * 0.2 * 0.03**2, rel=0.15)
    assert signed_volume(cup(0.12, 0.15, 0.3, 0.01)) > 0
    assert signed_volume(merge(tray((0.5, 0.4, 0.15), 0.02))) > 0
    part = box((0.4, 0.4, 0.4), radius=0.1)
    v = part.vertices[part.faces]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    assert np.all(np.einsum("ij,ij->i", normal, v.mean(axis=1)) > 0)
    assert np.linalg.norm(v[:, 1] - v[:, 0], axis=1).max() <= 0.045  # rounding stretches the grid a little
    sharp = box((0.7, 0.3, 0.1))
    corners = sharp.vertices[sharp.faces]
    sides = np.sort(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2), axis=1)
    assert sides[:, :2].max() <= 0.03 + 1e-9  # grid steps of at most 3 cm (the third side is a diagonal)


def test_every_category_builder_makes_a_sound_model():
    categories = set(BUILDERS) - {"door", "window"}
    assert len(categories) >= 30
    rng = np.random.default_rng(3)
    for label, build in BUILDERS.items():
        for _ in range(3):
            model = build(rng)
            assert model.label == label
            assert model.color_name in COLOR_NAMES
            assert abs(model.lo[2]) < 1e-9 and np.allclose((model.lo[:2] + model.hi[:2]) / 2, 0, atol=1e-9)
            assert 0.01 < model.size.max() < 4.5, (label, model.size)
            assert model.faces.max() < len(model.vertices)


# ------------------------------------------------------------------------------------------------ clutter

CLUTTER_NYU40 = {  # ScanNet's raw label -> NYU40 id, as scannetv2-labels.combined.tsv has them
    "book": 23,
    "cup": 40,
    "bottle": 40,
    "paper": 26,
    "bag": 37,
    "clothes": 21,
    "shoe": 40,
    "mouse": 40,
    "cable": 40,
    "keyboard": 40,
    "box": 29,
}


def test_clutter_objects_are_instances_of_their_own_with_scannet_labels(rooms):
    labels = LabelMap.default()
    for raw, nyu40 in CLUTTER_NYU40.items():
        assert labels.nyu40_id(raw) == nyu40, raw
    seen = {o.label for room in rooms.values() for o in room.objects}
    assert len(seen & set(CLUTTER_NYU40)) >= 9, seen & set(CLUTTER_NYU40)
    on_floor = {o.label for room in rooms.values() for o in room.objects if o.mount == "floor"}
    assert len(on_floor & {"shoe", "bag", "clothes", "box", "cable"}) >= 3, on_floor
    on_tops = {
        room.objects[o.support_id].label
        for room in rooms.values()
        for o in room.objects
        if o.label in CLUTTER_NYU40 and o.support_id is not None
    }
    assert len(on_tops & {"desk", "table", "kitchen counter", "bookshelf", "shelf", "nightstand", "bed"}) >= 5


def test_books_stand_on_bookcase_boards_as_separate_objects(rooms):
    """Books are not fused into the bookcase: each is its own object, several per board."""
    shelves = 0
    for room in rooms.values():
        lo, hi = boxes(room)
        for case in (o for o in room.objects if o.label in ("bookshelf", "shelf")):
            books = [o for o in room.objects if o.label == "book" and o.support_id == case.object_id]
            if len(books) < 3:
                continue
            shelves += 1
            i = case.object_id
            assert all(lo[b.object_id, 2] < hi[i, 2] - 0.05 for b in books)  # inside, on inner boards
            heights = np.round([lo[b.object_id, 2] for b in books], 2)
            assert max(np.unique(heights, return_counts=True)[1]) >= 2  # several on one board
            assert all(
                np.all(lo[b.object_id] >= lo[i] - 1e-3) and np.all(hi[b.object_id] <= hi[i] + 1e-3)
                for b in books
            )
    assert shelves >= 2


def test_keyboards_and_mice_sit_on_desks_with_screens(rooms):
    found = 0
    for room in rooms.values():
        for obj in room.objects:
            if obj.label not in ("keyboard", "mouse"):
                continue
            desk = obj.support_id
            assert desk is not None and room.objects[desk].label in ("desk", "table"), obj.label
            screens = {o.label for o in room.objects if o.support_id == desk}
            assert screens & {"monitor", "laptop"}, (obj.label, screens)
            found += 1
    assert found >= 4


def test_most_scanrefer_descriptions_are_about_an_object_with_same_class_twins(rooms):
    """ScanRefer's "multiple" case (the target's class occurs more than once in its scene) is the
    majority, as in ScanRefer (about 81%): rooms hold several chairs, pillows, books, cups, cabinets."""
    multiple, total = 0, 0
    for (room_type, seed), room in rooms.items():
        facts = SceneFacts(f"scene{seed}", room_type, room.extent, object_infos(room), "train")
        scene = SceneContext(facts)
        for record in scanrefer_records(scene, np.random.default_rng(seed)):
            target = scene.by_id[int(record["object_id"])]
            multiple += len(scene.members(target)) > 1
            total += 1
    assert total >= 200 and multiple / total > 0.7, (multiple, total)
