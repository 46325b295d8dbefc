"""Benchmark-format annotations of synthetic scenes, written from their 3D ground truth.

Every statement is checked against the geometry with `core.scene.relations` before it is written, so
descriptions, answers and object ids are true by construction; a target with same-class distractors is
only described by facts that rule every distractor out. Output is deterministic for a seed, and each
scene's text depends only on (seed, scene id). The English (plurals, articles, agreement, number words,
relation and attribute phrases) is `core.text`'s; every benchmark file is validated and written by the
`core.data` module that reads its format (`write_benchmarks`). Files, relative to the output folder (field
names as in the public releases):

- `scannetv2_{train,val}.txt`: one scene id per line.
- `annotations/ScanRefer_filtered_{train,val}.json`: list of {scene_id, object_id (str), object_name
  (label, spaces as underscores), ann_id (str, counts per object), description, token}; 1-3 descriptions
  per non-structural object with same-class twins (one that no fact tells apart from a twin is left out)
  and one for every object alone in its class. `token` is the lowercased description
  with punctuation split off.
- `annotations/scanrefer_unique_multiple_lookup.json`: {scene_id: {object_id: 0 unique | 1 multiple}},
  ScanRefer's rule: the target's ScanRefer class (`LabelMap.scanrefer_class`, 17 NYU40 names + "others")
  is shared by no other non-structural object of the scene.
- `annotations/multi3drefer_{train,val}.json`: list of {scene_id, object_name, ann_id (int, per scene),
  description, object_ids, eval_type (zt_w_d, zt_wo_d, st_w_d, st_wo_d, mt), spatial, color, texture,
  shape}; the four flags say what kind of fact the description uses.
- `annotations/ScanQA_v1.0_{train,val}.json`: list of {question_id ("train-scene0000-0"), scene_id,
  question, answers, object_ids, object_names}.
- `annotations/v1_balanced_questions_{split}_scannetv2.json`: {"questions": [{question_id (int), scene_id,
  situation, alternative_situation, question}]} and `v1_balanced_sqa_annotations_{split}_scannetv2.json`:
  {"annotations": [{question_id, scene_id, question_type ("N/A", as in the release: evaluation types
  come from the question's first word, see `sqa3d_question_type`), answer_type ("yes/no", "number",
  "other"), answers: [{answer, answer_confidence, answer_id}], position {x, y, z}, rotation {_x, _y, _z,
  _w}}]}.

Balanced against blind guessing (`python -m core baselines` measures it): few descriptions name a class
with one instance; "how many" answers spread over 0..5+ (zero: a class absent here but common in rooms);
SQA3D answers are drawn answer-first, least-given first (`pick_balanced`), so yes/no alternate per
template and directions and counts spread, and no question is about what the situation names; zero-target
Multi3DRefer queries (a minority) are real descriptions with one fact made false, or a present object's
facts told of an absent object of a similar kind.

SQA3D pose convention, as SQA3D's own visualiser reads it: the scene's raw mesh is moved so that its
bounding-box centre is the origin; the agent stands at (x, y) there (z is written as 0), and its facing
direction is the rotation applied to -X. `SceneFacts.axis_alignment` (raw -> axis-aligned, ScanNet's
axisAlignment) maps our axis-aligned geometry back to the raw frame; without it the two frames are taken
as equal. The bounding box is that of all object boxes. `sqa3d_pose` and `sqa3d_viewpoint` convert.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import atomic_write_text
from core.data.multi3drefer import parse_multi3drefer, write_multi3drefer
from core.data.scanqa import parse_scanqa, write_scanqa
from core.data.scanrefer import (
    parse_scanrefer,
    parse_unique_multiple_lookup,
    write_scanrefer,
    write_unique_multiple_lookup,
)
from core.data.sqa3d import parse_sqa3d_release, write_sqa3d_release
from core.scene.colors import COLOR_WORDS
from core.scene.labels import LabelMap
from core.scene.objects import ObjectInfo
from core.scene.relations import (
    STRUCTURAL_LABELS,
    Relation,
    Viewpoint,
    check_relation,
    class_members,
    direction_of,
    distinguishing_pairs,
    distinguishing_relations,
    holds,
    normalize_label,
    relations_of,
    same_class,
    side_of,
    unique_anchors,
)
from core.text import (
    RELATION_PHRASES,
    SUPERLATIVE_PREDICATES,
    answer_number,
    attribute_adjective,
    attribute_predicate,
    be,
    indefinite_article,
    is_plural,
    number_word,
    plural,
    pronoun,
    relation_phrase,
)
from core.text import scanrefer_tokens as tokenize

SPLITS = ("train", "val")
EVAL_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")
SEATS = ("couch", "armchair", "chair", "office chair", "stool", "bed")
OBJECT_CATEGORIES = (
    "chair", "office chair", "armchair", "stool", "table", "coffee table", "desk", "bed", "couch", "cabinet",
    "kitchen cabinet", "kitchen counter", "bookshelf", "shelf", "lamp", "monitor", "tv", "keyboard",
    "laptop", "nightstand", "dresser", "toilet", "sink", "bathtub", "mirror", "towel", "refrigerator",
    "microwave", "trash can", "pillow", "box", "plant", "picture", "curtain", "whiteboard", "backpack",
)  # fmt: skip
COLOR_CHOICES = tuple(COLOR_WORDS)
ROOM_KEY_OBJECTS = {
    "bedroom": ("bed", "nightstand", "dresser"),
    "living room": ("couch", "coffee table", "tv"),
    "office": ("desk", "office chair", "monitor"),
    "kitchen": ("refrigerator", "kitchen counter", "kitchen cabinet", "microwave"),
    "bathroom": ("toilet", "bathtub", "sink"),
    "conference room": ("table", "whiteboard"),
}
SPATIAL = ("on", "under", "above", "below", "next to", "near", "between", "closest to", "farthest from",
           "against the wall", "in the corner", "in the middle of the room", "left of", "right of",
           "in front of", "behind", "leftmost", "rightmost")  # fmt: skip
ADJECTIVE_PREDICATES = ("largest", "smallest", "tallest", "shortest", "color", "material", "shape", "texture")
RANKED = (
    "closest to",
    "farthest from",
    "largest",
    "smallest",
    "tallest",
    "shortest",
    "leftmost",
    "rightmost",
)
REACH = (0.6, 1.2)  # metres from the agent to an object's footprint: reachable / clearly out of reach


@dataclass
class SceneFacts:
    """What the generator knows about one scene (boxes in the axis-aligned frame)."""

    scene_id: str
    room_type: str
    extent: np.ndarray
    objects: list[ObjectInfo]
    split: str
    axis_alignment: np.ndarray | None = None  # raw mesh -> axis-aligned; None: the frames coincide


@dataclass(frozen=True)
class Description:
    """Text about one target: `identifying` relations single it out, `relations` is all it states."""

    text: str
    identifying: tuple[Relation, ...]
    relations: tuple[Relation, ...]


# ------------------------------------------------------------------------------------------------ text


def object_name(label: str) -> str:
    """ScanRefer's object_name spelling: spaces as underscores."""
    return normalize_label(label).replace(" ", "_")


