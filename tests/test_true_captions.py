"""Captions that are true (issue 11): resolvable anchors, "on" for resting and sunk objects, color from
what the camera sees, spread views, and the scan's own scene type in the narrative."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.claims import SUPERLATIVES, _relation_at, find_mentions, scene_names, tokenize
from core.annotate.config import AnnotateConfig
from core.annotate.facts import AnchorNames, relation_phrase, scene_relations
from core.annotate.scene_runner import SceneAnnotator, annotate_scene
from core.annotate.scene_text import meta_room_type, room_type
from core.annotate.views import distinct_views, viewing_directions
from core.scene.colors import COLOR_WORDS, VisibleColors
from core.scene.mesh import Mesh
from core.scene.objects import ObjectInfo
from core.scene.relations import called, check_relation
from core.scene.render import MeshRenderer
from core.scene.scannet import load_scene
from core.synth.objects import dominant_color

SCENES = ("scene0000_00", "scene0001_00")  # the bedroom and the living room of `synth_root`


def box(label: str, oid: int, lo: list[float], hi: list[float]) -> ObjectInfo:
    lo_, hi_ = np.array(lo, dtype=float), np.array(hi, dtype=float)
    return ObjectInfo(oid, label, np.concatenate([(lo_ + hi_) / 2, hi_ - lo_]))


@pytest.fixture(scope="module")
def annotated(synth_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Both generated scenes through the pipeline with the offline captioner."""
    out = tmp_path_factory.mktemp("true_captions")
    config = AnnotateConfig(seed=1)
    return {
        sid: (
            annotate_scene(synth_root, sid, out / sid, GroundedCaptioner(seed=1), config),
            load_scene(synth_root, sid),
        )
        for sid in SCENES
    }


def _texts(doc: dict) -> list[tuple[str, int | None]]:
    """Every sentence-bearing text of a scene document, with the object it is about (None: scene level)."""
    out: list[tuple[str, int | None]] = []
    for obj in doc["objects"]:
        if obj.get("caption"):
            out.append((obj["caption"], obj["object_id"]))
        for view in obj["views"]:
            out += [(view["isolated_text"], obj["object_id"]), (view["highlighted_text"], obj["object_id"])]
    out += [(f["description"], None) for f in doc["frames"]]
    out.append((doc["narrative"]["text"], None))
    return out


def unresolved_anchors(text: str, subject: ObjectInfo | None, objects: list[ObjectInfo]) -> list[str]:
    """Anchors after a relation phrase that the reader cannot resolve: a name two or more objects answer
    to with no "largest ..." before it nor "nearest the ..." after it, or a name only the subject has."""
    tokens = tokenize(text)
    mentions = {m.start: m for m in find_mentions(tokens, scene_names([o.label for o in objects]))}
    bad, i = [], 0
    while i < len(tokens):
        predicate, length = _relation_at(tokens, i)
        if predicate is None:
            i += 1
            continue
        j, wanted, found = i + length, 2 if predicate == "between" else 1, 0
        while found < wanted and j < len(tokens) and j <= i + length + 3 + 6 * found and predicate not in NO:
            m = mentions.get(j)
            if m is None:
                j += 1
                continue
            found += 1
            definite = "the" in tokens[max(m.start - 2, 0) : m.start]  # "a green plant" refers to no anchor
            if not definite:
                j = m.end
                continue
            members = [o for o in objects if called(o.label, m.name)]
            marked = tokens[m.start - 1] in SUPERLATIVES or tokens[m.end : m.end + 2] == ["nearest", "the"]
            if len(members) >= 2 and not marked:
                bad.append(f"{' '.join(tokens[i : m.end])!r} in {text!r}")
            if subject is not None and members == [subject]:
                bad.append(f"the target as its own anchor: {' '.join(tokens[i : m.end])!r} in {text!r}")
            j = m.end
        i += length
    return bad


NO = ("against the wall", "in the corner", "in the middle of the room")


# ------------------------------------------------------------------------------------------- anchors


def test_no_degenerate_or_ambiguous_anchor_in_any_text(annotated):
    checked = 0
    for result, scene in annotated.values():
        objects = scene.objects()
        by_id = {o.object_id: o for o in objects}
        for text, oid in _texts(result.doc):
            assert not re.search(r"between the ([a-z ]+?) and the \1\b", text.lower()), text
            assert unresolved_anchors(text, by_id.get(oid), objects) == []
            checked += 1
    assert checked > 100


def test_relations_never_use_the_target_or_an_unnameable_anchor(annotated):
    for _result, scene in annotated.values():
        objects = scene.objects()
        names = AnchorNames(objects)
        for obj in objects:
            if obj.label in ("wall", "floor", "ceiling"):
                continue
            for r in scene_relations(obj, objects, names):
                assert obj.object_id not in r.object_ids
                assert all(names.name(i, obj.object_id) for i in r.object_ids)
                if r.predicate == "between":
                    a, b = (names.by_id[i] for i in r.object_ids)
                    assert not (called(a.label, b.label) or called(b.label, a.label))


