"""Why the pipeline flagged or rejected an item: what a reviewer reads beside it and the queue filters by.

The pipeline's object records carry `flag_reasons` (codes of `core.annotate.verify.FLAG_REASONS`),
`consistency_answer` (the model's verdict on the views), `fusion_conflicts` (where the views disagreed)
and `claims` (each with its verdict); the store keeps them in the item's `extra`. Records written
before these fields existed lack them: such an item's reason is "no reason recorded", and the queue
filter `NO_REASON` finds the flagged or rejected items of that kind. Malformed fields (refused at
import since the record is typed; a store filled earlier may hold them) count as missing.
The evidence (answer, conflicts, claims) of such an item can still come from the pipeline's scene
document (`annotation.json`, read as `core.annotate.document.SceneAnnotation`) when the caller has it;
its reasons are never guessed from it, so what the panel calls unrecorded is exactly what the filter
finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.annotate.document import ObjectEntry
from core.annotate.verify import CONTRADICTED, FLAG_REASONS, UNVERIFIABLE
from review.views import ItemView

NO_REASON = "unrecorded"  # filter value: flagged or rejected, but the record does not say why
NO_REASON_TEXT = "no reason recorded"
MODEL_FAILURE = "model_failure"  # items sent from the app's failure analysis (review/failures.py)
# every reason an item can carry: the pipeline's, then failure analysis's
REVIEW_REASONS: dict[str, str] = {
    **FLAG_REASONS,
    MODEL_FAILURE: "a model failed on it (sent from failure analysis)",
}
CHECKED_LEVEL = "object"  # only object captions are fact-checked by the pipeline


def reason_label(code: str) -> str:
    """What a reason code means, in words (an unknown `<kind>_contradicted` code still reads well)."""
    if code == NO_REASON:
        return NO_REASON_TEXT
    if code in REVIEW_REASONS:
        return REVIEW_REASONS[code]
    if code.endswith("_contradicted"):
        return f"a {code.removesuffix('_contradicted').replace('_', ' ')} claim is contradicted"
    return code.replace("_", " ")


def reason_choices() -> list[tuple[str, str]]:
    """(label, code) pairs for a reason filter: every known reason, then "no reason recorded"."""
    return [(label, code) for code, label in REVIEW_REASONS.items()] + [(NO_REASON_TEXT, NO_REASON)]


@dataclass(frozen=True)
class Why:
    """The pipeline's account of an item's status."""

    pipeline_status: str  # accepted | flagged | rejected
    checked: bool  # the level is fact-checked at all (object captions)
    recorded: bool  # the record says why (False: written before reasons were recorded)
    reasons: tuple[str, ...]  # FLAG_REASONS codes
    consistency_answer: str
    conflicts: tuple[str, ...]  # fusion conflicts, in words
    contradicted: tuple[str, ...]  # the caption's words of each contradicted claim
    unverifiable: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return self.pipeline_status != "accepted"

    @property
    def reason_labels(self) -> list[str]:
        return [reason_label(r) for r in self.reasons] if self.recorded else [NO_REASON_TEXT]


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _claim_texts(claims: Any, verdict: str) -> tuple[str, ...]:
    if not isinstance(claims, list):
        return ()
    return tuple(
        str(c.get("text") or c.get("value") or "")
        for c in claims
        if isinstance(c, dict) and c.get("verdict") == verdict
    )


def why_of(item: ItemView, document_entry: ObjectEntry | None = None) -> Why:
    """The item's reasons and evidence as recorded at import; `document_entry` (the object's entry of the
    scene document, `core.annotate.document.ObjectEntry`) fills in the evidence an older record lacks (see
    the module docstring)."""
    extra = item.extra or {}
    reasons = _strings(extra.get("flag_reasons"))
    check = document_entry.verification if document_entry is not None else None
    fusion = document_entry.fusion if document_entry is not None else None
    answer = extra.get("consistency_answer", check.consistency_answer if check else None)
    claims = extra.get("claims", check.claims if check else None)
    conflicts = extra.get("fusion_conflicts", fusion.conflicts if fusion else None)
    return Why(
        pipeline_status=item.pipeline_status,
        checked=item.key.level == CHECKED_LEVEL,
        recorded=reasons is not None,
        reasons=reasons or (),
        consistency_answer=answer.strip() if isinstance(answer, str) else "",
        conflicts=_strings(conflicts) or (),
        contradicted=_claim_texts(claims, CONTRADICTED),
        unverifiable=_claim_texts(claims, UNVERIFIABLE),
    )
