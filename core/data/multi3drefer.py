"""Multi3DRefer (`multi3drefer_{train,val}.json`): a description that refers to zero, one or many objects.

Like ScanRefer, but the targets are `object_ids` (possibly empty) and `eval_type` names the query's group:
zero / single / multiple targets (`zt`, `st`, `mt`), with or without same-class distractors (`w_d`,
`wo_d`). In the release `ann_id` is an integer unique within a scene, so a sample is keyed
`"<scene_id>|<ann_id>"`; duplicates are refused when evaluating. Records keep it as a string; the writer
writes a number-like one as an integer, as the release does. `token`, the attribute flags (spatial, color,
texture, shape) and any other field are optional and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.jsonio import read_json, read_json_list, records, release_id, write_json

EVAL_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")
FIELDS = ("scene_id", "object_name", "ann_id", "description", "object_ids", "eval_type", "token")


def query_key(scene_id: str, ann_id: str | int) -> str:
    """The key of one Multi3DRefer query in prediction files: `"<scene_id>|<ann_id>"`."""
    return f"{scene_id}|{ann_id}"


@dataclass
class Multi3DReferRecord:
    scene_id: str
    object_name: str
    ann_id: str
    description: str
    object_ids: list[int]  # ScanNet objectIds of every target; empty for zero-target queries
    eval_type: str
    token: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return query_key(self.scene_id, self.ann_id)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scene_id": self.scene_id,
            "object_name": self.object_name,
            "ann_id": release_id(self.ann_id),
            "description": self.description,
            "object_ids": list(self.object_ids),
            "eval_type": self.eval_type,
        }
        if self.token is not None:
            out["token"] = list(self.token)
        out.update(self.extra)
        return out


def parse_multi3drefer(path: str | Path, data: list[dict]) -> list[Multi3DReferRecord]:
    out = []
    for f in records(path, read_json_list(path, data)):
        eval_type = f.text("eval_type")
        if eval_type not in EVAL_TYPES:
            raise f.error("eval_type", f"{eval_type!r} is not one of {', '.join(EVAL_TYPES)}")
        object_ids = f.int_list("object_ids")
        if any(i < 0 for i in object_ids):
            raise f.error("object_ids", "object ids must be non-negative")
        zero_target = eval_type.startswith("zt")
        if zero_target != (len(object_ids) == 0):
            raise f.error("object_ids", f"{len(object_ids)} targets contradict eval_type {eval_type!r}")
        out.append(
            Multi3DReferRecord(
                scene_id=f.ident("scene_id"),
                object_name=f.text("object_name"),
                ann_id=f.ident("ann_id"),
                description=f.text("description"),
                object_ids=object_ids,
                eval_type=eval_type,
                token=f.text_list("token", required=False),
                extra=f.extra(FIELDS),
            )
        )
    return out


def read_multi3drefer(path: str | Path) -> list[Multi3DReferRecord]:
    return parse_multi3drefer(path, read_json(path))


def write_multi3drefer(path: str | Path, items: list[Multi3DReferRecord]) -> Path:
    """The release's list of records (the inverse of `read_multi3drefer`)."""
    return write_json(path, [r.to_json() for r in items])
