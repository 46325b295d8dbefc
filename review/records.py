"""The DenseScan annotation record the pipeline writes and the export gives back, and its validation.

`<annotations>/densescan.json` is a JSON list of records: the ScanRefer fields (`scene_id`, `object_id`,
`object_name`, `ann_id`, `description`, `token`) plus `level`, `status` (the pipeline's verification
outcome), `confidence` and `source`; scenario questions add `question`, `answer`, `answer_object_ids`.
Any other field (claims, frame_id, image paths, ...) is kept as it is in `extra`.

Every record is checked here against what both backends can store, so that SQLite and PostgreSQL give
the same answer: identifiers and names must fit their column (`scene_id` at most 64 characters, ...;
SQLite would accept more, PostgreSQL would refuse the whole import with a database error), and no string
anywhere in a record, field names included, may hold a NUL character or a lone surrogate (PostgreSQL
cannot store the first; neither backend can encode the second, nor can the export).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.text import scanrefer_tokens as tokenize
from review.errors import ReviewError
from review.schema import Decision, Item

ANNOTATION_FILE = "densescan.json"
LEVELS = ("object", "frame", "scene", "scenario")
PIPELINE_STATUSES = ("accepted", "flagged", "rejected")
MODELED_FIELDS = frozenset(
    {
        "scene_id", "object_id", "object_name", "ann_id", "description", "token", "level", "status",
        "confidence", "source", "question", "answer", "answer_object_ids",
    }
)  # fmt: skip
MAX_REPORTED_PROBLEMS = 20
# the longest value each length-limited column takes, read from the schema so the two never disagree
MAX_LENGTHS = {
    name: Item.__table__.c[name].type.length
    for name in ("scene_id", "object_id", "ann_id", "object_name", "source")
}
KEY_MAX_LENGTH = Decision.__table__.c.idempotency_key.type.length  # also the undo key's


@dataclass(frozen=True, order=True)
class ItemKey:
    """An item's identity: which scene, which kind of caption, which object, which annotation of it."""

    scene_id: str
    level: str
    object_id: str
    ann_id: str

    def __str__(self) -> str:
        return f"{self.scene_id}/{self.level}/{self.object_id}/{self.ann_id}"


@dataclass(frozen=True)
class PipelineRecord:
    """One validated record of the pipeline's output."""

    key: ItemKey
    object_name: str
    description: str
    token: list[str]
    status: str
    confidence: float
    source: str
    question: str | None
    answer: str | None
    answer_object_ids: list[int] | None
    extra: dict[str, Any]


def text_problem(value: str) -> str | None:
    """Why the store cannot keep this string (a NUL, a lone surrogate), or None when it can."""
    if "\x00" in value:
        return "holds a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # only lone surrogates fail: they are not text in any encoding
        return f"holds a lone surrogate (\\u{ord(value[exc.start]):04x}) at character {exc.start}"
    return None


def check_texts(where: str, key: str | None = None, **texts: str | None) -> None:
    """Refuse what a person sends (an edit, a note, an idempotency key) that a backend cannot store, with
    the same `ReviewError` on SQLite and PostgreSQL (PostgreSQL would fail the transaction instead)."""
    if key is not None and len(key) > KEY_MAX_LENGTH:
        raise ReviewError(where, f"the request key is {len(key)} characters long, more than {KEY_MAX_LENGTH}")
    for name, value in {"key": key, **texts}.items():
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            raise ReviewError(where, f"`{name}` {problem}")


def _check_strings(raw: dict[str, Any]) -> None:
    """Every string of the record, at any depth, field names included (iterative: depth costs no stack)."""
    try:  # the fast look: one C-speed pass; the walk below only runs to find (or rule out) a suspect
        flat = json.dumps(raw, ensure_ascii=False)
        if "\\u0000" not in flat and text_problem(flat) is None:
            return
    except RecursionError:
        pass
    stack: list[tuple[str, Any]] = [(f"`{name}`", value) for name, value in raw.items()]
    stack += [(f"a field name {name[:40]!r}", name) for name in raw]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValueError(f"{where} {problem}")
        elif isinstance(value, dict):
            stack += [(f"{where}[{k!r}]", v) for k, v in value.items()]
            stack += [(f"a field name in {where}", k) for k in value]
        elif isinstance(value, list):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _fits(field: str, value: str) -> str:
    limit = MAX_LENGTHS[field]
    if len(value) > limit:
        raise ValueError(f"`{field}` is {len(value)} characters long, more than the store's {limit}")
    return value