def test_the_checker_would_catch_the_old_sentences():
    """The text check itself fails on what the old code wrote (so the test above can fail)."""
    objects = [
        box("couch", 1, [0, 0, 0], [2, 0.9, 0.85]),
        box("pillow", 2, [0.3, 0.3, 0.43], [0.8, 0.5, 0.9]),
        box("pillow", 3, [1.2, 0.3, 0.43], [1.7, 0.5, 0.9]),
        box("nightstand", 4, [3, 0, 0], [3.4, 0.4, 0.6]),
        box("nightstand", 5, [5, 0, 0], [5.4, 0.4, 0.6]),
    ]
    assert unresolved_anchors("The couch is between the pillow and the pillow.", objects[0], objects)
    assert unresolved_anchors("It is next to the nightstand.", objects[0], objects)
    assert unresolved_anchors("The couch is next to the couch.", objects[0], objects)
    assert not unresolved_anchors("It is next to the nightstand nearest the couch.", objects[0], objects)
    assert not unresolved_anchors("It is on the couch.", objects[1], objects)


def test_a_class_member_is_named_by_what_singles_it_out():
    bed = box("bed", 1, [1.0, 0.0, 0], [2.6, 2.0, 0.6])
    near = box("nightstand", 2, [0.4, 0.0, 0], [0.9, 0.4, 0.55])
    far = box("nightstand", 3, [4.0, 0.0, 0], [4.5, 0.4, 0.55])
    lamp = box("lamp", 4, [4.1, 0.1, 0.55], [4.3, 0.3, 1.0])
    names = AnchorNames([bed, near, far, lamp])
    assert names.name(1) == "bed"
    assert names.name(2) == "nightstand nearest the bed"
    assert names.name(2, subject_id=1) is None or "bed" not in names.name(2, subject_id=1)
    assert names.name(3) == "nightstand nearest the lamp"
    assert names.name(3, subject_id=4) is None  # the lamp's own sentence cannot use it as the reference
    assert names.name(1, subject_id=1) is None  # a target is never its own anchor
    big = box("nightstand", 5, [6.0, 3.0, 0], [7.0, 4.0, 0.9])
    assert AnchorNames([bed, near, far, big]).name(5) == "largest nightstand"
    # said of another nightstand, "next to the largest nightstand" would read as a claim about the subject
    # (and no reference singles it out here, so such a sentence does not use it at all)
    assert AnchorNames([bed, near, far, big]).name(5, subject_id=3) is None


# -------------------------------------------------------------------------------------- on / sunk


def test_pillow_on_the_couch_in_the_generated_living_room(annotated, synth_root):
    result, scene = annotated["scene0001_00"]
    facts = json.loads((synth_root / "synth" / "scene0001_00.json").read_text())
    label = {o["object_id"]: o["label"] for o in facts["objects"]}
    pillows = [
        o for o in facts["objects"]
        if o["label"] == "pillow" and label.get(int(o["attributes"].get("support_id", -1))) == "couch"
    ]  # fmt: skip
    assert pillows, "the generated living room has pillows on its couch"
    objects = scene.objects()
    by_id = {o.object_id: o for o in objects}
    couch = next(o for o in objects if o.label == "couch")
    captions = {o["object_id"]: o.get("caption") or "" for o in result.doc["objects"]}
    for p in pillows:
        assert check_relation("on", by_id[p["object_id"]], [couch]) is True
        assert check_relation("next to", by_id[p["object_id"]], [couch]) is False
        caption = captions[p["object_id"]]
        assert "on the couch" in caption.lower(), caption


def test_pillow_on_a_sofa_seat_under_the_backrest_top():
    couch = box("couch", 1, [0, 0, 0], [2.2, 0.95, 0.85])  # the box reaches the backrest's top
    upright = box("pillow", 2, [0.3, 0.22, 0.43], [0.8, 0.4, 0.95])  # leans on the back, pokes above
    lying = box("pillow", 3, [1.2, 0.3, 0.43], [1.7, 0.8, 0.55])
    for pillow in (upright, lying):
        assert check_relation("on", pillow, [couch]) is True
        assert check_relation("under", pillow, [couch]) is False
    scene = [couch, upright, lying]
    phrases = [
        relation_phrase(r, AnchorNames(scene).names_for(2), "pillow") for r in scene_relations(upright, scene)
    ]
    assert phrases[0] == "on the couch"


