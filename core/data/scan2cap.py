"""Scan2Cap targets: every object that ScanRefer describes, with its descriptions as caption references.

Scan2Cap evaluates dense captioning on the ScanRefer split: each described object is one sample, keyed
`"<scene_id>|<object_id>"`, and all of its ScanRefer descriptions are the references.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.data.scanrefer import ScanReferRecord


def object_key(scene_id: str, object_id: str | int) -> str:
    """The key of one described object: `"<scene_id>|<object_id>"`."""
    return f"{scene_id}|{object_id}"


@dataclass
class CaptionTarget:
    scene_id: str
    object_id: str
    object_name: str
    references: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return object_key(self.scene_id, self.object_id)


def caption_targets(items: list[ScanReferRecord]) -> list[CaptionTarget]:
    """One target per (scene_id, object_id), in first-appearance order, with every description."""
    targets: dict[str, CaptionTarget] = {}
    for r in items:
        key = object_key(r.scene_id, r.object_id)
        if key not in targets:
            targets[key] = CaptionTarget(r.scene_id, r.object_id, r.object_name)
        targets[key].references.append(r.description)
    return list(targets.values())
