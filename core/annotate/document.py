"""The per-scene pipeline document (`scenes/<scene_id>/annotation.json`) as typed records.

`SceneAnnotation` holds every stage's output for one scene: one `ObjectEntry` per target object (its
views, fusion, caption and verification), the frame descriptions, the narrative and the scenario
questions. The scene runner assembles it, `core.annotate.output` writes it, and everything that reads
it (records, stats, the review panels, the app) goes through `SceneAnnotation.from_json` /
`read_annotation`: a missing required key, an unknown (misspelled) key or a value of the wrong type is
an `AnnotateError` naming the file and the key's place ("objects[3].verification: missing key
'status'"), never a silent None.

The JSON layout is the dataclasses' fields, in order. A field marked `OMIT` is left out while it is
None (an object with no caption has no `fusion`, `caption` or `verification`; `views_requested` and the
narrative's `room_type` came later, so older documents read without them).
"""

from __future__ import annotations

import json
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from core.annotate.errors import AnnotateError
from core.atomic import atomic_write_json
from core.data.densescan import Status

DOCUMENT_FILE = "annotation.json"
OMIT = {"omit_if_none": True}  # field metadata: not written while None


@dataclass
class View:
    """One chosen view of an object: the frame, the images cut from it and what the captioner said."""

    frame_id: str
    score: float
    visible_vertices: int
    coverage: float
    pixels: int  # rendered object pixels at work resolution
    bbox: list[int]  # x0, y0, x1, y1 in work-resolution pixels
    crops: list[str]  # paths relative to the scene folder
    highlight: str
    color_votes: dict[str, float]
    visible_neighbours: list[int]
    relations: list[str]
    isolated_text: str | None = field(default=None, metadata=OMIT)
    highlighted_text: str | None = field(default=None, metadata=OMIT)


@dataclass
class RejectedView:
    frame_id: str
    reason: str


@dataclass
class Fusion:
    """What the views agree on (`core.annotate.fusion`), and where they disagreed."""

    color: str | None
    color_votes: dict[str, float]
    relations: list[str]
    color_counts: dict[str, int]
    relation_counts: dict[str, int]
    conflicts: list[str]


@dataclass
class Verification:
    """The fact check of the caption (`core.annotate.verify`) and the status it decided."""

    consistency_answer: str
    consistent: bool | None
    claims: list[dict[str, Any]]  # `Verdict.to_json()` of each claim
    status: Status
    confidence: float


@dataclass
class ObjectEntry:
    object_id: int
    label: str
    box: list[float]  # centre and size, metres
    size_class: str | None
    shape: list[str]
    views: list[View]
    rejected_views: list[RejectedView]
    reason: str | None  # why the object has no caption (None when it has one)
    views_requested: int | None = field(default=None, metadata=OMIT)  # len(views): how many it got
    fusion: Fusion | None = field(default=None, metadata=OMIT)
    caption: str | None = field(default=None, metadata=OMIT)
    verification: Verification | None = field(default=None, metadata=OMIT)


@dataclass
class FrameEntry:
    """A frame-level description, centred on `object_id`."""

    frame_id: str
    object_id: int
    image: str
    visible_objects: list[int]
    description: str


@dataclass
class MainObject:
    label: str
    count: int
    color: str | None
    object_ids: list[int]


@dataclass
class Narrative:
    room_type_guess: str
    extent: list[float]  # floor extent (x, y), metres
    main_objects: list[MainObject]
    text: str
    room_type: str | None = field(default=None, metadata=OMIT)
    room_type_source: str | None = field(default=None, metadata=OMIT)  # "meta" or "guess"


@dataclass
class Scenario:
    need: str
    answer: str
    answer_object_ids: list[int]
    question: str


@dataclass
class SceneAnnotation:
    scene_id: str
    captioner: str
    config: dict[str, Any]  # `AnnotateConfig.to_json()` of the run
    objects: list[ObjectEntry]
    frames: list[FrameEntry]
    narrative: Narrative
    scenarios: list[Scenario]

    def object(self, object_id: int) -> ObjectEntry | None:
        return next((o for o in self.objects if o.object_id == object_id), None)

    def labels(self) -> dict[int, str]:
        return {o.object_id: o.label for o in self.objects}

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: Any, source: str | Path = DOCUMENT_FILE) -> SceneAnnotation:
        """Validate a parsed document; `source` (the file) opens every error message."""
        try:
            return _from_json(cls, data, "the document")
        except _Bad as exc:
            raise AnnotateError(f"{source}: {exc.where}: {exc.reason}") from None


def read_annotation(path: str | Path) -> SceneAnnotation:
    """Read and validate one scene document; any problem is an `AnnotateError` naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise AnnotateError(f"{path}: no such scene document") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise AnnotateError(f"{path}: malformed JSON at {where}: {exc.msg}") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise AnnotateError(f"{path}: cannot read ({exc})") from None
    return SceneAnnotation.from_json(data, path)


def write_annotation(path: str | Path, doc: SceneAnnotation) -> Path:
    """Write the document atomically."""
    return atomic_write_json(path, doc.to_json(), indent=1)


# ------------------------------------------------------------------------------- JSON <-> dataclasses


class _Bad(Exception):
    def __init__(self, where: str, reason: str):
        self.where, self.reason = where, reason


T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _from_json(cls: type[T], value: Any, where: str) -> T:
    if not isinstance(value, dict):
        raise _Bad(where, f"expected an object, found {type(value).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(k for k in value if k not in known)
    if unknown:
        raise _Bad(where, f"unknown key {unknown[0]!r} (expected one of {', '.join(known)})")
    kwargs = {}
    for name, spec in known.items():
        if name in value:
            kwargs[name] = _read(value[name], _hints(cls)[name], f"{where}.{name}")
        elif spec.default is MISSING and spec.default_factory is MISSING:
            raise _Bad(where, f"missing key {name!r}")
    return cls(**kwargs)


def _read(value: Any, hint: Any, where: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) not in args:
                raise _Bad(where, "must not be null")
            return None
        return _read(value, next(a for a in args if a is not type(None)), where)
    if value is None:
        raise _Bad(where, "must not be null")
    if origin is Literal:
        if value not in args:
            raise _Bad(where, f"{value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _Bad(where, f"expected a list, found {type(value).__name__}")
        return [_read(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Bad(where, f"expected an object, found {type(value).__name__}")
        return {k: _read(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
    if is_dataclass(hint):
        return _from_json(hint, value, where)
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = type(value) is int
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise _Bad(where, f"expected {hint.__name__}, found {type(value).__name__} {value!r}"[:200])
    return value


def _to_json(value: Any) -> Any:
    if is_dataclass(value):
        return {
            f.name: _to_json(getattr(value, f.name))
            for f in fields(value)
            if not (f.metadata.get("omit_if_none") and getattr(value, f.name) is None)
        }
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value
