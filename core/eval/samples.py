"""Any report of `python -m core eval` as one per-sample table, for failure analysis.

`load_report(path, scans)` reads the JSON report of any task (refseg, scanrefer, multi3drefer, scanqa,
sqa3d, scan2cap, densescan) into a `SampleTable`: `frame` holds one row per sample with the columns of
`COLUMNS` (the sample's key, scene, target objects, class, group, text, word count, and the target's
size, visibility and same-class distractors), `scores` one column per per-sample score of the report
(scan2cap's nested scores flattened to "m@0.5IoU CIDEr"), on the same index.

The report carries what the runner knew (key, text, prediction, scores, unique / multiple); the
scene facts come from the scans (`core.eval.object_facts`): the folder the report names in
`inputs.scans`, else the one given. Without scans those columns are NaN and `notes` says why.
A path a report names (prediction file, scans) is used as written, else looked up beside the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.errors import DataError
from core.data.jsonio import read_json
from core.eval.cli import TASKS
from core.eval.object_facts import ObjectFacts, ObjectFactsCache
from core.scene.errors import SceneError
from core.scene.labels import normalize_label

# the score a table is sorted by first, per task (any score of the report can be chosen instead)
DEFAULT_METRIC = {
    "refseg": "IoU",
    "scanrefer": "IoU",
    "multi3drefer": "F1@0.5",
    "scanqa": "EM@1 clean",
    "sqa3d": "EM",
    "scan2cap": "m@0.5IoU CIDEr",
    "densescan": "CIDEr",
}
BOX_TASKS = ("scanrefer", "multi3drefer")
QA_TASKS = ("scanqa", "sqa3d")
# what the `group` column holds, per task
GROUP_NAME = {
    "refseg": "unique / multiple",
    "scanrefer": "unique / multiple",
    "multi3drefer": "eval type",
    "sqa3d": "question type",
    "densescan": "level",
}
COLUMNS = (
    "key", "scene", "objects", "class", "group", "text", "words", "size", "visible", "best_view",
    "distractors", "missing", "prediction",
)  # fmt: skip


@dataclass
class SampleTable:
    task: str
    path: Path
    inputs: dict[str, str]
    frame: pd.DataFrame  # one row per sample, COLUMNS
    scores: pd.DataFrame  # one column per score name, same index
    samples: list[dict[str, Any]]  # the report's own sample dicts, same order
    scans: Path | None  # where the scene facts came from
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(self.scores.columns)

    @property
    def default_metric(self) -> str:
        wanted = DEFAULT_METRIC[self.task]
        return wanted if wanted in self.scores.columns else (self.metrics[0] if self.metrics else "")

    @property
    def group_name(self) -> str:
        return GROUP_NAME.get(self.task, "group")

    def position(self, key: str) -> int:
        """The row of a sample key; a `DataError` when the report has no such sample."""
        hits = np.flatnonzero(self.frame["key"].to_numpy() == key)
        if not len(hits):
            raise DataError(self.path, "no such sample in this report", index=key)
        return int(hits[0])

    def sample(self, key: str) -> dict[str, Any]:
        return self.samples[self.position(key)]


def resolve_input(report: Path, value: str | None) -> Path | None:
    """A path the report names: as written (absolute, or from where eval ran), else beside the report."""
    if not value:
        return None
    path = Path(value)
    if path.exists():
        return path
    beside = report.parent / path.name
    return beside if beside.exists() else None


def flat_scores(scores: Any) -> dict[str, float]:
    """{name: value}; a nested group ({"m@0.5IoU": {"CIDEr": ...}}) becomes "m@0.5IoU CIDEr"."""
    out: dict[str, float] = {}
    for name, value in (scores or {}).items():
        if isinstance(value, dict):
            out.update({f"{name} {inner}": float(v) for inner, v in value.items()})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def target_objects(task: str, sample: dict[str, Any]) -> list[int]:
    """The integer ids of a sample's target objects (empty: none, a scene or a zero-target query)."""
    if task in ("multi3drefer", "scanqa"):
        raw = sample.get("object_ids") or []
    elif task == "sqa3d":
        raw = []
    else:
        raw = [sample.get("object_id")]
    out = []
    for value in raw:
        text = str(value)
        if text.isdigit():
            out.append(int(text))
    return out


