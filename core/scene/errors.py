"""The one exception type of `core.scene`: every bad-input error names the file and the reason."""

from __future__ import annotations

from pathlib import Path


class SceneError(Exception):
    """A scene file is missing, malformed or inconsistent.

    `path` is the offending file (or folder) and `reason` says what is wrong with it, so that a user
    running over hundreds of scans knows which file to fix without reading a traceback.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)