def _sentence(text: str) -> str:
    return text.strip().rstrip(".") + "."


# ----------------------------------------------------------------------------------------------- scene


class SceneContext:
    """One scene's objects with the lookups (and cached relations) every generator below needs."""

    def __init__(self, facts: SceneFacts):
        self.facts = facts
        self.objects = list(facts.objects)
        self.extent = None if facts.extent is None else np.asarray(facts.extent, dtype=np.float64)
        self.by_id = {o.object_id: o for o in self.objects}
        self.targets = [o for o in self.objects if not self.structural(o)]
        self._relations: dict[int, list[Relation]] = {}
        self._sets: dict[int, list[tuple[Relation, ...]]] = {}

    @staticmethod
    def structural(obj: ObjectInfo) -> bool:
        return normalize_label(obj.label) in STRUCTURAL_LABELS

    def name(self, obj: ObjectInfo | int) -> str:
        obj = self.by_id[obj] if isinstance(obj, int) else obj
        return normalize_label(obj.label)

    def hung(self, obj: ObjectInfo) -> bool:
        """Mounted on a wall (the generator's `mount`), else off the floor and resting on nothing."""
        if "mount" in obj.attributes:
            return obj.attributes["mount"] == "wall"
        return obj.bottom > 0.3 and not any(
            check_relation("on", obj, [o]) for o in self.objects if o is not obj
        )

    def members(self, obj: ObjectInfo) -> list[ObjectInfo]:
        return class_members(obj, self.objects)

    def clean_family(self, obj: ObjectInfo) -> bool:
        """All objects of the class carry the same label, so its plural names exactly them."""
        return all(self.name(o) == self.name(obj) for o in self.members(obj))

    def holds(self, relation: Relation, subject: ObjectInfo) -> bool | None:
        return holds(relation, subject, self.objects, self.extent)

    def anchors(self, target: ObjectInfo) -> list[ObjectInfo]:
        """Objects a phrase may name with "the": unique in the scene (the floor included)."""
        return unique_anchors(target, self.objects)

    def true_relations(self, target: ObjectInfo) -> list[Relation]:
        """Relations that clearly hold for the target, with anchors that "the <label>" names (cached)."""
        if target.object_id not in self._relations:
            found = relations_of(target, self.objects, self.extent, anchors=self.anchors(target))
            ranked_ok = len(self.members(target)) > 1
            keep = [r for r in found if not self.names_itself(r, target)]
            self._relations[target.object_id] = [r for r in keep if r.predicate not in RANKED or ranked_ok]
        return self._relations[target.object_id]

    def names_itself(self, relation: Relation, target: ObjectInfo) -> bool:
        """An attribute the label already says ("a paper paper", "a glass glass"): no fact worth a word."""
        if relation.predicate not in ("material", "shape", "texture") or relation.value is None:
            return False
        word = attribute_adjective(relation.predicate, str(relation.value))
        return word in self.name(target).split()

    def room_centre(self) -> np.ndarray:
        if self.extent is not None:
            return self.extent[:2] / 2
        lows = [o.center[:2] - o.size[:2] / 2 for o in self.objects]
        highs = [o.center[:2] + o.size[:2] / 2 for o in self.objects]
        return (np.min(lows, axis=0) + np.max(highs, axis=0)) / 2


VIEW_DEPENDENT = ("left of", "right of", "in front of", "behind", "leftmost", "rightmost")


def _post_phrase(rel: Relation, scene: SceneContext, rng: np.random.Generator) -> str | None:
    """The phrase after the noun that states a relation ("next to the bed", in the words of `core.text`,
    one of its phrasings drawn); None for adjectives (color, material, rankings)."""
    options = RELATION_PHRASES.get(rel.predicate)
    if options is None or rel.predicate in SUPERLATIVE_PREDICATES:
        return None
    variant = int(rng.integers(len(options)))
    anchors = [f"the {scene.name(i)}" for i in rel.object_ids]
    if rel.predicate == "on" and anchors == ["the floor"]:
        return "on the floor"
    if rel.predicate == "against the wall" and scene.hung(scene.by_id[rel.subject_id]):
        return "on the wall"
    phrase = relation_phrase(rel.predicate, anchors, variant=variant)
    if rel.predicate not in VIEW_DEPENDENT:
        return phrase
    facing = rel.viewpoint.facing_id if rel.viewpoint else None
    view = f"when facing the {scene.name(facing)}" if facing is not None else "from where you stand"
    if facing is not None and rel.object_ids == (facing,):
        view = "as you face it"
    return f"{phrase} {view}"


def _adjectives(rels: Sequence[Relation]) -> list[str]:
    """Adjectives of the relations said before the noun, in English order (size, color, material):
    "largest", "red", "wooden", "drum-shaped"."""
    order = {p: i for i, p in enumerate(ADJECTIVE_PREDICATES)}
    adjectives = sorted((r for r in rels if r.predicate in order), key=lambda r: order[r.predicate])
    return [
        r.predicate if r.value is None else attribute_adjective(r.predicate, str(r.value)) for r in adjectives
    ]


def noun_phrase(
    label: str, rels: Sequence[Relation], scene: SceneContext, rng: np.random.Generator
) -> tuple[str, str]:
    """(adjectives + noun, post-modifiers) of a description, e.g. ("red chair", "next to the desk")."""
    posts = [p for p in (_post_phrase(r, scene, rng) for r in rels) if p]
    core = " ".join([*_adjectives(rels), label])
    return core, " and ".join(posts)


def _article(core: str) -> str:
    """The article: "the" before a ranking ("the largest chair"), "some" before a plural noun, else "a" or
    "an"."""
    if core.split()[0] in SUPERLATIVE_PREDICATES:
        return "the"
    return "some" if is_plural(core) else indefinite_article(core)