def test_sunk_lamp_is_on_the_table(annotated):
    _, scene = annotated["scene0000_00"]
    objects = [o for o in scene.objects() if o.label != "lamp"]
    table = box("table", 900, [1.0, 1.0, 0.0], [2.2, 1.8, 0.75])
    lamp = box("lamp", 901, [1.45, 1.25, 0.58], [1.75, 1.55, 1.2])  # base 17 cm inside the table top
    scene_objects = [*objects, table, lamp]
    assert check_relation("on", lamp, [table]) is True
    assert check_relation("next to", lamp, [table]) is False
    found = scene_relations(lamp, scene_objects)
    assert found[0].predicate == "on" and found[0].object_ids == (900,)
    names = AnchorNames(scene_objects).names_for(901)
    phrase = relation_phrase(found[0], names, "lamp")
    caption = GroundedCaptioner(seed=0).answer(
        CaptionRequest("fusion", "", [], {"key": "k", "label": "lamp", "relations": [phrase]})
    )
    assert "on the table" in caption.lower()
    # a picture hung behind a headboard straddles the top but rests on nothing
    bed = box("bed", 1, [0.0, 0.0, 0], [1.5, 2.0, 1.0])
    picture = box("picture", 2, [0.5, 1.95, 0.8], [1.0, 2.0, 1.5])
    assert check_relation("on", picture, [bed]) is not True


def test_in_a_container():
    shelf = box("bookshelf", 1, [0, 0, 0], [0.9, 0.35, 1.8])
    inside = box("box", 2, [0.2, 0.05, 0.4], [0.5, 0.3, 0.7])
    on_top = box("plant", 3, [0.3, 0.05, 1.8], [0.5, 0.25, 2.2])
    table = box("table", 4, [2, 0, 0], [3, 1, 0.75])
    cup = box("cup", 5, [2.4, 0.4, 0.75], [2.5, 0.5, 0.85])
    assert check_relation("in", inside, [shelf]) is True
    assert check_relation("in", on_top, [shelf]) is False
    assert check_relation("on", on_top, [shelf]) is True
    assert check_relation("in", cup, [table]) is False  # a table holds nothing inside
    assert [r.predicate for r in scene_relations(inside, [shelf, inside, on_top, table, cup])][0] == "in"


# ------------------------------------------------------------------------------------------- color


def _two_tone_box(top_rgb, rest_rgb, size=(0.6, 0.6, 0.3), subdivisions=8):
    """A box whose top face is one color and the five other faces (larger in area) another, as vertices
    per face so that each face keeps its own color."""
    sx, sy, sz = size
    verts, faces, colors = [], [], []
    grid = np.linspace(0, 1, subdivisions + 1)

    def face(origin, u, v, rgb):
        base = len(verts)
        for a in grid:
            for b in grid:
                verts.append(np.add(origin, np.multiply(u, a) + np.multiply(v, b)))
                colors.append(rgb)
        n = subdivisions + 1
        for i in range(subdivisions):
            for j in range(subdivisions):
                k = base + i * n + j
                faces.extend([[k, k + n, k + 1], [k + 1, k + n, k + n + 1]])

    face((0, 0, sz), (sx, 0, 0), (0, sy, 0), top_rgb)  # top
    face((0, 0, 0), (0, sy, 0), (sx, 0, 0), rest_rgb)  # bottom
    face((0, 0, 0), (sx, 0, 0), (0, 0, sz), rest_rgb)
    face((0, sy, 0), (0, 0, sz), (sx, 0, 0), rest_rgb)
    face((0, 0, 0), (0, 0, sz), (0, sy, 0), rest_rgb)
    face((sx, 0, 0), (0, sy, 0), (0, 0, sz), rest_rgb)
    v = np.array(verts, dtype=np.float32) - np.array([sx / 2, sy / 2, 0], dtype=np.float32)
    return Mesh(v, np.array(colors, dtype=np.uint8), np.array(faces, dtype=np.int32))


def _look_at(eye, target):
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = eye
    return pose


def test_color_is_what_the_camera_sees_not_the_hidden_faces():
    purple, white = COLOR_WORDS["purple"], COLOR_WORDS["white"]
    mesh = _two_tone_box(purple, white)
    # by surface area the box is white (bottom and sides: 5 faces) ...
    assert dominant_color(mesh.vertices, mesh.faces, mesh.colors.astype(float)) == "white"
    renderer = MeshRenderer(mesh, np.zeros(mesh.num_vertices, dtype=np.int64))
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    tally = VisibleColors(views=4, min_frame_gap=1)
    for i, angle in enumerate(np.linspace(0, 2 * np.pi, 8, endpoint=False)):
        eye = [1.2 * np.cos(angle), 1.2 * np.sin(angle), 1.6]  # looking down: the top dominates
        rendered = renderer.render(_look_at(eye, [0, 0, 0.15]), K, 320, 240)
        tally.add(i, rendered.color, rendered.instance)
    # ... but the camera sees mostly its purple top
    assert tally.color(0) == "purple"
    assert tally.votes(0)["purple"] > 0.5
    assert tally.color(7) is None  # no frame shows object 7


