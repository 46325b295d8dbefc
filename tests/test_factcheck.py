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
from core.scene.relations import STRUCTURAL_LABELS, check_relation, normalize_label
from core.scene.scannet import load_scene

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


def _plural(word: str) -> str:
    return word + "es" if word.endswith(("x", "ch", "sh", "s")) else word + "s"


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
            words = ["one", "two", "three", "four", "five", "six", "seven"]
            if len(members) < 2 or len(members) >= len(words) - 1:
                continue
            true, wrong = words[len(members) - 1], words[len(members)]
            assert (
                world.verdict(f"It is one of the {true} {_plural(label)}.", obj.object_id, "count")
                == SUPPORTED
            )
            assert (
                world.verdict(f"It is one of {wrong} {_plural(label)}.", obj.object_id, "count")
                == CONTRADICTED
            )
            checked += 1
    assert checked >= 2  # the bedroom's pillows and plants, the living room's pictures and plants


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
    world = worlds["scene0000_00"]
    plants = [o for o in world.objects if o.label == "plant"]
    assert len(plants) == 2
    mixed = decided = 0
    for obj in world.targets():
        if obj.label == "plant":
            continue
        for predicate in ("near", "next to", "far from"):
            answers = [check_relation(predicate, obj, [p]) for p in plants]
            verdict = world.verdict(f"It is {predicate} the plant.", obj.object_id, "relation")
            if set(answers) == {True, False}:
                assert verdict == UNVERIFIABLE
                note = next(v.note for v in world.check(f"It is {predicate} the plant.", obj.object_id))
                assert "ambiguous anchor" in note
                mixed += 1
            elif answers in ([True, True], [False, False]):
                assert verdict == (SUPPORTED if answers[0] else CONTRADICTED)
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
    world = worlds["scene0000_00"]
    lamp, nightstand = (next(o for o in world.objects if o.label == n) for n in ("lamp", "nightstand"))
    bed = next(o for o in world.objects if o.label == "bed")
    assert check_relation("next to", nightstand, [bed]) is True
    verdicts = world.check("A lamp on the nightstand, which is next to the bed.", lamp.object_id)
    about = [v for v in verdicts if v.text == "next to the bed"]
    assert about and about[0].verdict == SUPPORTED and "about the nightstand" in about[0].note


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