def _identifying_sentence(core: str, post: str, rng: np.random.Generator) -> str:
    a, is_, it = _article(core), be(core), pronoun(core)
    this, there = ("these are", "there are") if is_ == "are" else ("this is", "there is")
    if not post and a == "the":
        templates = [f"{this} the {core}", f"{it} {is_} the {core} in the room", f"look for the {core}"]
    elif not post:
        templates = [f"{this} {a} {core}", f"{there} {a} {core} in the room", f"the room has {a} {core}"]
    else:
        templates = [
            f"{this} the {core} {post}",
            f"the {core} {is_} {post}",
            f"{there} {a} {core} {post}",
            f"look for the {core} {post}",
            f"{post}, {there} {a} {core}",
            f"the {core} that {is_} {post}",
        ]
    return _sentence(str(rng.choice(templates)))


def _extra_sentence(rel: Relation, label: str, scene: SceneContext, rng: np.random.Generator) -> str | None:
    it, is_, them, its = pronoun(label), be(label), pronoun(label, "object"), pronoun(label, "possessive")
    post = _post_phrase(rel, scene, rng)
    if post:
        options = [f"{it} {is_} {post}", f"the {label} {is_} {post}", f"you can find {them} {post}"]
        return _sentence(str(rng.choice(options)))
    if rel.predicate == "color":
        options = [f"{it} {is_} {rel.value}", f"the {label} {is_} {rel.value}", f"{its} color is {rel.value}"]
        return _sentence(str(rng.choice(options)))
    if rel.predicate in ("material", "shape", "texture"):
        return _sentence(f"{it} {is_} {attribute_predicate(rel.predicate, str(rel.value))}")
    if rel.predicate in SUPERLATIVE_PREDICATES:
        return _sentence(f"{it} {is_} the {rel.predicate} {label} in the room")
    return None


# ------------------------------------------------------------------------------------------- ScanRefer


def _view_points(scene: SceneContext, target: ObjectInfo) -> list[Viewpoint]:
    """Observers at the room centre facing each unique anchor at least a metre away."""
    centre = scene.room_centre()
    views = []
    for anchor in unique_anchors(target, scene.objects):
        if scene.name(anchor) != "floor" and np.linalg.norm(anchor.center[:2] - centre) >= 1.0:
            views.append(Viewpoint.looking_at(centre, anchor.center, anchor.object_id))
    return views


def identifying_sets(scene: SceneContext, target: ObjectInfo) -> list[tuple[Relation, ...]]:
    """Sets of true relations that single the target out among its class (one empty set if alone)."""
    if target.object_id not in scene._sets:
        scene._sets[target.object_id] = _identifying_sets(scene, target)
    return list(scene._sets[target.object_id])


def _identifying_sets(scene: SceneContext, target: ObjectInfo) -> list[tuple[Relation, ...]]:
    if len(scene.members(target)) == 1:
        return [()]
    tid = target.object_id
    found = distinguishing_relations(tid, scene.objects, scene.extent)
    sets: list[tuple[Relation, ...]] = [(r,) for r in found if not scene.names_itself(r, target)]
    if len(sets) < 3:  # ranked relations single the target out alone, so pairs never need them
        pairs = distinguishing_pairs(tid, scene.objects, scene.extent)
        sets += [p for p in pairs if not any(r.predicate in RANKED for r in p)]
    if len(sets) < 2:
        for view in _view_points(scene, target):
            found = distinguishing_relations(tid, scene.objects, scene.extent, view)
            sets += [(r,) for r in found if r.viewpoint is not None]
    return sets


def _extra_facts(scene: SceneContext, target: ObjectInfo) -> list[Relation]:
    """True facts worth adding after the identifying sentence: no rankings, no view, and no "near" an
    anchor that a closer relation (on, under, next to) already names."""
    found = [r for r in scene.true_relations(target) if r.viewpoint is None and r.predicate not in RANKED]
    close = {r.object_ids for r in found if r.predicate in ("on", "under", "next to")}
    return [r for r in found if not (r.predicate == "near" and r.object_ids in close)]


def describe_object(
    scene: SceneContext, target: ObjectInfo, rng: np.random.Generator, count: int
) -> list[Description]:
    """Up to `count` different true descriptions; each singles the target out among its class."""
    label = scene.name(target)
    sets = identifying_sets(scene, target)
    if not sets:
        return []
    extras = _extra_facts(scene, target)
    if len(scene.members(target)) == 1:  # any fact will do; standing on the floor is too dull to lead with
        sets += [(r,) for r in extras if not (r.predicate == "on" and scene.name(r.object_ids[0]) == "floor")]
    plain = [s for s in sets if not any(r.predicate in RANKED for r in s)]  # read more naturally
    out: dict[str, Description] = {}
    for _ in range(8 * count):
        options = plain if plain and rng.random() < 0.8 else sets
        chosen = options[int(rng.integers(len(options)))]
        core, post = noun_phrase(label, chosen, scene, rng)
        sentences = [_identifying_sentence(core, post, rng)]
        stated = list(chosen)
        unsaid = [r for r in extras if r not in chosen]
        for k in rng.permutation(len(unsaid))[: int(rng.integers(0, 3))]:
            extra = _extra_sentence(unsaid[k], label, scene, rng)
            if extra:
                sentences.append(extra)
                stated.append(unsaid[k])
        text = " ".join(sentences)
        out.setdefault(text, Description(text, tuple(chosen), tuple(stated)))
        if len(out) >= count:
            break
    return list(out.values())


UNIQUE_DESCRIBED = 1.0  # share of the objects alone in their class that get a ScanRefer description
TWIN_DESCRIPTIONS = (1, 3)  # descriptions per object with same-class twins, inclusive range


def scanrefer_records(scene: SceneContext, rng: np.random.Generator) -> list[dict]:
    """1-3 ScanRefer descriptions of every non-structural object that has same-class twins and can be
    singled out, and one of every object alone in their class. With the generator's share of objects that
    have twins (about 3 in 4), most descriptions are "multiple" (about 85%, ScanRefer has 81%), and naming
    the class alone finds the target for few of them (the class-name oracle's prior)."""
    records = []
    for target in scene.targets:
        alone = len(scene.members(target)) == 1
        lo, hi = TWIN_DESCRIPTIONS
        count = (1 if rng.random() < UNIQUE_DESCRIBED else 0) if alone else int(rng.integers(lo, hi + 1))
        if not count:
            continue
        for ann_id, desc in enumerate(describe_object(scene, target, rng, count)):
            records.append(
                {
                    "scene_id": scene.facts.scene_id,
                    "object_id": str(target.object_id),
                    "object_name": object_name(target.label),
                    "ann_id": str(ann_id),
                    "description": desc.text,
                    "token": tokenize(desc.text),
                }
            )
    return records


