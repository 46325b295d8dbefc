"""The one exception type of `core.models`: a bad checkpoint, config or model input, with where and why."""

from __future__ import annotations

from pathlib import Path


class ModelError(Exception):
    """A checkpoint folder is incomplete, a config does not match the weights, or an input is malformed.

    `path` is the offending file or folder when there is one, so that a user loading weights on a cluster
    knows which file to fix without reading a traceback.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)
