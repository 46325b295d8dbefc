"""The one exception type of `core.data`: a bad annotation or prediction file, with where and why."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A data file is missing, malformed, or inconsistent with another file.

    `path` is the offending file, `index` the record (position in the file's list, or its key) and
    `field` the field, when known, so that the message points at the exact place to fix.
    """

    def __init__(
        self,
        path: str | Path | None,
        reason: str,
        index: int | str | None = None,
        field: str | None = None,
    ):
        self.path = Path(path) if path is not None else None
        self.reason = reason
        self.index = index
        self.field = field
        where = []
        if index is not None:
            where.append(f"record {index}" if isinstance(index, int) else f"key {index!r}")
        if field is not None:
            where.append(f"field '{field}'")
        text = f"{', '.join(where)}: {reason}" if where else reason
        super().__init__(f"{self.path}: {text}" if self.path is not None else text)