def unique_multiple(scene: SceneContext, described: set[int], label_map: LabelMap) -> dict[str, int]:
    """ScanRefer's flag per described object: 0 when no other object of the scene that ScanRefer would
    annotate (every non-structural one) falls in the same ScanRefer class, else 1."""
    classes = {o.object_id: label_map.scanrefer_class(o.label) for o in scene.targets}
    counts = {cls: list(classes.values()).count(cls) for cls in set(classes.values())}
    return {str(i): int(counts[classes[i]] > 1) for i in sorted(described)}


# ----------------------------------------------------------------------------------------- Multi3DRefer


def _flags(rels: Sequence[Relation]) -> dict[str, bool]:
    predicates = {r.predicate for r in rels}
    return {
        "spatial": bool(predicates & set(SPATIAL)),
        "color": "color" in predicates,
        "texture": bool(predicates & {"material", "texture"}),
        "shape": "shape" in predicates,
    }


def _query(scene: SceneContext, label: str, text: str, ids: list[int], eval_type: str, rels) -> dict:
    return {
        "scene_id": scene.facts.scene_id,
        "object_name": object_name(label),
        "description": text,
        "object_ids": sorted(ids),
        "eval_type": eval_type,
        **_flags(rels),
    }


def _group_relations(scene: SceneContext, first: ObjectInfo) -> list[Relation]:
    """Relations with a unique anchor (and colors) that hold for this member of a class."""
    return [
        r
        for r in scene.true_relations(first)
        if r.predicate in ("color", "on", "under", "next to", "near", "against the wall", "in the corner")
    ]


def multi3drefer_records(scene: SceneContext, rng: np.random.Generator) -> list[dict]:
    """Per label: one single-target query, a few multi-target and zero-target ones; plus absent labels."""
    queries: list[dict] = []
    families: dict[str, list[ObjectInfo]] = {}
    for obj in scene.targets:
        families.setdefault(scene.name(obj), []).append(obj)
    for label, group in families.items():
        target = group[int(rng.integers(len(group)))]
        descs = describe_object(scene, target, rng, 3)
        if descs:
            desc = max(descs, key=lambda d: len(d.relations))  # the most telling of a few
            eval_type = "st_wo_d" if len(scene.members(target)) == 1 else "st_w_d"
            queries.append(_query(scene, label, desc.text, [target.object_id], eval_type, desc.relations))
        queries += _multi_target(scene, label, rng)
        queries += _zero_target_with_distractor(scene, label, rng)
    queries += _zero_target_without_distractor(scene, rng)
    return [dict(q, ann_id=k) for k, q in enumerate(queries)]


def _multi_target(scene: SceneContext, label: str, rng: np.random.Generator) -> list[dict]:
    """The whole class, and subsets sharing a color or a relation (only when no member is borderline)."""
    group = [o for o in scene.targets if scene.name(o) == label]
    if len(group) < 2 or not scene.clean_family(group[0]):
        return []
    everyone = [o.object_id for o in group]
    out = [_query(scene, label, _sentence(f"the {plural(label)} in the room"), everyone, "mt", [])]
    seen = set()
    for member in group:
        for rel in _group_relations(scene, member):
            key = (rel.predicate, rel.object_ids, rel.value)
            if key in seen:
                continue
            seen.add(key)
            verdicts = {o.object_id: scene.holds(Relation(o.object_id, *key), o) for o in group}
            hits = [i for i, v in verdicts.items() if v]
            if len(hits) < 2 or any(v is None for v in verdicts.values()):
                continue
            core, post = noun_phrase(plural(label), [Relation(member.object_id, *key)], scene, rng)
            count = number_word(len(hits))
            options = [f"the {core} {post}", f"the {count} {core} {post}", f"all {core} {post}"]
            if is_plural(label):  # "the two clothes" is not English: a plural-only noun is not counted
                options = [options[0], options[2]]
            text = str(rng.choice(options))
            out.append(
                _query(scene, label, _sentence(" ".join(text.split())), hits, "mt", [Relation(0, *key)])
            )
    return out[: 1 + int(rng.integers(1, 3))]


ZERO_TARGET_RATE = 0.4  # chance of a zero-target query per label: zero targets stay a minority
SUBSTITUTES = (  # objects of a similar kind and size: an absent one can stand where a present one does
    ("chair", "office chair", "armchair", "stool"),
    ("table", "coffee table", "desk", "nightstand"),
    ("cabinet", "kitchen cabinet", "dresser", "bookshelf", "shelf"),
    ("lamp", "plant", "trash can", "box", "backpack"),
    ("monitor", "laptop", "keyboard", "microwave"),
    ("picture", "mirror", "whiteboard", "tv", "curtain"),
    ("pillow", "towel"),
    ("couch", "bed", "armchair"),
)


def _render(
    scene: SceneContext,
    label: str,
    chosen: Sequence[Relation],
    extras: Sequence[Relation],
    rng: np.random.Generator,
) -> str:
    """Text in the words of `describe_object`: an identifying sentence, then one per extra fact."""
    core, post = noun_phrase(label, chosen, scene, rng)
    sentences = [_identifying_sentence(core, post, rng)]
    sentences += [t for t in (_extra_sentence(r, label, scene, rng) for r in extras) if t]
    return " ".join(sentences)


def _false_anchor_relations(scene: SceneContext, members: list[ObjectInfo], subject: int) -> list[Relation]:
    """Relations "next to" / "near" a unique anchor that no member of the class is clearly next to or
    near (both false, so no other sentence of a description can contradict it)."""
    out = []
    for anchor in scene.anchors(members[0]):
        if scene.name(anchor) in ("floor", "door", "window"):
            continue
        verdicts = [
            scene.holds(Relation(o.object_id, predicate, (anchor.object_id,)), o)
            for o in members
            for predicate in ("next to", "near")
        ]
        if all(v is False for v in verdicts):
            out += [Relation(subject, p, (anchor.object_id,)) for p in ("next to", "near")]
    return out


