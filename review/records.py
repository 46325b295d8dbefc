"""Reading the pipeline's output into the store's terms: validated `DenseScanRecord`s and their item keys.

`<annotations>/densescan.json` is a JSON list of DenseScan records, the one record type of
`core.data.densescan` (ScanRefer fields, level, status, confidence, source, scenario fields, the
pipeline's evidence); `read_annotations` parses it into `DenseScanRecord`s after the store's own checks.

Every record is checked here against what both backends can store, so that SQLite and PostgreSQL give
the same answer: identifiers and names must fit their column (`scene_id` at most 64 characters, ...;
SQLite would accept more, PostgreSQL would refuse the whole import with a database error), and no string
anywhere in a record, field names included, may hold a NUL character or a lone surrogate (PostgreSQL
cannot store the first; neither backend can encode the second, nor can the export). The store also
needs what a foreign DenseScan file may omit: a `status`, a `confidence` in 0..1, a `source`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.densescan import LEVELS, STATUSES, DenseScanRecord
from core.data.errors import DataError
from review.errors import ReviewError
from review.schema import Decision, Item

ANNOTATION_FILE = "densescan.json"
PIPELINE_STATUSES = STATUSES
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


def record_key(record: DenseScanRecord) -> ItemKey:
    """The store's identity of a record."""
    return ItemKey(record.scene_id, record.level, record.object_id, record.ann_id)


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


def parse_record(raw: Any) -> DenseScanRecord:
    """Validate one raw JSON record for the store; a ValueError says which field is wrong and how."""
    if not isinstance(raw, dict):
        raise ValueError(f"a record must be a JSON object, got {type(raw).__name__}")
    _check_strings(raw)
    level = _choice(raw, "level", LEVELS)
    for name in ("scene_id", "object_id", "ann_id"):
        _id_string(raw, name)
    confidence = raw.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise ValueError(f"`confidence` must be a number in 0..1, got {confidence!r}")
    if level == "scenario":
        _text(raw, "question")
        _text(raw, "answer")
        answer_ids = raw.get("answer_object_ids")
        if not isinstance(answer_ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in answer_ids
        ):
            raise ValueError(f"`answer_object_ids` must be a list of integers, got {answer_ids!r}")
    _text(raw, "description", allow_empty=level == "scenario")
    token = raw.get("token")
    if token is not None and (not isinstance(token, list) or not all(isinstance(t, str) for t in token)):
        raise ValueError("`token` must be a list of strings")
    _fits("object_name", _text(raw, "object_name"))
    _choice(raw, "status", PIPELINE_STATUSES)
    _fits("source", _text(raw, "source"))
    try:  # the typed fields (evidence, provenance) as the one record type defines them
        return DenseScanRecord.from_json(raw)
    except DataError as exc:
        raise ValueError(f"`{exc.field}` {exc.reason}" if exc.field else exc.reason) from None


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


def read_annotations(folder: str | Path) -> list[DenseScanRecord]:
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

    records: list[DenseScanRecord] = []
    problems: list[str] = []
    first_seen: dict[ItemKey, int] = {}
    for index, raw in enumerate(raw_records):
        try:
            record = parse_record(raw)
        except ValueError as exc:
            problems.append(f"{_describe(raw, index)}: {exc}")
            continue
        key = record_key(record)
        if key in first_seen:
            problems.append(f"{_describe(raw, index)}: same item key as record {first_seen[key]}")
            continue
        first_seen[key] = index
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
