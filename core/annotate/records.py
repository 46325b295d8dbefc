"""The scene document as DenseScan records: what `<out>/densescan.json` holds (see the README).

One record per captioned object (level "object", status and confidence from verification), per frame
description ("frame", the object it centres on as object_id, the frame in `frame_id`), the narrative
("scene", object_id "-1") and each scenario question ("scenario", the first answer object as object_id).
Only object captions are fact-checked; the other levels carry status "accepted" and confidence 0.5.

An object record also says why verification decided as it did, so that the review store can show it and
filter by it without the scene document: `flag_reasons` (codes of `verify.FLAG_REASONS`, empty when
nothing was wrong), `consistency_answer` (the model's verdict on the views, as it answered),
`fusion_conflicts` (where the views disagreed) and `claims` (each claim with its verdict). Records
written before these fields existed simply lack them; readers say "no reason recorded".
"""

from __future__ import annotations

import re
from typing import Any

from core.annotate.verify import Verdict, flag_reasons

UNCHECKED_CONFIDENCE = 0.5
WHY_FIELDS = ("flag_reasons", "consistency_answer", "fusion_conflicts", "claims")  # object records only


def tokens(text: str) -> list[str]:
    """ScanRefer-style tokens: lower-case words and punctuation marks."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", text.lower())


def _record(
    scene_id: str,
    object_id: int | str,
    name: str,
    ann_id: int | str,
    text: str,
    level: str,
    status: str,
    confidence: float,
    source: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "scene_id": scene_id,
        "object_id": str(object_id),
        "object_name": name.replace(" ", "_"),
        "ann_id": str(ann_id),
        "description": text,
        "token": tokens(text),
        "level": level,
        "status": status,
        "confidence": confidence,
        "source": source,
        **extra,
    }


def why_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The reasons behind an object caption's verification status, from its scene-document entry."""
    check = obj.get("verification") or {}
    claims = [dict(c) for c in check.get("claims") or []]
    verdicts = [
        Verdict(str(c.get("kind")), str(c.get("text")), str(c.get("value")), str(c.get("verdict")), [])
        for c in claims
    ]
    return {
        "flag_reasons": flag_reasons(verdicts, check.get("consistent")),
        "consistency_answer": str(check.get("consistency_answer") or ""),
        "fusion_conflicts": list((obj.get("fusion") or {}).get("conflicts") or []),
        "claims": claims,
    }


def scene_records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    scene_id, source = doc["scene_id"], f"densescan-pipeline/{doc['captioner']}"
    labels = {o["object_id"]: o["label"] for o in doc["objects"]}
    out = []
    for obj in doc["objects"]:
        if obj.get("caption"):
            check = obj["verification"]
            out.append(
                _record(
                    scene_id,
                    obj["object_id"],
                    obj["label"],
                    0,
                    obj["caption"],
                    "object",
                    check["status"],
                    check["confidence"],
                    source,
                    **why_fields(obj),
                    views=len(obj.get("views") or []),  # distinct views the caption rests on (views.py)
                    views_requested=int(obj.get("views_requested") or len(obj.get("views") or [])),
                )
            )
    for frame in doc["frames"]:
        out.append(
            _record(
                scene_id,
                frame["object_id"],
                labels.get(frame["object_id"], "object"),
                0,
                frame["description"],
                "frame",
                "accepted",
                UNCHECKED_CONFIDENCE,
                source,
                frame_id=frame["frame_id"],
            )
        )
    narrative = doc["narrative"]
    out.append(
        _record(
            scene_id, -1, "scene", 0, narrative["text"], "scene", "accepted", UNCHECKED_CONFIDENCE, source
        )
    )
    for i, item in enumerate(doc["scenarios"]):
        first = item["answer_object_ids"][0]
        out.append(
            _record(
                scene_id,
                first,
                labels.get(first, "object"),
                i,
                item["question"],
                "scenario",
                "accepted",
                UNCHECKED_CONFIDENCE,
                source,
                question=item["question"],
                answer=item["answer"],
                answer_object_ids=item["answer_object_ids"],
            )
        )
    return out