def _zero_target_with_distractor(scene: SceneContext, label: str, rng: np.random.Generator) -> list[dict]:
    """A real member's description with one fact changed so that it fits no member of the class: its
    color (to one no member has) or a relation (to "next to" / "near" an anchor no member is by)."""
    group = [o for o in scene.targets if scene.name(o) == label]
    if rng.random() >= ZERO_TARGET_RATE:
        return []
    source = group[int(rng.integers(len(group)))]
    members = scene.members(source)
    descs = [
        d for d in describe_object(scene, source, rng, 3) if all(r.viewpoint is None for r in d.relations)
    ]
    if not descs:
        return []
    desc = descs[int(rng.integers(len(descs)))]
    relations, n_id = list(desc.relations), len(desc.identifying)
    colors = [
        c for c in COLOR_CHOICES if all(o.color_name is not None and o.color_name != c for o in members)
    ]
    named = {i for r in relations for i in r.object_ids}
    false_anchors = [
        r for r in _false_anchor_relations(scene, members, source.object_id) if r.object_ids[0] not in named
    ]
    swaps: list[tuple[int, Relation]] = []
    for i, rel in enumerate(relations):
        if rel.predicate == "color" and colors:
            swaps.append((i, Relation(source.object_id, "color", (), str(rng.choice(colors)))))
        elif rel.predicate in SPATIAL and false_anchors:
            swaps.append((i, false_anchors[int(rng.integers(len(false_anchors)))]))
    if not swaps:  # nothing to change: say one false thing more, as the identifying fact
        if colors:
            swaps.append((len(relations), Relation(source.object_id, "color", (), str(rng.choice(colors)))))
        elif false_anchors:
            swaps.append((len(relations), false_anchors[int(rng.integers(len(false_anchors)))]))
        else:
            return []
        n_id = len(relations) + 1
        relations.append(swaps[0][1])
    i, changed = swaps[int(rng.integers(len(swaps)))]
    relations[i] = changed
    text = _render(scene, label, relations[:n_id], relations[n_id:], rng)
    return [_query(scene, label, text, [], "zt_w_d", relations)]


def _zero_target_without_distractor(scene: SceneContext, rng: np.random.Generator) -> list[dict]:
    """An object absent from this room but common in others, described where a present object of a
    similar kind stands (`SUBSTITUTES`) with that object's true facts: "the stool next to the desk"
    where a chair is next to the desk."""
    present = [scene.name(o) for o in scene.objects]
    options: list[tuple[ObjectInfo, str]] = []
    for target in scene.targets:
        for group in SUBSTITUTES:
            if scene.name(target) in group:
                absent = [c for c in group if not any(same_class(c, p) for p in present)]
                options += [(target, c) for c in absent if (target, c) not in options]
    if not options:
        return []
    source, label = options[int(rng.integers(len(options)))]
    facts = [
        r
        for r in _extra_facts(scene, source)
        if r.predicate != "color" and not (r.predicate == "on" and scene.name(r.object_ids[0]) == "floor")
    ]
    if source.color_name and rng.random() < 0.5:
        facts.append(Relation(source.object_id, "color", (), source.color_name))
    if not facts:
        return []
    chosen = [facts[int(k)] for k in rng.permutation(len(facts))[: int(rng.integers(1, 4))]]
    n_id = 1 + int(rng.random() < 0.3)
    text = _render(scene, label, chosen[:n_id], chosen[n_id:], rng)
    return [_query(scene, label, text, [], "zt_wo_d", chosen)]


# ----------------------------------------------------------------------------------------------- ScanQA


def _qa(question: str, answers: Sequence[str], objects: Sequence[ObjectInfo]) -> dict:
    return {
        "question": question[0].upper() + question[1:],
        "answers": list(dict.fromkeys(a.lower() for a in answers)),
        "object_ids": [o.object_id for o in objects],
        "object_names": [normalize_label(o.label) for o in objects],
    }


def scanqa_questions(scene: SceneContext, rng: np.random.Generator) -> list[dict]:
    """Color, where, what-is-on/next-to/under, counting and room-type questions (without question_id)."""
    out: list[dict] = []
    for target in scene.targets:
        label = scene.name(target)
        sets = identifying_sets(scene, target)
        usable = [s for s in sets if not any(r.predicate == "color" for r in s)]
        if target.color_name and usable:
            core, post = noun_phrase(label, usable[int(rng.integers(len(usable)))], scene, rng)
            question = " ".join(f"what color {be(label)} the {core} {post}".split()) + "?"
            out.append(_qa(question, [target.color_name], [target]))
        if len(scene.members(target)) > 1:  # the questions below name the target by its label alone
            continue
        facts = [r for r in _extra_facts(scene, target) if r.predicate in SPATIAL]
        facts.sort(key=lambda r: not r.object_ids)  # "next to the bed" before "against the wall"
        where = [_post_phrase(r, scene, rng) for r in facts]
        where = [w for w in where if w and w != "on the floor"] or [w for w in where if w]
        if where:
            out.append(_qa(f"where {be(label)} the {label}?", where[:3], [target]))
        for predicate in ("on", "next to", "under"):
            found = [o for o in scene.targets if o is not target and check_relation(predicate, o, [target])]
            if found:
                out.append(_qa(f"what is {predicate} the {label}?", [scene.name(o) for o in found], found))
    out += _count_questions(scene, rng)
    key = [o for o in scene.targets if scene.name(o) in ROOM_KEY_OBJECTS.get(scene.facts.room_type, ())]
    question = str(rng.choice(["what type of room is this?", "what kind of room is this?"]))
    out.append(_qa(question, [scene.facts.room_type], key))
    return [out[int(k)] for k in rng.permutation(len(out))]


def _count_questions(scene: SceneContext, rng: np.random.Generator) -> list[dict]:
    """Counting questions with answers spread over 0..5+: per answer (5 and more pooled) at most one
    question, so a scene full of single objects asks about one of them, not all; zero is asked of a
    class that is absent here but common in rooms (`OBJECT_CATEGORIES`)."""
    by_count: dict[int, list[tuple[str, list[ObjectInfo]]]] = {}
    families = {scene.name(o): o for o in scene.targets}
    for label, first in families.items():
        if scene.clean_family(first) and not is_plural(label):  # no "how many clothes": not counted
            group = scene.members(first)
            by_count.setdefault(min(len(group), 5), []).append((label, group))
    present = [scene.name(o) for o in scene.objects]
    absent = [c for c in OBJECT_CATEGORIES if not any(same_class(c, p) for p in present)]
    if absent:
        by_count[0] = [(label, []) for label in absent]
    out = []
    for bucket in sorted(by_count):
        label, group = by_count[bucket][int(rng.integers(len(by_count[bucket])))]
        question = str(rng.choice(["how many {} are in the room?", "how many {} are there?"]))
        out.append(_qa(question.format(plural(label)), [answer_number(len(group))], group))
    return out


