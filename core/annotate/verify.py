"""Stage 4: consistency verification. (a) the language model's verdict on the per-view descriptions;
(b) a geometric fact check of the fused caption against the 3D scene, then a status and a confidence.

Each claim of the caption (`claims.py`) is marked supported, contradicted or unverifiable, with a short
`note` saying why when it is not plainly decided:

- category: the caption names the object by its label, head noun or a synonym (`claims.Vocabulary`: cushion
  ~ pillow, sofa ~ couch); naming another class contradicts.
- color: the word's share of the object's pixel color votes (pooled over views): the dominant word or at
  least `COLOR_SUPPORT` supports, below `COLOR_CONTRADICT` contradicts.
- size: "small" / "large" against the size class of the box (`facts.size_class`); the other extreme
  contradicts. material: against the object's known material (synthetic scenes), else unverifiable.
- relation: `core.scene.relations.check_relation` against the anchor instance the sentence resolves to
  (`resolve`): "the bed" when one object answers to the name; "the largest chair" / "the nightstand
  nearest the bed" when that qualifier singles one out. An ambiguous anchor ("the chair" in a room with
  three) supports only when the relation holds for every instance it could mean, contradicts when it
  fails for every one, and is otherwise unverifiable (note "ambiguous anchor"): the verdict never depends
  on guessing which one the writer meant. "in" is checked for containers only (`relations.inside`).
  View-dependent relations (left of ...) have no viewpoint in a caption and stay unverifiable.
- count: "one of the three pillows" / "there are two chairs" against the objects of that class in the
  scene; "two pillows on the bed" against those the relation holds for (exact when every member is
  decided, else unverifiable unless clearly off); a group placed in words the reader does not know ("two
  chairs at the table") is unverifiable.
- sentence: a sentence the reader could not read is unverifiable (note "unparsed"), so it lowers the
  confidence instead of passing.

Status: rejected when the category is contradicted or two claims are; flagged when one claim is, when
the model found the views inconsistent, or when nothing could be verified; accepted otherwise. The
reasons behind a flag or a rejection are named by `flag_reasons` (codes in `FLAG_REASONS`), which the
records carry so that reviewers see why and can filter by it. The confidence (0..1) orders the review
queue: verified share, lowered by disagreement and few views.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

from core.annotate.claims import UNLOCATED, AnchorRef, Claim, Vocabulary, extract_claims
from core.annotate.facts import ColorEvidence, size_class
from core.scene.objects import ObjectInfo
from core.scene.relations import CONTAINERS, check_relation, head_noun
from core.text import material_name

SUPPORTED, CONTRADICTED, UNVERIFIABLE = "supported", "contradicted", "unverifiable"
COLOR_SUPPORT = 0.2
COLOR_CONTRADICT = 0.05
CLAIM_KINDS = ("category", "color", "size", "material", "count", "relation", "sentence")
# Why a caption is flagged or rejected: code -> what a reviewer reads. Order: most serious first.
FLAG_REASONS: dict[str, str] = {
    "category_contradicted": "the caption names another kind of object",
    "color_contradicted": "a color claim is contradicted",
    "size_contradicted": "a size claim is contradicted",
    "material_contradicted": "a material claim is contradicted",
    "count_contradicted": "a count is contradicted",
    "relation_contradicted": "a spatial relation is contradicted",
    "views_inconsistent": "the views were found inconsistent",
    "nothing_verified": "no claim could be verified",
}


@dataclass
class Verdict:
    kind: str
    text: str
    value: str
    verdict: str
    anchors: list[str]
    note: str = ""  # why it is unverifiable (unparsed, ambiguous anchor ...), or which instance was meant

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_consistency(answer: str) -> bool | None:
    """The model's verdict: True for CONSISTENT, False for INCONSISTENT, None when it said neither."""
    head = answer.strip().upper()
    if head.startswith("INCONSISTENT") or head.startswith("NO"):
        return False
    if head.startswith("CONSISTENT") or head.startswith("YES"):
        return True
    return None


def _three_valued(results: list[bool | None]) -> str:
    """All True supports, all False contradicts, anything else (or nothing) is unverifiable."""
    if results and all(r is True for r in results):
        return SUPPORTED
    if results and all(r is False for r in results):
        return CONTRADICTED
    return UNVERIFIABLE