def sample_text(task: str, sample: dict[str, Any]) -> str:
    """What the sample asks or describes: the description, the question, or the first reference."""
    if task in QA_TASKS or sample.get("level") == "scenario":
        situation = sample.get("situation")
        question = str(sample.get("question") or "")
        return f"{situation} {question}" if situation else question
    if "description" in sample:
        return str(sample["description"])
    references = sample.get("references") or []
    return str(references[0]) if references else ""


def prediction_text(task: str, sample: dict[str, Any]) -> str:
    """The model's output in a few words."""
    if sample.get("missing"):
        return "(no prediction)"
    if task == "refseg":
        return f"{sample.get('predicted_vertices', 0)} vertices"
    if task == "scanrefer":
        return "box " + " ".join(f"{v:.2f}" for v in sample.get("prediction") or [])
    if task == "multi3drefer":
        return f"{len(sample.get('prediction') or [])} boxes"
    if task == "scan2cap":
        return str(sample.get("caption") or "")
    return str(sample.get("prediction") or "")


def _group(task: str, sample: dict[str, Any]) -> str:
    for name in ("split", "eval_type", "question_type", "level"):
        if sample.get(name):
            return str(sample[name])
    return ""


def _row(task: str, sample: dict[str, Any], facts: ObjectFacts | None) -> dict[str, Any]:
    text = sample_text(task, sample)
    name = sample.get("object_name")
    return {
        "key": str(sample.get("key", "")),
        "scene": str(sample.get("scene_id", "")),
        "objects": " ".join(str(o) for o in target_objects(task, sample)),
        "class": normalize_label(str(name)) if name else (facts.category if facts else ""),
        "group": _group(task, sample),
        "text": text,
        "words": len(text.split()),
        "size": facts.size if facts else math.nan,
        "visible": facts.visible if facts else math.nan,
        "best_view": facts.best_view if facts else math.nan,
        "distractors": facts.distractors if facts else math.nan,
        "missing": bool(sample.get("missing", False)),
        "prediction": prediction_text(task, sample),
    }


def read_report(path: str | Path) -> dict[str, Any]:
    """The report's JSON, checked to be an eval report of a known task (a `DataError` otherwise)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise DataError(path, "not a report of `python -m core eval` (no `samples` list)")
    if data.get("task") not in TASKS:
        raise DataError(path, f"unknown task {data.get('task')!r} (one of {', '.join(TASKS)})", field="task")
    for i, sample in enumerate(data["samples"]):
        if not isinstance(sample, dict) or "key" not in sample:
            raise DataError(path, "a sample must be an object with a `key`", index=i, field="samples")
    return data


def load_report(
    path: str | Path, scans: str | Path | None = None, facts: ObjectFactsCache | None = None
) -> SampleTable:
    """The report at `path` as a `SampleTable` (scene facts from its scans, else `scans`, else none)."""
    path = Path(path)
    data = read_report(path)
    task, samples = data["task"], data["samples"]
    inputs = {str(k): str(v) for k, v in (data.get("inputs") or {}).items()}
    notes: list[str] = []
    root = resolve_input(path, inputs.get("scans")) or (Path(scans) if scans else None)
    if facts is None or (root is not None and facts.root != root):
        facts = ObjectFactsCache(root) if root is not None else None
    rows = []
    failed: set[str] = set()
    for sample in samples:
        found = None
        objects = target_objects(task, sample)
        scene_id = str(sample.get("scene_id", ""))
        if facts is not None and objects and scene_id not in failed:
            try:
                found = facts.object(scene_id, objects[0])
            except (SceneError, OSError) as exc:  # a scene or frame that cannot be read: facts unknown
                failed.add(scene_id)
                notes.append(f"scene facts of {scene_id} unavailable: {exc}")
        rows.append(_row(task, sample, found))
    if facts is None:
        notes.append("no scans folder: size, visibility and distractors are unknown")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    score_rows = []
    for sample in samples:
        scores = flat_scores(sample.get("scores"))
        if task == "scanrefer" and "iou" in sample:  # the box IoU the Acc@k scores threshold
            scores = {"IoU": float(sample["iou"]), **scores}
        score_rows.append(scores)
    scores = pd.DataFrame(score_rows, index=frame.index, dtype=float)
    return SampleTable(task, path, inputs, frame, scores, samples, root, notes)
