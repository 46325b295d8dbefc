"""Depth-tested visibility of every instance in every frame: the table that view selection ranks.

One pass per frame projects all vertices at once (float32) and counts, per instance, the vertices that
land inside the depth image, lie in the depth range and agree with the measured depth. Depth images are
read as stored (millimetres) and only the sampled pixels are scaled; a decoding thread was tried and lost
to the GIL on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.scene.geometry import as_intrinsics


@dataclass
class VisibilityTable:
    """counts[f, k]: vertices of instance `object_ids[k]` visible in frame `frame_ids[f]`."""

    frame_ids: list[str]
    object_ids: np.ndarray
    counts: np.ndarray  # (F, K) int32
    totals: np.ndarray  # (K,) vertices per instance

    def fraction(self) -> np.ndarray:
        """(F, K) visible share of each instance's vertices."""
        return self.counts / np.maximum(self.totals, 1)[None, :]


def frame_visible_mask(
    vertices: np.ndarray,
    pose_c2w: np.ndarray,
    K_depth: np.ndarray,
    depth: np.ndarray,
    tolerance: float = 0.05,
    near: float = 0.1,
    far: float = 4.0,
    depth_scale: float = 1.0,
) -> np.ndarray:
    """(N,) bool visibility of float32 vertices in one frame; same test as `geometry.visible_points`.

    `depth * depth_scale` is in metres (pass a millimetre image with `depth_scale=0.001`)."""
    K = as_intrinsics(K_depth)
    w2c = np.linalg.inv(pose_c2w).astype(np.float32)
    R, t = w2c[:3, :3], w2c[:3, 3]
    # Depth first: most vertices are behind the camera or out of range, so x and y are computed only for
    # the rest. int32 pixel indices keep the temporaries small.
    z = vertices @ R[2] + t[2]
    idx = np.flatnonzero((z >= near) & (z <= far))
    near_pts, zi = vertices[idx], z[idx]
    h, w = depth.shape
    u = np.floor((near_pts @ R[0] + t[0]) * np.float32(K[0, 0]) / zi + np.float32(K[0, 2] + 0.5)).astype(
        np.int32
    )
    v = np.floor((near_pts @ R[1] + t[1]) * np.float32(K[1, 1]) / zi + np.float32(K[1, 2] + 0.5)).astype(
        np.int32
    )
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx, u, v, zi = idx[inside], u[inside], v[inside], zi[inside]
    measured = depth[v, u] * np.float32(depth_scale)
    ok = (measured > 0) & (np.abs(measured - zi) <= tolerance)
    mask = np.zeros(len(vertices), dtype=bool)
    mask[idx[ok]] = True
    return mask


def instance_visibility(
    scene, tolerance: float = 0.05, near: float = 0.1, far: float = 4.0
) -> VisibilityTable:
    """Visible vertex counts of every annotated instance in every valid frame of `scene`."""
    inst = scene.vertex_instance
    object_ids = np.array(sorted({i.object_id for i in scene.instances}), dtype=np.int64)
    # Map object ids to columns 1..K; column 0 collects unannotated vertices and is dropped.
    column = np.zeros(int(inst.max()) + 2 if len(inst) else 1, dtype=np.int64)
    column[object_ids + 1] = np.arange(1, len(object_ids) + 1)
    vertex_column = column[inst + 1]
    totals = np.bincount(vertex_column, minlength=len(object_ids) + 1)[1:]
    frames = scene.frames.frames if scene.frames is not None else []
    counts = np.zeros((len(frames), len(object_ids)), dtype=np.int32)
    vertices = scene.mesh.vertices
    K = scene.frames.depth_intrinsics if frames else None
    for f, frame in enumerate(frames):
        mask = frame_visible_mask(vertices, frame.pose, K, frame.depth_mm(), tolerance, near, far, 0.001)
        counts[f] = np.bincount(vertex_column[mask], minlength=len(object_ids) + 1)[1:]
    return VisibilityTable([f.frame_id for f in frames], object_ids, counts, totals)