# ------------------------------------------------------------------------------------------------ SQA3D


def sqa3d_question_type(question: str) -> str:
    """SQA3D's evaluation type of a question: its first word when what/is/how/can/which, else other."""
    first = question.strip().split()[0].lower() if question.strip() else ""
    return first if first in ("what", "is", "how", "can", "which") else "other"


def _to_raw(facts: SceneFacts) -> np.ndarray:
    """Axis-aligned -> raw mesh frame (4x4)."""
    return np.eye(4) if facts.axis_alignment is None else np.linalg.inv(np.asarray(facts.axis_alignment))


def sqa3d_origin(facts: SceneFacts) -> np.ndarray:
    """Raw-frame xy centre of the bounding box of every object box: SQA3D's origin for this scene."""
    corners = []
    for o in facts.objects:
        lo, hi = o.center - o.size / 2, o.center + o.size / 2
        for mask in range(8):
            corners.append([hi[k] if mask >> k & 1 else lo[k] for k in range(3)])
    raw = np.asarray(corners) @ _to_raw(facts)[:3, :3].T + _to_raw(facts)[:3, 3]
    return (raw.min(axis=0)[:2] + raw.max(axis=0)[:2]) / 2


def sqa3d_pose(facts: SceneFacts, view: Viewpoint) -> tuple[dict, dict]:
    """SQA3D `position` and `rotation` of an observer given in the axis-aligned frame."""
    to_raw = _to_raw(facts)
    pos = to_raw[:2, :2] @ np.asarray(view.position) + to_raw[:2, 3] - sqa3d_origin(facts)
    heading = to_raw[:2, :2] @ np.asarray(view.forward)
    yaw = float(np.arctan2(-heading[1], -heading[0]))  # the rotation turns -X onto the heading
    position = {"x": float(pos[0]), "y": float(pos[1]), "z": 0}
    rotation = {"_w": float(np.cos(yaw / 2)), "_x": 0, "_y": 0, "_z": float(np.sin(yaw / 2))}
    return position, rotation


def sqa3d_viewpoint(facts: SceneFacts, position: dict, rotation: dict) -> Viewpoint:
    """The observer of an SQA3D annotation, back in the axis-aligned frame (inverse of `sqa3d_pose`)."""
    w, z = float(rotation["_w"]), float(rotation["_z"])
    yaw = 2 * np.arctan2(z, w)
    heading_raw = -np.array([np.cos(yaw), np.sin(yaw)])
    pos_raw = np.array([position["x"], position["y"]]) + sqa3d_origin(facts)
    to_aligned = np.eye(4) if facts.axis_alignment is None else np.asarray(facts.axis_alignment)
    pos = to_aligned[:2, :2] @ pos_raw + to_aligned[:2, 3]
    return Viewpoint.looking_at(pos, pos + to_aligned[:2, :2] @ heading_raw)


def point_gap(point: np.ndarray, obj: ObjectInfo) -> float:
    """Floor-plan distance from a point to an object's footprint (0 inside it)."""
    lo, hi = obj.center[:2] - obj.size[:2] / 2, obj.center[:2] + obj.size[:2] / 2
    return float(np.linalg.norm(np.maximum(0, np.maximum(lo - point, point - hi))))


@dataclass
class Situation:
    """Where the agent is (a viewpoint facing an object), what it sits on, and how the text says it."""

    view: Viewpoint
    seat: ObjectInfo | None
    text: str
    alternatives: list[str]
    near: ObjectInfo | None = None  # what a standing agent is said to stand next to


def _situations(scene: SceneContext, rng: np.random.Generator) -> list[Situation]:
    """An agent sitting on a unique seat, and up to two standing at free spots at least a metre apart,
    each facing a unique object."""
    faceable = [
        o for o in scene.objects if scene.name(o) not in ("wall", "floor") and len(scene.members(o)) == 1
    ]
    out = []
    seats = [o for o in faceable if scene.name(o) in SEATS]
    for seat in [seats[int(k)] for k in rng.permutation(len(seats))]:
        targets = [
            f for f in faceable if f is not seat and np.linalg.norm(f.center[:2] - seat.center[:2]) >= 1.0
        ]
        if targets:
            face = targets[int(rng.integers(len(targets)))]
            view = Viewpoint.looking_at(seat.center, face.center, face.object_id)
            s, f = scene.name(seat), scene.name(face)
            alternatives = [
                f"The {f} is right in front of me.",
                f"I am facing the {f} while sitting on the {s}.",
            ]
            out.append(Situation(view, seat, f"I am sitting on the {s} facing the {f}.", alternatives))
            break
    spots = _free_spots(scene)
    standing = 0
    for k in rng.permutation(len(spots))[:40]:
        spot = spots[int(k)]
        if any(np.linalg.norm(spot - np.asarray(s.view.position)) < 1.0 for s in out):
            continue  # a second standing spot elsewhere in the room, not beside the first
        beside = [
            o for o in faceable if scene.name(o) not in ("door", "window") and point_gap(spot, o) <= 0.7
        ]
        targets = [f for f in faceable if f not in beside and np.linalg.norm(f.center[:2] - spot) >= 1.0]
        if beside and targets:
            near, face = beside[0], targets[int(rng.integers(len(targets)))]
            view = Viewpoint.looking_at(spot, face.center, face.object_id)
            n, f = scene.name(near), scene.name(face)
            alternatives = [f"I am facing the {f} and the {n} is close to me.", f"The {f} is in front of me."]
            text = f"I am standing next to the {n}, facing the {f}."
            out.append(Situation(view, None, text, alternatives, near))
            standing += 1
            if standing == 2:
                break
    return out


def _free_spots(scene: SceneContext, step: float = 0.25, clearance: float = 0.3) -> list[np.ndarray]:
    """Floor points at least `clearance` from every standing object's footprint, inside the room."""
    if scene.extent is None:
        return []
    blockers = [o for o in scene.targets if o.bottom < 1.5]
    xs = np.arange(0.4, scene.extent[0] - 0.4 + 1e-9, step)
    ys = np.arange(0.4, scene.extent[1] - 0.4 + 1e-9, step)
    points = [np.array([x, y]) for x in xs for y in ys]
    return [p for p in points if all(point_gap(p, o) >= clearance for o in blockers)]


