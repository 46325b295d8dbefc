"""Stage 4: consistency verification. (a) the language model's verdict on the per-view descriptions;
(b) a geometric fact check of the fused caption against the 3D scene, then a status and a confidence.

Each claim of the caption (`claims.py`) is marked supported, contradicted or unverifiable:

- category: the caption names the object by its label (or head noun); naming another class contradicts.
- color: the word's share of the object's pixel color votes (pooled over views): the dominant word or at
  least `COLOR_SUPPORT` supports, below `COLOR_CONTRADICT` contradicts.
- size: "small" / "large" against the size class of the box (`facts.size_class`); the other extreme
  contradicts.
- relation: `core.scene.relations.check_relation` against every object the anchor name could mean:
  any True supports, all False contradicts. View-dependent relations (left of ...) in a fused caption
  have no viewpoint and stay unverifiable.

Status: rejected when the category is contradicted or two claims are; flagged when one claim is, when
the model found the views inconsistent, or when nothing could be verified; accepted otherwise. The
confidence (0..1) orders the review queue: verified share, lowered by disagreement and few views.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

from core.annotate.claims import Claim, extract_claims
from core.annotate.facts import ColorEvidence, size_class
from core.scene.objects import ObjectInfo
from core.scene.relations import called, check_relation

SUPPORTED, CONTRADICTED, UNVERIFIABLE = "supported", "contradicted", "unverifiable"
COLOR_SUPPORT = 0.2
COLOR_CONTRADICT = 0.05


@dataclass
class Verdict:
    kind: str
    text: str
    value: str
    verdict: str
    anchors: list[str]

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
    if any(r is True for r in results):
        return SUPPORTED
    if results and all(r is False for r in results):
        return CONTRADICTED
    return UNVERIFIABLE


def check_claim(
    claim: Claim, subject: ObjectInfo, objects: list[ObjectInfo], colors: ColorEvidence | None
) -> str:
    if claim.kind == "category":
        return SUPPORTED if called(subject.label, claim.value) else CONTRADICTED
    if claim.kind == "color":
        if colors is None or not colors.votes:
            return UNVERIFIABLE
        share = colors.share(claim.value)
        if claim.value == colors.dominant or share >= COLOR_SUPPORT:
            return SUPPORTED
        return CONTRADICTED if share < COLOR_CONTRADICT else UNVERIFIABLE
    if claim.kind == "size":
        measured = size_class(subject)
        if measured is None:
            return UNVERIFIABLE
        return SUPPORTED if measured == claim.value else CONTRADICTED
    # relations
    others = [o for o in objects if o is not subject]
    candidates = [[o for o in others if called(o.label, name)] for name in claim.anchors]
    if claim.anchors and not all(candidates):
        return UNVERIFIABLE  # names something that is not in the scene
    results = [
        check_relation(claim.value, subject, list(anchors), scene=objects)
        for anchors in (product(*candidates) if candidates else [()])
        if len({a.object_id for a in anchors}) == len(anchors)
    ]
    return _three_valued(results)


def fact_check(
    caption: str, subject: ObjectInfo, objects: list[ObjectInfo], colors: ColorEvidence | None
) -> list[Verdict]:
    labels = [o.label for o in objects]
    return [
        Verdict(c.kind, c.text, c.value, check_claim(c, subject, objects, colors), c.anchors)
        for c in extract_claims(caption, subject.label, labels)
    ]


def decide(verdicts: list[Verdict], consistent: bool | None, views: int, top_k: int) -> tuple[str, float]:
    """(status, confidence) of a caption from its claim verdicts and the model's consistency verdict."""
    contradicted = [v for v in verdicts if v.verdict == CONTRADICTED]
    supported = sum(v.verdict == SUPPORTED for v in verdicts)
    unverifiable = sum(v.verdict == UNVERIFIABLE for v in verdicts)
    category_wrong = any(v.kind == "category" for v in contradicted)
    if category_wrong or len(contradicted) >= 2:
        status = "rejected"
    elif contradicted or consistent is False or supported == 0:
        status = "flagged"
    else:
        status = "accepted"
    total = max(len(verdicts), 1)
    confidence = (supported + 0.5 * unverifiable) / total
    if consistent is False:
        confidence *= 0.7
    confidence *= min(1.0, 0.5 + views / (2 * max(top_k, 1)))
    return status, round(confidence, 3)