def _id_string(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise ValueError(f"`{field}` must be a non-empty string, got {value!r}")
    return _fits(field, str(value))


def _text(raw: dict[str, Any], field: str, allow_empty: bool = False) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ValueError(f"`{field}` must be a non-empty string, got {value!r}")
    return value


def _choice(raw: dict[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = raw.get(field)
    if value not in choices:
        raise ValueError(f"`{field}` must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_record(raw: Any) -> PipelineRecord:
    """Validate one raw JSON record; a ValueError says which field is wrong and how."""
    if not isinstance(raw, dict):
        raise ValueError(f"a record must be a JSON object, got {type(raw).__name__}")
    _check_strings(raw)
    level = _choice(raw, "level", LEVELS)
    key = ItemKey(_id_string(raw, "scene_id"), level, _id_string(raw, "object_id"), _id_string(raw, "ann_id"))
    confidence = raw.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise ValueError(f"`confidence` must be a number in 0..1, got {confidence!r}")
    question = answer = answer_ids = None
    if level == "scenario":
        question, answer = _text(raw, "question"), _text(raw, "answer")
        answer_ids = raw.get("answer_object_ids")
        if not isinstance(answer_ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in answer_ids
        ):
            raise ValueError(f"`answer_object_ids` must be a list of integers, got {answer_ids!r}")
    description = _text(raw, "description", allow_empty=level == "scenario")
    token = raw.get("token")
    if token is None:
        token = tokenize(description)
    elif not isinstance(token, list) or not all(isinstance(t, str) for t in token):
        raise ValueError("`token` must be a list of strings")
    return PipelineRecord(
        key=key,
        object_name=_fits("object_name", _text(raw, "object_name")),
        description=description,
        token=list(token),
        status=_choice(raw, "status", PIPELINE_STATUSES),
        confidence=float(confidence),
        source=_fits("source", _text(raw, "source")),
        question=question,
        answer=answer,
        answer_object_ids=answer_ids,
        extra={k: v for k, v in raw.items() if k not in MODELED_FIELDS},
    )


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = str(value)
    except ValueError:  # an integer too long to print
        return "<a huge number>"
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(raw: Any, index: int) -> str:
    if isinstance(raw, dict):
        parts = [_short(raw.get(f, "?")) for f in ("scene_id", "level", "object_id", "ann_id")]
        return f"record {index} ({'/'.join(parts)})"
    return f"record {index}"


def read_annotations(folder: str | Path) -> list[PipelineRecord]:
    """Read and validate `<folder>/densescan.json` completely; any problem raises before anything is used."""
    folder = Path(folder)
    path = folder / ANNOTATION_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise ReviewError(path, f"no annotation file (expected {ANNOTATION_FILE} in {folder})", code="input")
    try:
        raw_records = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except OSError as exc:
        raise ReviewError(path, f"cannot read the annotation file: {exc.strerror or exc}", "input") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReviewError(path, f"not valid JSON: {exc}", code="input") from exc
    except RecursionError as exc:
        raise ReviewError(path, "not valid JSON: nested too deeply to read", code="input") from exc
    if not isinstance(raw_records, list):
        raise ReviewError(path, f"expected a JSON list of records, got {type(raw_records).__name__}", "input")

    records: list[PipelineRecord] = []
    problems: list[str] = []
    first_seen: dict[ItemKey, int] = {}
    for index, raw in enumerate(raw_records):
        try:
            record = parse_record(raw)
        except ValueError as exc:
            problems.append(f"{_describe(raw, index)}: {exc}")
            continue
        if record.key in first_seen:
            problems.append(f"{_describe(raw, index)}: same item key as record {first_seen[record.key]}")
            continue
        first_seen[record.key] = index
        records.append(record)
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED_PROBLEMS])
        more = (
            f"\n  ... and {len(problems) - MAX_REPORTED_PROBLEMS} more"
            if len(problems) > MAX_REPORTED_PROBLEMS
            else ""
        )
        raise ReviewError(
            path, f"{len(problems)} malformed record(s), nothing imported:\n  {shown}{more}", code="input"
        )
    return records


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in annotation files")
