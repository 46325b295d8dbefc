"""ScanRefer (`ScanRefer_filtered_{train,val}.json`): one record per description of one object.

`ann_id` counts descriptions per object, so it repeats within a scene: a sample is keyed by
(scene_id, object_id, ann_id), written `"<scene_id>|<object_id>|<ann_id>"` (`sample_key`). Records of
formats built on ScanRefer (DenseScan) read here unchanged; fields ScanRefer does not define are kept in
`extra` and written back.

The unique / multiple split is ScanRefer's own rule (its `lib/dataset.py`): among the distinct objects
that the evaluated file describes in the scene, the target is "unique" when no other one has its ScanRefer
class (17 NYU40 classes plus "others", `LabelMap.scanrefer_class`, from `object_name` with underscores as
spaces). The lookup file many repos ship (`{scene_id: {object_id: 0 unique | 1 multiple}}`) reads too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.errors import DataError
from core.data.jsonio import read_json, read_json_list, records, write_json

if TYPE_CHECKING:
    from core.scene.labels import LabelMap

FIELDS = ("scene_id", "object_id", "object_name", "ann_id", "description", "token")
UNIQUE, MULTIPLE = "unique", "multiple"


def sample_key(scene_id: str, object_id: str | int, ann_id: str | int) -> str:
    """The key of one referring sample in prediction files: `"<scene_id>|<object_id>|<ann_id>"`."""
    return f"{scene_id}|{object_id}|{ann_id}"


@dataclass
class ScanReferRecord:
    scene_id: str
    object_id: (
        str  # ScanNet objectId (0-based), a string as in the release (DenseScan scene records may differ)
    )
    object_name: str  # raw label, spaces written as underscores
    ann_id: str
    description: str
    token: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return sample_key(self.scene_id, self.object_id, self.ann_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "scene_id": self.scene_id,
            "object_id": self.object_id,
            "object_name": self.object_name,
            "ann_id": self.ann_id,
            "description": self.description,
            "token": list(self.token),
            **self.extra,
        }


def scanrefer_fields(f) -> dict[str, Any]:
    """The six ScanRefer fields of one record, validated (shared by the formats that extend ScanRefer)."""
    return {
        "scene_id": f.ident("scene_id"),
        "object_id": f.ident("object_id"),
        "object_name": f.text("object_name"),
        "ann_id": f.ident("ann_id"),
        "description": f.text("description"),
        "token": f.text_list("token"),
    }


def parse_scanrefer(path: str | Path, data: list[dict]) -> list[ScanReferRecord]:
    """Validate parsed ScanRefer-format records."""
    return [
        ScanReferRecord(**scanrefer_fields(f), extra=f.extra(FIELDS))
        for f in records(path, read_json_list(path, data))
    ]


def read_scanrefer(path: str | Path) -> list[ScanReferRecord]:
    return parse_scanrefer(path, read_json(path))


def write_scanrefer(path: str | Path, items: list[ScanReferRecord]) -> Path:
    return write_json(path, [r.to_json() for r in items])


def unique_multiple(items: list[ScanReferRecord], label_map: LabelMap) -> dict[str, str]:
    """ScanRefer's split of each sample key into "unique" / "multiple" (see the module docstring)."""
    classes: dict[str, dict[str, str]] = {}
    for r in items:
        name = r.object_name.replace("_", " ")
        classes.setdefault(r.scene_id, {}).setdefault(r.object_id, label_map.scanrefer_class(name))
    out = {}
    for r in items:
        per_scene = classes[r.scene_id]
        count = sum(cls == per_scene[r.object_id] for cls in per_scene.values())
        out[r.key] = UNIQUE if count == 1 else MULTIPLE
    return out


def read_unique_multiple_lookup(path: str | Path) -> dict[tuple[str, str], str]:
    """`{scene_id: {object_id: 0 | 1}}` (0 = unique) as {(scene_id, object_id): "unique" | "multiple"}."""
    return parse_unique_multiple_lookup(path, read_json(path))


def write_unique_multiple_lookup(
    path: str | Path, lookup: dict[tuple[str, str], str], scenes: list[str] | None = None
) -> Path:
    """The lookup file from {(scene_id, object_id): "unique" | "multiple"}, in the given order (the inverse
    of `read_unique_multiple_lookup`); `scenes` come first, written even when none of their objects is."""
    nested: dict[str, dict[str, int]] = {scene_id: {} for scene_id in scenes or ()}
    for (scene_id, object_id), kind in lookup.items():
        if kind not in (UNIQUE, MULTIPLE):
            where = f"{scene_id}|{object_id}"
            raise DataError(path, f"expected {UNIQUE!r} or {MULTIPLE!r}, found {kind!r}", index=where)
        nested.setdefault(scene_id, {})[str(object_id)] = 0 if kind == UNIQUE else 1
    return write_json(path, nested)


def parse_unique_multiple_lookup(path: str | Path, data: Any) -> dict[tuple[str, str], str]:
    """Validate a parsed lookup file (see `read_unique_multiple_lookup`)."""
    if not isinstance(data, dict):
        raise DataError(path, "expected an object {scene_id: {object_id: 0 | 1}}")
    out = {}
    for scene_id, per_scene in data.items():
        if not isinstance(per_scene, dict):
            raise DataError(path, "expected an object {object_id: 0 | 1}", index=scene_id)
        for object_id, flag in per_scene.items():
            if flag not in (0, 1) or isinstance(flag, bool):
                raise DataError(path, f"expected 0 or 1, found {flag!r}", index=f"{scene_id}|{object_id}")
            out[(scene_id, str(object_id))] = UNIQUE if flag == 0 else MULTIPLE
    return out