def resolve(
    ref: AnchorRef, objects: list[ObjectInfo], vocab: Vocabulary, exclude: ObjectInfo | None = None
) -> tuple[list[ObjectInfo], str]:
    """The instances an anchor phrase can mean (one when resolved), and a note when it is not resolved
    to exactly one: "not in the scene", "no clear largest chair", "ambiguous anchor (3 chair)"."""
    found = [o for o in objects if o is not exclude and vocab.names(o.label, ref.name)]
    if not found:
        return [], f"no {ref.name} in the scene"
    if ref.superlative:
        picked = [o for o in found if check_relation(ref.superlative, o, scene=objects) is True]
        return (picked, "") if len(picked) == 1 else ([], f"no clear {ref.text}")
    if ref.nearest:
        refs, note = resolve(AnchorRef(ref.nearest), objects, vocab)
        if len(refs) != 1:
            return [], note
        picked = [o for o in found if check_relation("closest to", o, refs, scene=objects) is True]
        return (picked, "") if len(picked) == 1 else ([], f"no clear {ref.text}")
    return found, "" if len(found) == 1 else f"ambiguous anchor ({len(found)} {ref.name})"


def judge(
    claim: Claim,
    subject: ObjectInfo,
    objects: list[ObjectInfo],
    colors: ColorEvidence | None,
    vocab: Vocabulary | None = None,
) -> tuple[str, str]:
    """(verdict, note) of one claim about `subject` (see the module docstring)."""
    vocab = vocab or Vocabulary([o.label for o in objects])
    if claim.kind == "sentence":
        return UNVERIFIABLE, "unparsed"
    if claim.kind == "category":
        if vocab.names(subject.label, claim.value):
            return SUPPORTED, ""
        if vocab.names(claim.value, subject.label):  # "office chair" said of a "chair": cannot tell
            return UNVERIFIABLE, "more specific than the label"
        return CONTRADICTED, ""
    if claim.kind == "color":
        if colors is None or not colors.votes:
            return UNVERIFIABLE, "no color evidence"
        share = colors.share(claim.value)
        if claim.value == colors.dominant or share >= COLOR_SUPPORT:
            return SUPPORTED, ""
        return (CONTRADICTED, "") if share < COLOR_CONTRADICT else (UNVERIFIABLE, "a minor color")
    if claim.kind == "size":
        measured = size_class(subject)
        if measured is None:
            return UNVERIFIABLE, "medium size"
        return (SUPPORTED if measured == claim.value else CONTRADICTED), ""
    if claim.kind == "material":
        known = subject.attributes.get("material")
        return (UNVERIFIABLE, "material unknown") if not known else (
            SUPPORTED if material_name(known) == claim.value else CONTRADICTED, ""
        )
    if claim.kind == "count":
        return _judge_count(claim, objects, vocab)
    verdict, note = _judge_relation(claim, subject, objects, vocab)
    about = f"about the {claim.about.text}" if claim.about is not None else ""
    return verdict, "; ".join(n for n in (about, note) if n)


def _judge_relation(
    claim: Claim, subject: ObjectInfo, objects: list[ObjectInfo], vocab: Vocabulary
) -> tuple[str, str]:
    subjects = [subject]
    if claim.about is not None:  # "a table which is under the window": about the table
        subjects, note = resolve(claim.about, objects, vocab)
        if not subjects:
            return UNVERIFIABLE, note
    if claim.value == "in" and not all(head_noun(r.name) in CONTAINERS for r in claim.refs):
        return UNVERIFIABLE, "in: not a container"
    results, notes = [], []
    for who in subjects:
        candidates = []
        for ref in claim.refs:
            found, note = resolve(ref, objects, vocab, exclude=who)
            if not found:
                return UNVERIFIABLE, note
            candidates.append(found)
            notes.append(note)
        for anchors in product(*candidates):
            if len({a.object_id for a in (who, *anchors)}) == len(anchors) + 1:
                results.append(check_relation(claim.value, who, list(anchors), scene=objects))
    verdict = _three_valued(results)
    if verdict != UNVERIFIABLE:
        return verdict, ""
    if not results:
        return UNVERIFIABLE, "no distinct anchors"
    ambiguous = "; ".join(n for n in notes if n) or ("ambiguous subject" if len(subjects) > 1 else "")
    return UNVERIFIABLE, ambiguous or "the geometry cannot tell"