def test_caption_color_is_the_dominant_color_of_the_visible_pixels(annotated):
    checked = 0
    for result, _ in annotated.values():
        for obj in result.doc["objects"]:
            if not obj.get("caption"):
                continue
            votes = obj["fusion"]["color_votes"]  # pooled over the object's chosen views
            dominant = next(iter(votes))
            said = [w for w in tokenize(obj["caption"]) if w in COLOR_WORDS]
            assert said[:1] == [dominant], (obj["label"], obj["caption"], votes)
            assert obj["fusion"]["color"] == dominant
            checked += 1
    assert checked >= 20


def test_synthetic_ground_truth_uses_the_same_color(annotated, synth_root):
    """The generator's color words (ScanQA answers, Multi3DRefer / ScanRefer texts) agree with what the
    pipeline measures on the same object's pixels."""
    agree = total = 0
    for sid, (result, _) in annotated.items():
        truth = {
            o["object_id"]: o["color_name"]
            for o in json.loads((synth_root / "synth" / f"{sid}.json").read_text())["objects"]
        }
        for obj in result.doc["objects"]:
            if obj.get("caption"):
                total += 1
                agree += truth[obj["object_id"]] == obj["fusion"]["color"]
    assert total >= 20 and agree >= 0.9 * total, (agree, total)


# ------------------------------------------------------------------------------------------- views


def test_chosen_views_are_spread_and_counted(annotated):
    config = AnnotateConfig(seed=1)
    fewer = 0
    for result, scene in annotated.values():
        index = {f.frame_id: i for i, f in enumerate(scene.frames.frames)}
        poses = {f.frame_id: f.pose for f in scene.frames.frames}
        centres = {o.object_id: o.center for o in scene.objects()}
        records = {r.object_id: r for r in result.records if r.level == "object"}
        for obj in result.doc["objects"]:
            ids = [v["frame_id"] for v in obj["views"]]
            assert obj["views_requested"] == config.top_k and len(ids) <= config.top_k
            fewer += len(ids) < config.top_k
            if obj.get("caption"):
                record = records[str(obj["object_id"])]
                assert record.views == len(ids) and record.views_requested == config.top_k
            p = np.stack([poses[i] for i in ids]) if ids else np.zeros((0, 4, 4))
            directions = viewing_directions(p, centres[obj["object_id"]])
            for a in range(len(ids)):
                for b in range(a):
                    pair = (index[ids[a]], index[ids[b]])
                    assert abs(pair[0] - pair[1]) >= config.min_frame_gap
                    assert distinct_views(
                        pair, (directions[a], directions[b]), (p[a, :3, 3], p[b, :3, 3]), config
                    )
    assert fewer > 0, "40-frame scenes cannot give every object 8 distinct views; records say so"


# -------------------------------------------------------------------------------------- scene type


def test_meta_scene_type_names_the_room():
    assert meta_room_type("Office") == "office"
    assert meta_room_type("Bedroom / Hotel") == "bedroom"
    assert meta_room_type("Living room / Lounge") == "living room"
    assert meta_room_type("Misc.") is None and meta_room_type(None) is None
    assert room_type({"sceneType": "Kitchen"}, ["bed"]) == ("kitchen", "meta")
    assert room_type({}, ["bed", "nightstand"]) == ("bedroom", "guess")


def test_narrative_uses_the_scene_type_of_the_meta_file(annotated, synth_root, tmp_path):
    result, _ = annotated["scene0000_00"]
    narrative = result.doc["narrative"]
    assert (narrative["room_type"], narrative["room_type_source"]) == ("bedroom", "meta")
    # the same bedroom whose meta file says Office is described as an office, not guessed a bedroom
    scans = tmp_path / "scans"
    shutil.copytree(
        synth_root / "scans" / "scene0000_00",
        scans / "scene0000_00",
        ignore=shutil.ignore_patterns("color", "depth", "pose"),
    )
    meta = scans / "scene0000_00" / "scene0000_00.txt"
    text = re.sub(r"sceneType = .*", "sceneType = Office", meta.read_text())
    meta.write_text(text)
    scene = load_scene(tmp_path, "scene0000_00")
    assert scene.meta["sceneType"] == "Office"
    doc = SceneAnnotator(scene, GroundedCaptioner(seed=1), AnnotateConfig(seed=1), tmp_path / "out").run().doc
    assert doc["narrative"]["room_type"] == "office" and doc["narrative"]["room_type_guess"] == "bedroom"
    assert " office" in doc["narrative"]["text"].lower() and "bedroom" not in doc["narrative"]["text"].lower()
    assert unresolved_anchors(doc["narrative"]["text"], None, scene.objects()) == []
