"""Camera and box geometry shared by the reader, the renderer, the pipeline and the metrics.

Conventions (REFERENCE §1): poses are 4x4 camera-to-world, cameras are OpenCV (x right, y down,
z forward), intrinsics are 3x3 (a 4x4 ScanNet intrinsic is accepted and cut to 3x3), depth is the
z coordinate in the camera frame in metres, boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def as_intrinsics(K: np.ndarray) -> np.ndarray:
    """Return a 3x3 float64 intrinsic matrix from a 3x3 or 4x4 one."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (4, 4):
        K = K[:3, :3]
    if K.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3 or 4x4, got {K.shape}")
    return K


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of the same camera after resizing the image by (sx, sy)."""
    K = as_intrinsics(K).copy()
    K[0] *= sx
    K[1] *= sy
    return K


def transform_points(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid (or affine) transform to (N, 3) points: `[x y z 1] @ M.T`."""
    points = np.asarray(points)
    M = np.asarray(M, dtype=np.float64)
    out = points @ M[:3, :3].T + M[:3, 3]
    return out.astype(points.dtype if points.dtype.kind == "f" else np.float64, copy=False)


def world_to_camera(points_world: np.ndarray, pose_c2w: np.ndarray) -> np.ndarray:
    """Points in the camera frame of a camera-to-world pose."""
    return transform_points(np.linalg.inv(pose_c2w), points_world)


def project(points_cam: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) and depth (N,) of camera-frame points; u = fx x/z + cx."""
    K = as_intrinsics(K)
    z = points_cam[:, 2].astype(np.float64)
    safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
    u = K[0, 0] * points_cam[:, 0] / safe + K[0, 2]
    v = K[1, 1] * points_cam[:, 1] / safe + K[1, 2]
    return np.stack([u, v], axis=1), z


def backproject_depth(
    depth: np.ndarray, K: np.ndarray, pose_c2w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a depth map (metres, 0 = no measurement) to 3D.

    Returns (points (M, 3) float32, pixel index (M,) into the flattened image) for the valid pixels; the
    points are in the world frame when a pose is given, else in the camera frame.
    """
    K = as_intrinsics(K)
    h, w = depth.shape
    flat = depth.reshape(-1)
    idx = np.flatnonzero(np.isfinite(flat) & (flat > 0))
    z = flat[idx].astype(np.float64)
    v, u = np.divmod(idx, w)
    x = (u + 0.0 - K[0, 2]) * z / K[0, 0]
    y = (v + 0.0 - K[1, 2]) * z / K[1, 1]
    pts = np.stack([x, y, z], axis=1)
    if pose_c2w is not None:
        pts = transform_points(pose_c2w, pts)
    return pts.astype(np.float32), idx


@dataclass
class Visibility:
    """Which of a set of points a frame sees, and where."""

    visible: np.ndarray  # (N,) bool: in the image, in the depth range and not occluded
    pixels: np.ndarray  # (N, 2) float pixel coordinates at the depth map's resolution
    depth: np.ndarray  # (N,) camera-frame depth of each point


def visible_points(
    points_world: np.ndarray,
    pose_c2w: np.ndarray,
    K_depth: np.ndarray,
    depth_map: np.ndarray,
    tolerance: float = 0.05,
    near: float = 0.1,
    far: float = 4.0,
) -> Visibility:
    """Depth-tested visibility of points in one frame (REFERENCE §6).

    A point is visible when it projects inside the depth image, its depth lies in [near, far], the depth
    map has a measurement there, and |depth map - point depth| <= tolerance. Use the depth intrinsics at
    the depth map's resolution.
    """
    cam = world_to_camera(np.asarray(points_world, dtype=np.float64), pose_c2w)
    uv, z = project(cam, K_depth)
    h, w = depth_map.shape
    # Pixel centres sit at whole numbers (as in `backproject_depth` and the renderer): round, not floor.
    ui = np.floor(uv[:, 0] + 0.5).astype(np.int64)
    vi = np.floor(uv[:, 1] + 0.5).astype(np.int64)
    ok = (z >= near) & (z <= far) & (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
    measured = np.zeros(len(z), dtype=np.float64)
    measured[ok] = depth_map[vi[ok], ui[ok]]
    ok &= measured > 0
    ok &= np.abs(measured - z) <= tolerance
    return Visibility(visible=ok, pixels=uv, depth=z)


# ----------------------------------------------------------------------------------------------- boxes


def aabb_of(points: np.ndarray) -> np.ndarray:
    """Axis-aligned box `[cx, cy, cz, dx, dy, dz]` of (N, 3) points."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("cannot take the box of zero points")
    lo, hi = points.min(axis=0), points.max(axis=0)
    return np.concatenate([(lo + hi) / 2, hi - lo])


def box_corners_minmax(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 6) centre-size boxes to their min and max corners."""
    boxes = np.asarray(boxes, dtype=np.float64)
    half = boxes[..., 3:6] / 2
    return boxes[..., :3] - half, boxes[..., :3] + half


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3D IoU of axis-aligned boxes, elementwise over broadcast shapes: inter / (V1 + V2 - inter)."""
    a_lo, a_hi = box_corners_minmax(a)
    b_lo, b_hi = box_corners_minmax(b)
    inter = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0, None).prod(axis=-1)
    va = np.prod(np.asarray(a, dtype=np.float64)[..., 3:6], axis=-1)
    vb = np.prod(np.asarray(b, dtype=np.float64)[..., 3:6], axis=-1)
    union = va + vb - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (len(a), len(b)) of two sets of centre-size boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 6)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 6)
    return box_iou(a[:, None, :], b[None, :, :])


# ------------------------------------------------------------------------------------------ downsample


def voxel_downsample(points: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep one point per occupied voxel.

    Returns (kept, inverse): `kept` indexes the representative full-resolution point of each voxel (the
    first in input order), and `inverse[i]` is the position in `kept` of the voxel that point i fell in,
    so per-voxel values map back to every vertex as `values[inverse]`.
    """
    if voxel_size <= 0:
        raise ValueError("voxel_size must be positive")
    keys = np.floor(np.asarray(points, dtype=np.float64) / voxel_size).astype(np.int64)
    _, kept, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return kept, inverse.reshape(-1)


def rotation_z(angle: float) -> np.ndarray:
    """4x4 rotation about +Z by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    M = np.eye(4)
    M[:2, :2] = [[c, -s], [s, c]]
    return M


def look_at(
    eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) of a camera at `eye` looking at `target` with world `up`."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-8:  # looking straight up or down: any right vector will do
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose
