"""JSON reading with precise errors, and typed field access for one record of a list.

Every format reader goes through `read_json` and `Fields`, so all of them report a bad file the same way:
file, record index, field, and what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from core.data.errors import DataError


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_json(path: str | Path, strict_keys: bool = False) -> Any:
    """Parse a JSON file; a missing or malformed file is a `DataError` with the line and column (or why:
    nested too deeply, not UTF-8), never a traceback.

    With `strict_keys`, an object giving one key twice is an error too (json keeps the last silently)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=_reject_duplicates if strict_keys else None)
    except _DuplicateKey as exc:
        raise DataError(path, "given more than once", index=exc.key) from None
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DataError(path, "malformed JSON: nested too deeply") from None
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8, an integer of thousands of digits
        raise DataError(path, f"cannot read ({exc})") from None


def read_json_list(path: str | Path, data: Any = None) -> list[dict]:
    """A JSON file (or already parsed `data`) that must be a list of objects."""
    data = read_json(path) if data is None else data
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of records, found {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise DataError(path, f"expected an object, found {type(item).__name__}", index=i)
    return data


def write_json(path: str | Path, data: Any, indent: int | None = None) -> Path:
    """Atomic JSON write (a reader never sees half a file)."""
    return atomic_write_json(path, data, indent=indent)


def release_id(value: str) -> int | str:
    """An id kept as a string (`Fields.ident`) written back as the releases that number them do: a
    number-like one ("12") as an integer, any other ("007", "train-scene0000-0") as it is."""
    return int(value) if value.isdigit() and str(int(value)) == value else value


def check_unique_keys(path: str | Path, keys: list[str]) -> None:
    """Two records with one key would make a prediction ambiguous: refuse, naming both."""
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise DataError(path, f"duplicate sample key {key!r} (also record {seen[key]})", index=i)
        seen[key] = i


def records(path: str | Path, data: list[dict]) -> Iterator[Fields]:
    """`Fields` for each record of a list, carrying its index for error messages."""
    for i, item in enumerate(data):
        yield Fields(Path(path), i, item)


class Fields:
    """Typed access to the fields of one record; every failure names the file, index and field."""

    def __init__(self, path: Path, index: int | str, record: dict):
        self.path = path
        self.index = index
        self.record = record

    def error(self, field: str | None, reason: str) -> DataError:
        return DataError(self.path, reason, index=self.index, field=field)

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.record or self.record[name] is None:
            if required:
                raise self.error(name, "missing")
            return None
        return self.record[name]

    def text(self, name: str, required: bool = True) -> str | None:
        """A string field."""
        value = self._get(name, required)
        if value is not None and not isinstance(value, str):
            raise self.error(name, f"expected a string, found {type(value).__name__} {value!r}")
        return value

    def ident(self, name: str, required: bool = True) -> str | None:
        """An id written as a string or an integer (files from different tools differ); kept as a string."""
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.error(name, f"expected a string or integer id, found {type(value).__name__}")
        if value == "":
            raise self.error(name, "empty id")
        return str(value)

    def number(self, name: str, required: bool = True) -> float | None:
        """A finite number (json reads `NaN` and `Infinity` too: they are refused here)."""
        value = self._get(name, required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.error(name, f"expected a number, found {type(value).__name__} {value!r}")
        if value is not None and not math.isfinite(value):
            raise self.error(name, f"expected a finite number, found {value!r}")
        return None if value is None else float(value)

    def integer(self, name: str, required: bool = True) -> int | None:
        """A JSON integer: a float such as 2.7 (or 2.0) or a boolean is refused, never truncated."""
        value = self._get(name, required)
        if value is not None and type(value) is not int:
            raise self.error(name, f"expected an integer, found {type(value).__name__} {value!r}")
        return value

    def text_list(self, name: str, required: bool = True) -> list[str] | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, "expected a list of strings")
        return list(value)

    def int_list(self, name: str, required: bool = True) -> list[int] | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(name, "expected a list of integers")
        out = []
        for v in value:
            if isinstance(v, str) and v.lstrip("-").isdigit():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.error(name, f"expected a list of integers, found {v!r}")
            out.append(v)
        return out

    def obj(self, name: str, required: bool = True) -> dict | None:
        value = self._get(name, required)
        if value is not None and not isinstance(value, dict):
            raise self.error(name, f"expected an object, found {type(value).__name__}")
        return value

    def extra(self, known: tuple[str, ...]) -> dict[str, Any]:
        """Fields the record type does not model, kept so that a rewrite loses nothing."""
        return {k: v for k, v in self.record.items() if k not in known}
