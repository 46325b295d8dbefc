"""The exception of `core.eval`: predictions that do not fit the ground truth (unknown ids, bad indices).

It is a `DataError`, so one handler reports every bad-input problem of an evaluation run.
"""

from __future__ import annotations

from core.data.errors import DataError


class EvalError(DataError):
    """Predictions and ground truth disagree: an unknown key, a vertex index past the mesh, no scans."""
