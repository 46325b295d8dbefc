"""Sanity checks for the camera and alignment matrices of a scan, applied when they are read.

A bad matrix does not fail where it is read but much later and far away: NaN or all-zero intrinsics make
the ray caster spin on NaN rays forever, an all-zero `axisAlignment` collapses the mesh to a point and
surfaces as "Singular matrix" in the middle of the pipeline, with no file named. Checking them here turns
each into one `SceneError` (or, for a single frame's pose, one skip reason) that says which file is wrong.

What is accepted:
- intrinsics: finite, focal lengths > 0, the pinhole layout `[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`;
- `axisAlignment` and camera poses: finite rigid transforms, i.e. last row `0 0 0 1` and a rotation block
  R with R^T R = I and det R = +1 within `RIGID_TOLERANCE`. A scaled, sheared, mirrored or singular
  matrix would silently change every box size, left/right relation and projected pixel, so it is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.scene.errors import SceneError

# ScanNet writes these matrices with 6-9 decimals, which leaves R^T R within ~1e-6 of the identity; a
# scale or shear visible to the geometry is far above this.
RIGID_TOLERANCE = 1e-3


def intrinsics_problem(K: np.ndarray) -> str | None:
    """Why `K` (3x3) cannot be a pinhole camera's intrinsics, or None when it can."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        return f"intrinsics must be 3x3, got {K.shape}"
    if not np.isfinite(K).all():
        return "intrinsics contain non-finite numbers"
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        return f"focal lengths must be > 0, found fx={K[0, 0]:g} fy={K[1, 1]:g}"
    if abs(K[1, 0]) > 1e-9 or np.abs(K[2] - (0.0, 0.0, 1.0)).max() > 1e-9:
        return "intrinsics are not of the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]]"
    return None


def rigid_problem(M: np.ndarray) -> str | None:
    """Why the 4x4 `M` is not a rigid transform (rotation + translation), or None when it is."""
    M = np.asarray(M, dtype=np.float64)
    if M.shape != (4, 4):
        return f"expected a 4x4 matrix, got {M.shape}"
    if not np.isfinite(M).all():
        return "contains non-finite numbers"
    R = M[:3, :3]
    det = float(np.linalg.det(R))
    if abs(det) < RIGID_TOLERANCE:
        return "rotation part is singular"
    if det < 0:
        return "rotation part is a mirror (determinant < 0)"
    if np.abs(R.T @ R - np.eye(3)).max() > RIGID_TOLERANCE:
        return "rotation part is not orthonormal (scaled or sheared)"
    if np.abs(M[3] - (0.0, 0.0, 0.0, 1.0)).max() > RIGID_TOLERANCE:
        return "last row is not 0 0 0 1"
    return None


def check_intrinsics(K: np.ndarray, path: Path) -> np.ndarray:
    """`K` as a 3x3 float64 array, or a `SceneError` naming `path` when it is unusable."""
    problem = intrinsics_problem(K)
    if problem is not None:
        raise SceneError(path, problem)
    return np.asarray(K, dtype=np.float64)


def check_rigid(M: np.ndarray, path: Path, what: str) -> np.ndarray:
    """`M` when it is a rigid 4x4 transform, else a `SceneError` naming `path` and `what` was wrong."""
    problem = rigid_problem(M)
    if problem is not None:
        raise SceneError(path, f"{what} is not a rigid transform: {problem}")
    return np.asarray(M, dtype=np.float64)