COLOR_WHERE = {
    "forward": "in front of me", "left": "on my left", "right": "on my right", "backward": "behind me",
}  # fmt: skip
SQA3D_QUOTA = {"what": 5, "how": 2, "which": 1, "other": 1}  # questions per situation
YES_NO_PAIRS = {"is": 0.5, "can": 1.0}  # chance per situation of a yes/no pair of the kind


def pick_balanced(
    candidates: Sequence[tuple[str, str, str]],
    count: int,
    rng: np.random.Generator,
    used: Counter | None = None,
) -> list[tuple[str, str, str]]:
    """Up to `count` different questions, each drawn by first drawing an answer among those available
    that were given least often so far (`used`, updated; ties uniformly), then a question with that
    answer: the answer prior is as flat as the candidates allow (counts, directions, colors spread)."""
    used = Counter() if used is None else used
    pool = list(dict.fromkeys(candidates))
    picked: list[tuple[str, str, str]] = []
    while pool and len(picked) < count:
        keys = list(dict.fromkeys(c[1] for c in pool))
        fewest = min(used[k] for k in keys)
        keys = [k for k in keys if used[k] == fewest]
        key = keys[int(rng.integers(len(keys)))]
        options = [c for c in pool if c[1] == key]
        choice = options[int(rng.integers(len(options)))]
        picked.append(choice)
        used[key] += 1
        pool = [c for c in pool if c[0] != choice[0]]
    return picked


def situated_questions(
    scene: SceneContext, sit: Situation, rng: np.random.Generator, used: dict[str, Counter] | None = None
) -> list[tuple[str, str, str]]:
    """(question, answer, answer_type) triples, all answered from the agent's frame.

    Balanced against blind guessing: each open kind gets its quota by `pick_balanced`; yes/no questions
    come in pairs of one template, one answered yes and one no (`pick_yes_no_pair`), so each template is
    answered yes exactly half the time; the object the situation says the agent faces (and the one it
    sits on or stands by) is never the subject, so the text gives nothing away. `used` (answers given per
    kind, updated) carries the balance across one scene's situations.
    """
    used = {} if used is None else used
    view, pos = sit.view, np.asarray(sit.view.position)
    named = {o.object_id for o in (sit.seat, sit.near) if o is not None} | {sit.view.facing_id}
    around = [
        o
        for o in scene.objects
        if scene.name(o) not in ("wall", "floor") and o is not sit.seat and point_gap(pos, o) > 0.05
    ]
    unique = [o for o in around if len(scene.members(o)) == 1 and o.object_id not in named]
    sitting = sit.seat is not None
    kinds: dict[str, list[tuple[str, str, str]]] = {k: [] for k in (*SQA3D_QUOTA, *YES_NO_PAIRS)}
    for side in ("left", "right"):
        answer = _nearest_in_sector(scene, view, around, side)
        if answer:
            kinds["what"].append((f"What is on my {side}?", answer, "other"))
    behind = _nearest_in_sector(scene, view, around, "behind")
    if behind:
        kinds["what"].append(("What is behind me?", behind, "other"))
        kinds["other"].append(("If I turn around, what will be in front of me?", behind, "other"))
    verb = "without standing up" if sitting else "without walking"
    for o in unique:
        name, side, direction = scene.name(o), side_of(view, o.center), direction_of(view, o.center)
        if side:
            for ask in ("left", "right") if not is_plural(name) else ():  # "Is the ...": a singular noun
                kinds["is"].append((f"Is the {name} on my {ask}?", "yes" if side == ask else "no", "yes/no"))
            kinds["other"].append(
                (f"If I turn around, will the {name} be on my left or right?", _flip(side), "other")
            )
            if abs(view.bearing(o.center)) >= 30:
                kinds["other"].append((f"Should I turn left or right to face the {name}?", side, "other"))
        if direction:
            kinds["which"].append((f"Which direction should I go to reach the {name}?", direction, "other"))
        gap = point_gap(pos, o)
        if gap <= REACH[0] or gap >= REACH[1]:
            answer = "yes" if gap <= REACH[0] else "no"
            kinds["can"].append((f"Can I reach the {name} {verb}?", answer, "yes/no"))
        where = COLOR_WHERE.get(direction or "")
        if o.color_name and where and (direction != "forward" or view.local(o.center)[0] >= 0.5):
            kinds["what"].append((f"What color {be(name)} the {name} {where}?", o.color_name, "other"))
    for label in sorted({scene.name(o) for o in around}):  # sorted: set order changes between runs
        group = [o for o in around if scene.name(o) == label]
        if not scene.clean_family(group[0]) or len(scene.members(group[0])) != len(group) or is_plural(label):
            continue
        if any(o.object_id in named for o in group):  # "how many tvs are in front of me" facing the tv
            continue
        aheads = [view.local(o.center)[0] for o in group]
        if all(a >= 0.3 or a <= -0.1 for a in aheads):
            count = sum(a >= 0.3 for a in aheads)
            kinds["how"].append(
                (f"How many {plural(label)} are in front of me?", answer_number(count), "number")
            )
        sides = [side_of(view, o.center) for o in group]
        if all(sides):
            for side in ("left", "right"):
                count = sides.count(side)
                kinds["how"].append(
                    (f"How many {plural(label)} are on my {side}?", answer_number(count), "number")
                )
    picked = []
    for kind in rng.permutation(list(kinds)):
        kind = str(kind)
        if kind in YES_NO_PAIRS:
            picked += pick_yes_no_pair(kinds[kind], rng) if rng.random() < YES_NO_PAIRS[kind] else []
        else:
            picked += pick_balanced(kinds[kind], SQA3D_QUOTA[kind], rng, used.setdefault(kind, Counter()))
    return picked


def pick_yes_no_pair(candidates: Sequence[tuple[str, str, str]], rng: np.random.Generator) -> list:
    """A question answered yes and one answered no of the same template (its last word: "Is the lamp on
    my left?" / "Is the plant on my left?"), in random order; none when no template has both."""
    by_template: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for c in dict.fromkeys(candidates):
        by_template.setdefault(c[0].split()[-1], {"yes": [], "no": []})[c[1]].append(c)
    usable = [t for t, group in by_template.items() if group["yes"] and group["no"]]
    if not usable:
        return []
    group = by_template[usable[int(rng.integers(len(usable)))]]
    pair = [group[a][int(rng.integers(len(group[a])))] for a in ("yes", "no")]
    return [pair[int(k)] for k in rng.permutation(2)]


def _flip(side: str) -> str:
    return "right" if side == "left" else "left"


