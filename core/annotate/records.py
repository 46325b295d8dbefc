"""The scene document as DenseScan records: what `<out>/densescan.json` holds (see the README).

One `core.data.densescan.DenseScanRecord` per captioned object (level "object", status and confidence
from verification), per frame description ("frame", the object it centres on as object_id, the frame in
`frame_id`), the narrative ("scene", object_id "-1") and each scenario question ("scenario", the first
answer object as object_id). Only object captions are fact-checked; the other levels carry status
"accepted" and confidence 0.5. Tokens are `core.text.scanrefer_tokens`, the one tokenizer, so a reviewer's
edit of the same text exports the same tokens.

An object record also says why verification decided as it did, so that the review store can show it and
filter by it without the scene document: `flag_reasons` (codes of `verify.FLAG_REASONS`, empty when
nothing was wrong), `consistency_answer` (the model's verdict on the views, as it answered),
`fusion_conflicts` (where the views disagreed) and `claims` (each claim with its verdict). Records
written before these fields existed simply lack them; readers say "no reason recorded".
"""

from __future__ import annotations

from typing import Any

from core.annotate.document import ObjectEntry, SceneAnnotation
from core.annotate.verify import Verdict, flag_reasons
from core.data.densescan import DenseScanRecord
from core.text import scanrefer_tokens

UNCHECKED_CONFIDENCE = 0.5
WHY_FIELDS = ("flag_reasons", "consistency_answer", "fusion_conflicts", "claims")  # object records only


def why_fields(obj: ObjectEntry) -> dict[str, Any]:
    """The reasons behind an object caption's verification status, from its scene-document entry."""
    check = obj.verification
    claims = [dict(c) for c in check.claims] if check else []
    verdicts = [
        Verdict(str(c.get("kind")), str(c.get("text")), str(c.get("value")), str(c.get("verdict")), [])
        for c in claims
    ]
    return {
        "flag_reasons": flag_reasons(verdicts, check.consistent if check else None),
        "consistency_answer": check.consistency_answer if check else "",
        "fusion_conflicts": list(obj.fusion.conflicts) if obj.fusion else [],
        "claims": claims,
    }


def scene_records(doc: SceneAnnotation) -> list[DenseScanRecord]:
    source = f"densescan-pipeline/{doc.captioner}"
    labels = doc.labels()

    def record(object_id: int, ann_id: int, text: str, level: str, **more: Any) -> DenseScanRecord:
        name = "scene" if level == "scene" else labels.get(object_id, "object")
        unchecked = {"status": "accepted", "confidence": UNCHECKED_CONFIDENCE}
        return DenseScanRecord(
            scene_id=doc.scene_id,
            object_id=str(object_id),
            object_name=name.replace(" ", "_"),
            ann_id=str(ann_id),
            description=text,
            token=scanrefer_tokens(text),
            level=level,  # type: ignore[arg-type]
            source=source,
            **(unchecked | more),
        )

    out = []
    for obj in doc.objects:
        if obj.caption and obj.verification:
            check, views = obj.verification, len(obj.views)  # distinct views the caption rests on
            evidence = why_fields(obj) | {"views": views, "views_requested": obj.views_requested or views}
            out.append(
                record(
                    obj.object_id,
                    0,
                    obj.caption,
                    "object",
                    status=check.status,
                    confidence=check.confidence,
                    **evidence,
                )
            )
    for frame in doc.frames:
        out.append(record(frame.object_id, 0, frame.description, "frame", frame_id=frame.frame_id))
    out.append(record(-1, 0, doc.narrative.text, "scene"))
    for i, item in enumerate(doc.scenarios):
        qa = {
            "question": item.question,
            "answer": item.answer,
            "answer_object_ids": list(item.answer_object_ids),
        }
        out.append(record(item.answer_object_ids[0], i, item.question, "scenario", **qa))
    return out