def _judge_count(claim: Claim, objects: list[ObjectInfo], vocab: Vocabulary) -> tuple[str, str]:
    number = int(claim.value.split()[0])
    members = [o for o in objects if vocab.names(o.label, claim.about.name)]
    if " " not in claim.value:  # the room's total
        return (SUPPORTED if len(members) == number else CONTRADICTED), f"{len(members)} in the scene"
    predicate = claim.value.split(" ", 1)[1]
    if predicate == UNLOCATED:
        return UNVERIFIABLE, "the counted group is not located"
    anchors = []
    for ref in claim.refs:
        found, note = resolve(ref, objects, vocab)
        if len(found) != 1:
            return UNVERIFIABLE, note or f"ambiguous anchor ({len(found)} {ref.name})"
        anchors.append(found[0])
    answers = [check_relation(predicate, m, anchors, scene=objects) for m in members if m not in anchors]
    true, unsure = sum(a is True for a in answers), sum(a is None for a in answers)
    if true == number and unsure == 0:
        return SUPPORTED, ""
    if number < true or number > true + unsure:
        return CONTRADICTED, f"{true} {predicate} it"
    return UNVERIFIABLE, "the geometry cannot tell"


def check_claim(
    claim: Claim,
    subject: ObjectInfo,
    objects: list[ObjectInfo],
    colors: ColorEvidence | None,
    vocab: Vocabulary | None = None,
) -> str:
    return judge(claim, subject, objects, colors, vocab)[0]


def fact_check(
    caption: str,
    subject: ObjectInfo,
    objects: list[ObjectInfo],
    colors: ColorEvidence | None,
    vocab: Vocabulary | None = None,
) -> list[Verdict]:
    """Every claim of a caption about `subject` with its verdict; `vocab` defaults to the scene's labels
    with the explicit synonyms (pass one built from the label table to know every name)."""
    labels = [o.label for o in objects]
    vocab = vocab or Vocabulary(labels)
    out = []
    for c in extract_claims(caption, subject.label, labels, vocab):
        verdict, note = judge(c, subject, objects, colors, vocab)
        out.append(Verdict(c.kind, c.text, c.value, verdict, c.anchors, note))
    return out


def flag_reasons(verdicts: list[Verdict], consistent: bool | None) -> list[str]:
    """The `FLAG_REASONS` codes that hold for a caption, in that table's order; empty: nothing to flag."""
    kinds = {v.kind for v in verdicts if v.verdict == CONTRADICTED}
    ordered = [k for k in CLAIM_KINDS if k in kinds] + sorted(kinds - set(CLAIM_KINDS))
    reasons = [f"{kind}_contradicted" for kind in ordered]
    if consistent is False:
        reasons.append("views_inconsistent")
    if not any(v.verdict == SUPPORTED for v in verdicts):
        reasons.append("nothing_verified")
    return reasons


def decide(verdicts: list[Verdict], consistent: bool | None, views: int, top_k: int) -> tuple[str, float]:
    """(status, confidence) of a caption from its claim verdicts and the model's consistency verdict."""
    contradicted = [v for v in verdicts if v.verdict == CONTRADICTED]
    supported = sum(v.verdict == SUPPORTED for v in verdicts)
    unverifiable = sum(v.verdict == UNVERIFIABLE for v in verdicts)
    reasons = flag_reasons(verdicts, consistent)
    if "category_contradicted" in reasons or len(contradicted) >= 2:
        status = "rejected"
    elif reasons:
        status = "flagged"
    else:
        status = "accepted"
    total = max(len(verdicts), 1)
    confidence = (supported + 0.5 * unverifiable) / total
    if consistent is False:
        confidence *= 0.7
    confidence *= min(1.0, 0.5 + views / (2 * max(top_k, 1)))
    return status, round(confidence, 3)
