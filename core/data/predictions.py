"""Prediction files of each task: what a model writes and `python -m core eval` reads.

Formats (documented in the README; boxes are `[cx, cy, cz, dx, dy, dz]` in the axis-aligned frame):

- QA (`scanqa`, `sqa3d`): a JSON list of `{"question_id": ..., "answer_top10": [...]}` (ScanQA's
  benchmark submission shape; the first answer is the top-1) or `{"question_id": ..., "answer": "..."}`.
- `scanrefer`: `{"<scene_id>|<object_id>|<ann_id>": box}`.
- `multi3drefer`: `{"<scene_id>|<ann_id>": [box, ...]}` (an empty list predicts "no target").
- `refseg`: `{"<scene_id>|<object_id>|<ann_id>": [vertex indices]}`, or an `.npz` holding one boolean
  vertex mask (or an integer index array) per key.
- `scan2cap`: a JSON list of proposals `{"scene_id": ..., "box": box, "caption": "..."}`; each described
  object takes the caption of its best-overlapping proposal.
- `densescan`: `{"<level>|<scene_id>|<object_id>": "caption"}` for the object / frame / scene levels, and
  `{"scenario|<scene_id>|<object_id>|<ann_id>": "answer"}` for scenario questions.

A key given twice is an error (JSON parsers silently keep the last one); so is a malformed value, named
by file and key.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write
from core.data.errors import DataError
from core.data.jsonio import read_json, read_json_list, records, write_json


def read_json_strict(path: str | Path) -> Any:
    """Parse JSON, refusing an object that gives one key twice."""
    return read_json(path, strict_keys=True)


def _read_object(path: str | Path) -> dict[str, Any]:
    data = read_json_strict(path)
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object keyed by sample, found {type(data).__name__}")
    return data


def as_box(path: str | Path, key: str | int, value: Any) -> np.ndarray:
    """A `[cx, cy, cz, dx, dy, dz]` box with finite numbers and non-negative sizes."""
    ok = isinstance(value, list | tuple) and len(value) == 6
    ok = ok and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise DataError(
            path, f"expected a box [cx, cy, cz, dx, dy, dz] of 6 finite numbers, found {value!r}", key
        )
    box = np.asarray(value, dtype=np.float64)
    if (box[3:] < 0).any():
        raise DataError(path, f"box sizes must be non-negative, found {value!r}", key)
    return box


# ------------------------------------------------------------------------------------------------ QA


def read_answers(path: str | Path) -> dict[str, list[str]]:
    """QA predictions: question id -> ranked answers (one for `"answer"`, none for an empty top-10)."""
    data = read_json_list(path, read_json_strict(path))
    out: dict[str, list[str]] = {}
    for f in records(path, data):
        qid = f.ident("question_id")
        if qid in out:
            raise f.error("question_id", f"question {qid} is predicted more than once")
        if "answer_top10" in f.record:
            out[qid] = f.text_list("answer_top10")
        elif "answer" in f.record:
            out[qid] = [f.text("answer")]
        else:
            raise f.error("answer_top10", "missing (give 'answer_top10': [...] or 'answer': '...')")
    return out


def write_answers(path: str | Path, answers: dict[str, list[str]], top10: bool = True) -> Path:
    """Write QA predictions (`answer_top10` lists, or a single `answer` each)."""
    if top10:
        rows = [{"question_id": qid, "answer_top10": list(a[:10])} for qid, a in answers.items()]
    else:
        rows = [{"question_id": qid, "answer": a[0] if a else ""} for qid, a in answers.items()]
    return write_json(path, rows)


# ------------------------------------------------------------------------------------------- grounding


def read_boxes(path: str | Path) -> dict[str, np.ndarray]:
    """ScanRefer predictions: sample key -> one box."""
    return {key: as_box(path, key, value) for key, value in _read_object(path).items()}


def write_boxes(path: str | Path, boxes: dict[str, np.ndarray]) -> Path:
    return write_json(path, {k: [float(v) for v in b] for k, b in boxes.items()})


def read_box_sets(path: str | Path) -> dict[str, np.ndarray]:
    """Multi3DRefer predictions: query key -> (K, 6) boxes, K >= 0."""
    out = {}
    for key, value in _read_object(path).items():
        if not isinstance(value, list):
            raise DataError(path, f"expected a list of boxes, found {type(value).__name__}", key)
        out[key] = np.array([as_box(path, key, b) for b in value], dtype=np.float64).reshape(-1, 6)
    return out


def write_box_sets(path: str | Path, boxes: dict[str, np.ndarray]) -> Path:
    return write_json(
        path, {k: [[float(v) for v in b] for b in np.reshape(s, (-1, 6))] for k, s in boxes.items()}
    )


# ---------------------------------------------------------------------------------------- segmentation


def _as_indices(path: Path, key: str, value: Any, allow_mask: bool) -> np.ndarray:
    """Sorted unique vertex indices from an index list, or from a boolean mask when allowed."""
    array = np.asarray(value)
    if array.dtype == bool and allow_mask:
        if array.ndim != 1:
            raise DataError(path, f"a vertex mask must be 1-D, found shape {array.shape}", key)
        return np.flatnonzero(array)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        what = (
            "a list of vertex indices or a boolean mask" if allow_mask else "a list of integer vertex indices"
        )
        raise DataError(path, f"expected {what}", key)
    if (array < 0).any():
        raise DataError(path, f"negative vertex index {int(array.min())}", key)
    ordered = np.sort(array.astype(np.int64))
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]  # unique; faster than np.unique


@dataclass
class VertexPrediction:
    """Predicted vertices of one sample: sorted unique indices; `mask_size` when given as a mask."""

    indices: np.ndarray
    mask_size: int | None = None


def read_vertex_sets(path: str | Path) -> dict[str, VertexPrediction]:
    """Referring-segmentation predictions: sample key -> predicted vertices (JSON or .npz)."""
    path = Path(path)
    if path.suffix != ".npz":
        return {
            key: VertexPrediction(_as_indices(path, key, value, allow_mask=False))
            for key, value in _read_object(path).items()
        }
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for key in npz.files:
                array = npz[key]
                size = array.size if array.dtype == bool else None
                out[key] = VertexPrediction(_as_indices(path, key, array, allow_mask=True), size)
            return out
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"cannot read the .npz ({exc})") from None


def write_vertex_sets(path: str | Path, vertices: dict[str, np.ndarray]) -> Path:
    """Write index lists as JSON, or (for a `.npz` path) the arrays as given: masks or indices."""
    path = Path(path)
    if path.suffix == ".npz":
        return atomic_write(
            path, lambda f: np.savez_compressed(f, **{k: np.asarray(v) for k, v in vertices.items()})
        )
    return write_json(path, {k: [int(i) for i in np.asarray(v).reshape(-1)] for k, v in vertices.items()})


# ------------------------------------------------------------------------------------------- captioning


@dataclass
class CaptionProposal:
    """A predicted box and its caption (Scan2Cap dense captioning)."""

    scene_id: str
    box: np.ndarray
    caption: str


def read_proposals(path: str | Path) -> list[CaptionProposal]:
    data = read_json_list(path, read_json_strict(path))
    out = []
    for f in records(path, data):
        out.append(
            CaptionProposal(
                f.ident("scene_id"), as_box(path, f.index, f.record.get("box")), f.text("caption")
            )
        )
    return out


def write_proposals(path: str | Path, proposals: list[CaptionProposal]) -> Path:
    rows = [
        {"scene_id": p.scene_id, "box": [float(v) for v in p.box], "caption": p.caption} for p in proposals
    ]
    return write_json(path, rows)


def read_texts(path: str | Path) -> dict[str, str]:
    """Key -> text (DenseScan captions and scenario answers)."""
    out = {}
    for key, value in _read_object(path).items():
        if not isinstance(value, str):
            raise DataError(path, f"expected a string, found {type(value).__name__}", key)
        out[key] = value
    return out


def write_texts(path: str | Path, texts: dict[str, str]) -> Path:
    return write_json(path, dict(texts))