SECTORS = {  # (strict bearing range, band in which another label competes), degrees, left positive
    "left": ((45, 135), (30, 150)),
    "right": ((-135, -45), (-150, -30)),
}


def _in_sector(bearing: float, sector: str, strict: bool) -> bool:
    if sector == "behind":
        return abs(bearing) >= (135 if strict else 120)
    lo, hi = SECTORS[sector][0 if strict else 1]
    return lo <= bearing <= hi


def _nearest_in_sector(
    scene: SceneContext, view: Viewpoint, objects: list[ObjectInfo], sector: str
) -> str | None:
    """Label of the nearest object clearly in a sector (left, right, behind) within 3 m, when no other
    label competes within 0.5 m of it in the wider band."""
    band = [(np.linalg.norm(np.subtract(o.center[:2], view.position)), o) for o in objects]
    band = [(d, o) for d, o in band if d <= 3.0 and _in_sector(view.bearing(o.center), sector, False)]
    strict = [(d, o) for d, o in band if _in_sector(view.bearing(o.center), sector, True)]
    if not strict:
        return None
    best_d, best = min(strict, key=lambda item: item[0])
    rivals = [d for d, o in band if scene.name(o) != scene.name(best)]
    return scene.name(best) if all(d >= best_d + 0.5 for d in rivals) else None


def sqa3d_records(scene: SceneContext, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """SQA3D questions and annotations for up to two situations of the scene."""
    questions, annotations = [], []
    digits = re.findall(r"\d+", scene.facts.scene_id)
    base = int("".join(digits)) if digits else zlib.crc32(scene.facts.scene_id.encode()) % 10**6
    used: dict[str, Counter] = {}  # answers per question kind so far: balanced across the situations
    for sit in _situations(scene, rng):
        position, rotation = sqa3d_pose(scene.facts, sit.view)
        for question, answer, answer_type in situated_questions(scene, sit, rng, used):
            qid = base * 1000 + len(questions)
            questions.append(
                {
                    "question_id": qid,
                    "scene_id": scene.facts.scene_id,
                    "situation": sit.text,
                    "alternative_situation": sit.alternatives,
                    "question": question,
                }
            )
            annotations.append(
                {
                    "question_id": qid,
                    "scene_id": scene.facts.scene_id,
                    "question_type": "N/A",
                    "answer_type": answer_type,
                    "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": 1}],
                    "position": position,
                    "rotation": rotation,
                }
            )
    return questions, annotations


# --------------------------------------------------------------------------------------------- driver


def generate_benchmarks(
    scenes: list[SceneFacts], seed: int, label_map: LabelMap | None = None
) -> dict[str, list | dict]:
    """Every benchmark file's content, keyed by its path relative to the output folder."""
    label_map = label_map or LabelMap.default()
    ids = [s.scene_id for s in scenes]
    if len(set(ids)) != len(ids):
        raise ValueError("scene ids must be unique")
    unknown = sorted({s.split for s in scenes} - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}: expected one of {SPLITS}")
    out: dict[str, list | dict] = {}
    scanqa_counter: dict[str, int] = {}
    lookup: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        refer, multi, qa, sqa_q, sqa_a, split_ids = [], [], [], [], [], []
        for facts in sorted((s for s in scenes if s.split == split), key=lambda s: s.scene_id):
            scene = SceneContext(facts)
            rng = np.random.default_rng([seed, zlib.crc32(facts.scene_id.encode())])
            split_ids.append(facts.scene_id)
            scene_refer = scanrefer_records(scene, rng)
            refer += scene_refer
            described = {int(r["object_id"]) for r in scene_refer}
            lookup[facts.scene_id] = unique_multiple(scene, described, label_map)
            multi += multi3drefer_records(scene, rng)
            for item in scanqa_questions(scene, rng):
                stem = f"{split}-{facts.scene_id.split('_')[0]}"
                n = scanqa_counter.get(stem, 0)
                scanqa_counter[stem] = n + 1
                qa.append({"question_id": f"{stem}-{n}", "scene_id": facts.scene_id, **item})
            questions, annotations = sqa3d_records(scene, rng)
            sqa_q += questions
            sqa_a += annotations
        out[f"scannetv2_{split}.txt"] = split_ids
        out[f"annotations/ScanRefer_filtered_{split}.json"] = refer
        out[f"annotations/multi3drefer_{split}.json"] = multi
        out[f"annotations/ScanQA_v1.0_{split}.json"] = qa
        out[f"annotations/v1_balanced_questions_{split}_scannetv2.json"] = {"questions": sqa_q}
        out[f"annotations/v1_balanced_sqa_annotations_{split}_scannetv2.json"] = {"annotations": sqa_a}
    out["annotations/scanrefer_unique_multiple_lookup.json"] = dict(sorted(lookup.items()))
    return out


def write_benchmarks(out_dir: str | Path, benchmarks: dict[str, list | dict]) -> list[Path]:
    """Write every file through the `core.data` module that reads its format, after validating it with
    that module's parser (a record the readers would refuse is never written); writes are atomic. `.txt`
    files (the split lists) are lines."""
    out_dir = Path(out_dir)
    written = []
    for relative, content in benchmarks.items():
        path = out_dir / relative
        name = path.name
        if relative.endswith(".txt"):
            written.append(atomic_write_text(path, "".join(f"{line}\n" for line in content)))
        elif name.startswith("ScanRefer_filtered_"):
            written.append(write_scanrefer(path, parse_scanrefer(path, content)))
        elif name == "scanrefer_unique_multiple_lookup.json":
            lookup = parse_unique_multiple_lookup(path, content)
            written.append(write_unique_multiple_lookup(path, lookup, scenes=list(content)))
        elif name.startswith("multi3drefer_"):
            written.append(write_multi3drefer(path, parse_multi3drefer(path, content)))
        elif name.startswith("ScanQA_v1.0_"):
            written.append(write_scanqa(path, parse_scanqa(path, content)))
        elif name.startswith("v1_balanced_questions_"):
            pair = path.with_name(name.replace("_questions_", "_sqa_annotations_"))
            partner = benchmarks.get(str(Path(relative).with_name(pair.name)))
            if partner is None:
                raise ValueError(f"{relative}: its SQA3D annotations ({pair.name}) are missing")
            written += write_sqa3d_release(path, pair, parse_sqa3d_release(path, content, pair, partner))
        elif name.startswith("v1_balanced_sqa_annotations_"):
            continue  # written with its questions
        else:
            raise ValueError(f"{relative}: no core.data writer for this file")
    return written
