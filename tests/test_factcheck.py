"""The fact checker on generated scenes: planted false captions are contradicted, their true versions
supported; synonyms, anchors, counts, "far from", unparsed sentences; and `python -m core factcheck`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.__main__ import main
from core.annotate.claims import Vocabulary, extract_claims
from core.annotate.factcheck_cli import COLOR_SAMPLES
from core.annotate.facts import AnchorNames, ColorEvidence, relation_phrase, scene_relations
from core.annotate.verify import COLOR_CONTRADICT, CONTRADICTED, SUPPORTED, UNVERIFIABLE, decide, fact_check
from core.scene.colors import COLOR_WORDS, color_votes, sample_pixels
from core.scene.labels import LabelMap
from core.scene.relations import CONTAINERS, STRUCTURAL_LABELS, check_relation, head_noun, normalize_label
from core.scene.scannet import load_scene
from core.synth.dataset import load_facts
from core.text import attribute_adjective, attribute_predicate, indefinite, is_plural, number_word, plural

SCENES = ("scene0000_00", "scene0001_00")  # a bedroom and a living room
WRONG_PREDICATES = ("on", "under", "above", "next to", "near", "far from")


class World:
    """One generated scene as the checker sees it: objects, vertex-color evidence, vocabulary."""

    def __init__(self, root: Path, scene_id: str):
        label_map = LabelMap.from_tsv(root / "scannetv2-labels.combined.tsv")
        scene = load_scene(root, scene_id, label_map=label_map, with_frames=False)
        self.objects = scene.objects()
        self.by_id = {o.object_id: o for o in self.objects}
        self.vocab = Vocabulary.from_label_map([o.label for o in self.objects], label_map)
        self.colors = {
            inst.object_id: ColorEvidence(
                color_votes(sample_pixels(scene.mesh.colors[inst.vertex_indices], COLOR_SAMPLES)), []
            )
            for inst in scene.instances
            if len(inst.vertex_indices)
        }
        self.names = AnchorNames(self.objects)

    def targets(self):
        return [o for o in self.objects if normalize_label(o.label) not in STRUCTURAL_LABELS]

    def check(self, text: str, subject_id: int) -> list:
        subject = self.by_id[subject_id]
        return fact_check(text, subject, self.objects, self.colors[subject_id], self.vocab)

    def verdict(self, text: str, subject_id: int, kind: str) -> str:
        found = [v for v in self.check(text, subject_id) if v.kind == kind]
        assert len(found) == 1, (text, found)
        return found[0].verdict


@pytest.fixture(scope="module")
def worlds(synth_root: Path) -> dict[str, World]:
    return {sid: World(synth_root, sid) for sid in SCENES}


# ------------------------------------------------------------------------------- planted per object


def test_planted_wrong_colors_are_contradicted_true_colors_supported(worlds):
    checked = 0
    for world in worlds.values():
        for obj in world.targets():
            label, colors = normalize_label(obj.label), world.colors[obj.object_id]
            wrong = min(COLOR_WORDS, key=colors.share)  # a color the object's surface clearly is not
            assert colors.share(wrong) < COLOR_CONTRADICT
            assert world.verdict(f"This is a {colors.dominant} {label}.", obj.object_id, "color") == SUPPORTED
            assert world.verdict(f"This is a {wrong} {label}.", obj.object_id, "color") == CONTRADICTED
            checked += 1
    assert checked >= 20


def test_planted_wrong_categories_are_contradicted(worlds):
    checked = 0
    for world in worlds.values():
        labels = {normalize_label(o.label) for o in world.targets()}
        for obj in world.targets():
            label = normalize_label(obj.label)
            other = next(
                name
                for name in sorted(labels)
                if not world.vocab.names(obj.label, name) and not world.vocab.names(name, obj.label)
            )
            assert world.verdict(f"This is a {label}.", obj.object_id, "category") == SUPPORTED
            verdicts = world.check(f"This is a {other}.", obj.object_id)
            assert [v.verdict for v in verdicts if v.kind == "category"] == [CONTRADICTED], (label, other)
            assert decide(verdicts, True, 8, 8)[0] == "rejected"
            checked += 1
    assert checked >= 20


def test_planted_wrong_relations_and_anchors_are_contradicted(worlds):
    true_checked = wrong_relation = wrong_anchor = 0
    for world in worlds.values():
        for obj in world.targets():
            label = normalize_label(obj.label)
            names = world.names.names_for(obj.object_id)
            for rel in scene_relations(obj, world.objects, world.names)[:3]:
                if not rel.object_ids or rel.predicate == "between":
                    continue
                phrase = relation_phrase(rel, names, label)
                assert world.verdict(f"The {label} is {phrase}.", obj.object_id, "relation") == SUPPORTED, (
                    phrase
                )
                true_checked += 1
                anchor = world.by_id[rel.object_ids[0]]
                # the same anchor with a predicate the geometry refutes
                for predicate in WRONG_PREDICATES:
                    if check_relation(predicate, obj, [anchor], scene=world.objects) is False:
                        text = f"The {label} is {predicate} the {names[anchor.object_id]}."
                        assert world.verdict(text, obj.object_id, "relation") == CONTRADICTED, text
                        wrong_relation += 1
                        break
                # the same predicate with another nameable anchor it fails for
                for other_id, name in sorted(names.items()):
                    other = world.by_id[other_id]
                    if other_id in rel.object_ids or normalize_label(other.label) in STRUCTURAL_LABELS:
                        continue
                    if rel.predicate == "in" and head_noun(other.label) not in CONTAINERS:
                        continue  # "in" is judged for containers only ("in the bed": unverifiable)
                    if check_relation(rel.predicate, obj, [other], scene=world.objects) is False:
                        text = f"The {label} is {rel.predicate} the {name}."
                        assert world.verdict(text, obj.object_id, "relation") == CONTRADICTED, text
                        wrong_anchor += 1
                        break
    assert true_checked >= 15 and wrong_relation >= 15 and wrong_anchor >= 10


def test_planted_wrong_counts_are_contradicted(worlds):
    checked = 0
    for world in worlds.values():
        for obj in world.targets():
            label = normalize_label(obj.label)
            members = [o for o in world.objects if world.vocab.names(o.label, label)]
            if len(members) < 2 or is_plural(label):  # "one of the two clothes" is no English count
                continue
            true, wrong = len(members), len(members) + 1
            cases = [  # in words and in digits
                (f"one of the {number_word(true)}", SUPPORTED),
                (f"one of the {true}", SUPPORTED),
                (f"one of {number_word(wrong)}", CONTRADICTED),
                (f"one of the {wrong}", CONTRADICTED),
            ]
            for said, verdict in cases:
                text = f"It is {said} {plural(label)}."
                assert world.verdict(text, obj.object_id, "count") == verdict, text
            checked += 1
    assert checked >= 2  # classes with several members in each scene (pillows, books, boxes ...)


# ------------------------------------------------------------------------------ words and anchors


def _pillow_and_couch(world: World):
    pillow = next(o for o in world.objects if o.label == "pillow")
    couch = next(o for o in world.objects if o.label == "couch")
    assert check_relation("on", pillow, [couch]) is True  # the generated pillow lies on the couch
    return pillow, couch


def test_synonyms_cushion_and_sofa_are_recognised(worlds):
    world = worlds["scene0001_00"]
    pillow, _ = _pillow_and_couch(world)
    verdicts = {v.kind: v for v in world.check("A cushion lying on the sofa.", pillow.object_id)}
    assert verdicts["category"].verdict == SUPPORTED and verdicts["category"].value == "cushion"
    assert verdicts["relation"].verdict == SUPPORTED and verdicts["relation"].anchors == ["sofa"]
    assert world.verdict("It is far from the sofa.", pillow.object_id, "relation") == CONTRADICTED
    assert world.verdict("It is far from the couch.", pillow.object_id, "relation") == CONTRADICTED
    # the plain vocabulary of a scene (no label table) knows the explicit synonyms too
    claims = extract_claims("pink cushion lying on the sofa", "pillow", [o.label for o in world.objects])
    assert [(c.kind, c.value) for c in claims] == [
        ("category", "cushion"),
        ("relation", "on"),
        ("color", "pink"),
    ]


def test_far_from_is_checked_both_ways(worlds):
    world = worlds["scene0000_00"]
    seen = set()
    for obj in world.targets():
        for other_id, name in world.names.names_for(obj.object_id).items():
            answer = check_relation("far from", obj, [world.by_id[other_id]])
            if answer is None or normalize_label(world.by_id[other_id].label) in STRUCTURAL_LABELS:
                continue
            expected = SUPPORTED if answer else CONTRADICTED
            assert world.verdict(f"It is far from the {name}.", obj.object_id, "relation") == expected
            seen.add(expected)
    assert seen == {SUPPORTED, CONTRADICTED}


def test_an_ambiguous_anchor_is_unverifiable_unless_true_or_false_for_every_instance(worlds):
    mixed = decided = 0
    for world in worlds.values():
        labels = [normalize_label(o.label) for o in world.targets()]
        for label in sorted({n for n in labels if labels.count(n) == 2}):  # a class of two: "the <label>"
            pair = [o for o in world.objects if normalize_label(o.label) == label]
            for obj in world.targets():
                if world.vocab.names(obj.label, label) or world.vocab.names(label, obj.label):
                    continue
                for predicate in ("near", "next to", "far from"):
                    answers = [check_relation(predicate, obj, [p]) for p in pair]
                    text = f"It is {predicate} the {label}."
                    verdict = world.verdict(text, obj.object_id, "relation")
                    if set(answers) == {True, False}:
                        assert verdict == UNVERIFIABLE, text
                        note = next(v.note for v in world.check(text, obj.object_id) if v.kind == "relation")
                        assert "ambiguous anchor" in note
                        mixed += 1
                    elif answers in ([True, True], [False, False]):
                        assert verdict == (SUPPORTED if answers[0] else CONTRADICTED), text
                        decided += 1
    assert mixed >= 1 and decided >= 1


def test_a_qualified_anchor_resolves_to_the_instance_it_names(worlds):
    world = worlds["scene0000_00"]
    resolved = 0
    for obj in world.targets():
        for other_id, name in world.names.names_for(obj.object_id).items():
            other = world.by_id[other_id]
            if " " not in name or normalize_label(other.label) in STRUCTURAL_LABELS:
                continue  # only names with a qualifier: "largest plant", "pillow nearest the desk"
            answer = check_relation("near", obj, [other])
            if answer is None:
                continue
            verdict = world.verdict(f"It is near the {name}.", obj.object_id, "relation")
            assert verdict == (SUPPORTED if answer else CONTRADICTED), (obj.label, name)
            resolved += 1
    assert resolved >= 3


def test_an_unparsed_sentence_is_unverifiable_and_lowers_the_confidence(worlds):
    world = worlds["scene0001_00"]
    pillow, _ = _pillow_and_couch(world)
    base = "This is a pillow. It is on the couch."
    plain = world.check(base, pillow.object_id)
    extra = world.check(base + " The room looks cozy and inviting.", pillow.object_id)
    unparsed = [v for v in extra if v.kind == "sentence"]
    assert len(unparsed) == 1 and unparsed[0].verdict == UNVERIFIABLE and unparsed[0].note == "unparsed"
    assert decide(extra, True, 8, 8)[1] < decide(plain, True, 8, 8)[1] == 1.0
    # a sentence of which nothing can be read is never "accepted at confidence 1.0"
    only = world.check("Look at it over there.", pillow.object_id)
    assert [v.verdict for v in only] == [UNVERIFIABLE]
    assert decide(only, True, 8, 8)[0] == "flagged"


def test_a_relation_about_another_object_is_checked_for_that_object(worlds):
    checked = 0
    for world in worlds.values():
        unique = [o for o in world.targets() if world.names.name(o.object_id) == normalize_label(o.label)]
        for item, support, other in ((a, b, c) for a in unique for b in unique for c in unique):
            if len({item.object_id, support.object_id, other.object_id}) < 3 or is_plural(item.label):
                continue
            answer = check_relation("next to", support, [other])
            if answer is None or check_relation("next to", item, [other]) == answer:
                continue  # only where the subject and the object the clause is about differ
            a, b, c = (normalize_label(o.label) for o in (item, support, other))
            verdicts = world.check(f"{indefinite(a)} near the {b}, which is next to the {c}.", item.object_id)
            about = [v for v in verdicts if v.text == f"next to the {c}"]
            assert about and f"about the {b}" in about[0].note, verdicts
            assert about[0].verdict == (SUPPORTED if answer else CONTRADICTED)
            checked += 1
    assert checked >= 1


# ----------------------------------------------------------------------------------- words (core.text)

LABELS = ["chair", "table", "desk", "bed", "couch", "pillow", "whiteboard", "glass", "clothes", "book", "box"]


def _read(text: str, subject: str) -> list[tuple[str, str, list[str]]]:
    return [(c.kind, c.value, c.anchors) for c in extract_claims(text, subject, LABELS)]


@pytest.mark.parametrize(
    ("text", "subject", "expected"),
    [
        ("There are two chairs in the room.", "chair", [("count", "2", [])]),
        ("There are 2 chairs in the room.", "chair", [("count", "2", [])]),
        ("It is one of the 3 pillows.", "pillow", [("count", "3", [])]),
        ("It is one of the twenty-one books.", "book", [("count", "21", [])]),
        ("Both pillows on the bed are red.", "pillow", [("count", "2 on", ["bed"]), ("color", "red", [])]),
        ("Two boxes are on the table.", "box", [("count", "2 on", ["table"])]),
        ("2 boxes are on the table.", "box", [("count", "2 on", ["table"])]),
    ],
)
def test_counts_are_read_in_words_and_digits(text, subject, expected):
    assert _read(text, subject) == expected


@pytest.mark.parametrize(
    ("text", "subject", "category", "rest"),
    [
        ("The round table is next to the bed.", "table", "table", [("relation", "next to", ["bed"])]),
        ("The L-shaped desk is against the wall.", "desk", "desk", [("relation", "against the wall", [])]),
        ("The drum-shaped lamp is on the desk.", "lamp", "lamp", [("relation", "on", ["desk"])]),
        ("The wooden chair is near the desk.", "chair", "chair", [("relation", "near", ["desk"]),
                                                                 ("material", "wood", [])]),
        ("A landscape-format picture above the bed.", "picture", "picture", [("relation", "above", ["bed"])]),
    ],
)  # fmt: skip
def test_shape_and_material_words_leave_the_category_readable(text, subject, category, rest):
    claims = extract_claims(text, subject, [*LABELS, subject])
    assert (claims[0].kind, claims[0].value) == ("category", category)
    assert [(c.kind, c.value, c.anchors) for c in claims[1:]] == rest


def test_words_inside_a_name_are_no_claims_and_materials_read_as_written():
    # "white board" names the whiteboard: no color claim; "glass" names a glass: no material claim
    assert _read("This is a white board.", "whiteboard") == [("category", "white board", [])]
    glass = _read("The glass is on the table.", "glass")
    assert glass == [("category", "glass", []), ("relation", "on", ["table"])]
    # the synthetic text says materials after "it is" as "made of ...": read as the material
    assert _read("It is made of metal.", "chair") == [("material", "metal", [])]
    assert _read("They are covered in fabric.", "clothes") == [("material", "fabric", [])]
    # a plural-only label is one object, not a plural mention
    assert _read("The clothes are on the bed.", "clothes") == [("category", "clothes", []),
                                                                ("relation", "on", ["bed"])]  # fmt: skip


def test_materials_are_checked_against_the_generated_material(synth_root):
    """The generator's facts know materials ("wooden"): the words the synthetic text uses for them ("made
    of wood", "a wooden table") are supported, another material contradicted."""
    checked = 0
    for scene_id in SCENES:
        objects = load_facts(synth_root, scene_id).objects
        vocab = Vocabulary([o.label for o in objects])
        for obj in objects:
            material = obj.attributes.get("material")
            if material not in ("wooden", "metal", "plastic", "fabric", "leather"):
                continue
            name = normalize_label(obj.label)
            other = "leather" if material != "leather" else "metal"
            cases = [
                (f"It is {attribute_predicate('material', material)}.", SUPPORTED),  # "made of wood"
                (f"This is {indefinite(attribute_adjective('material', material) + ' ' + name)}.", SUPPORTED),
                (f"It is made of {other}.", CONTRADICTED),
            ]
            for text, expected in cases:
                found = [v for v in fact_check(text, obj, objects, None, vocab) if v.kind == "material"]
                assert [v.verdict for v in found] == [expected], text
            checked += 1
    assert checked >= 2


# ------------------------------------------------------------------------------------------ command


def _records(synth_root: Path) -> list[dict]:
    return json.loads((synth_root / "annotations" / "ScanRefer_filtered_val.json").read_text())


def test_factcheck_command_prints_a_summary_and_writes_json(synth_root, tmp_path, capsys):
    path = synth_root / "annotations" / "ScanRefer_filtered_val.json"
    out = tmp_path / "report.json"
    assert (
        main(["factcheck", "--scans", str(synth_root), "--descriptions", str(path), "--out", str(out)]) == 0
    )
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    s = report["summary"]
    assert s["records"] == len(_records(synth_root)) == len(report["records"])
    assert s["claims"] == s["supported"] + s["contradicted"] + s["unverifiable"] > 0
    assert f"{s['supported']} supported, {s['contradicted']} contradicted" in text.splitlines()[-1]
    assert all("claims" in r for r in report["records"])


def test_factcheck_command_flags_planted_false_descriptions(synth_root, tmp_path, capsys, worlds):
    world = worlds["scene0001_00"]
    pillow, couch = _pillow_and_couch(world)
    base = {
        "scene_id": "scene0001_00",
        "object_id": str(pillow.object_id),
        "object_name": "pillow",
        "token": [],
    }
    texts = {
        "0": "this is a pillow lying on the sofa.",  # true
        "1": "this is a lamp on the couch.",  # wrong category
        "2": "the pillow is under the couch.",  # wrong relation
        "3": "it is one of the four pillows.",  # wrong count
        "4": "the pillow is far from the couch.",  # wrong relation
        "5": "if you walk in from the hallway you will see it straight ahead, kind of hidden.",  # free form
    }
    path = tmp_path / "planted.json"
    path.write_text(json.dumps([{**base, "ann_id": k, "description": t} for k, t in texts.items()]))
    code = main(["factcheck", "--scans", str(synth_root), "--descriptions", str(path), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    flagged = {key.split("|")[-1] for key in report["summary"]["contradicted_records"]}
    assert flagged == {"1", "2", "3", "4"}
    free = next(r for r in report["records"] if r["key"].endswith("|5"))
    assert [c["note"] for c in free["claims"]] == ["unparsed"]
    assert report["summary"]["unparsed_sentences"] >= 1


def test_factcheck_command_refuses_bad_input_naming_the_file(synth_root, tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('[{"scene_id": "scene0000_00"}]')
    assert main(["factcheck", "--scans", str(synth_root), "--descriptions", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err
    missing = tmp_path / "missing.json"
    assert main(["factcheck", "--scans", str(synth_root), "--descriptions", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
