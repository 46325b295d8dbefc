"""Which k frames of a scan the image branch sees (REFERENCE §5): uniform, or greedy max coverage.

- "uniform": `np.linspace(0, n - 1, k)` floored, over the scan's usable frames in frame order (what
  Video-3D-LLM does over every 10th frame).
- "coverage": each candidate frame's depth is back-projected on a pixel lattice (every `pixel_stride`-th
  pixel in both directions), with its axis-aligned pose, into 0.1 m voxels; frames are then taken greedily,
  each time the one adding the most voxels not yet covered (ties: the lowest frame index), which is the
  classic (1 - 1/e) greedy set cover. When no frame adds anything new before k are taken, the rest are
  filled uniformly from the frames not yet taken, so k frames come back whenever the scan has k.

Frames whose depth has no measurement at all are unusable for coverage; a scan with no frames, or with no
usable one, is a `ModelError` naming the scene folder. Both methods are deterministic (no randomness) and
return frame positions in `scene.frames.frames`, sorted ascending so the frames keep their video order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.models.errors import ModelError
from core.scene.geometry import backproject_depth

if TYPE_CHECKING:
    from core.scene.scannet import Scene

METHODS = ("coverage", "uniform")


def uniform_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when k >= n)."""
    if k <= 0:
        raise ModelError(None, f"frame selection: k must be positive, got {k}")
    if k >= n:
        return list(range(n))
    return [int(i) for i in np.linspace(0, n - 1, k).astype(np.int64)]


def frame_voxels(
    depth: np.ndarray,
    depth_intrinsics: np.ndarray,
    cam_to_world: np.ndarray,
    voxel_size: float = 0.1,
    pixel_stride: int = 8,
) -> np.ndarray:
    """Sorted unique (V, 3) int64 voxel coordinates seen by one frame (depth in metres, 0 = none)."""
    if pixel_stride < 1:
        raise ModelError(None, f"frame selection: pixel_stride must be >= 1, got {pixel_stride}")
    offset = pixel_stride // 2  # sample lattice centred in each stride x stride block
    sub = np.ascontiguousarray(depth[offset::pixel_stride, offset::pixel_stride])
    K = np.asarray(depth_intrinsics, dtype=np.float64)[:3, :3].copy()
    # Pixel c of the subsampled image is pixel offset + stride * c of the full one.
    K[0, 2] = (K[0, 2] - offset) / pixel_stride
    K[1, 2] = (K[1, 2] - offset) / pixel_stride
    K[0, 0] /= pixel_stride
    K[1, 1] /= pixel_stride
    points, _ = backproject_depth(sub, K, cam_to_world)
    if len(points) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    return np.unique(np.floor(points.astype(np.float64) / voxel_size).astype(np.int64), axis=0)


def greedy_coverage(voxel_sets: list[np.ndarray], k: int) -> list[int]:
    """Greedy max coverage: positions of up to k sets (each (V_i, 3) int voxel coords), sorted ascending.

    Sets that are empty are never chosen; once nothing new can be covered the remaining picks are spread
    uniformly over the non-empty sets not yet chosen.
    """
    if k <= 0:
        raise ModelError(None, f"frame selection: k must be positive, got {k}")
    usable = [i for i, s in enumerate(voxel_sets) if len(s)]
    if len(usable) <= k:
        return usable
    sizes = np.array([len(voxel_sets[i]) for i in usable])
    _, ids = np.unique(np.concatenate([voxel_sets[i] for i in usable]), axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    owner = np.repeat(np.arange(len(usable)), sizes)  # which candidate each voxel occurrence belongs to
    covered = np.zeros(int(ids.max()) + 1, dtype=bool)
    taken = np.zeros(len(usable), dtype=bool)
    chosen: list[int] = []
    while len(chosen) < k:
        gain = np.bincount(owner, weights=~covered[ids], minlength=len(usable))
        gain[taken] = -1
        best = int(np.argmax(gain))  # first maximum: the lowest frame index wins ties
        if gain[best] <= 0:
            break
        chosen.append(best)
        taken[best] = True
        covered[ids[owner == best]] = True
    if len(chosen) < k:
        rest = np.flatnonzero(~taken)
        chosen += [int(rest[i]) for i in uniform_indices(len(rest), k - len(chosen))]
    return sorted(usable[i] for i in chosen)


def select_frames(
    scene: Scene,
    k: int,
    method: str = "coverage",
    voxel_size: float = 0.1,
    pixel_stride: int = 8,
    max_candidates: int | None = None,
) -> list[int]:
    """k frame positions (into `scene.frames.frames`) chosen by `method` ("coverage" or "uniform").

    `max_candidates` first thins the scan uniformly (a SensReader export has thousands of frames; the
    posed_images layout already keeps every 10th), which bounds the depth maps read for coverage.
    """
    if method not in METHODS:
        raise ModelError(None, f"frame selection: method must be one of {METHODS}, got {method!r}")
    frames = scene.frames.frames if scene.frames is not None else []
    if not frames:
        raise ModelError(scene.folder, f"scene {scene.scene_id} has no usable RGB-D frames to select from")
    candidates = list(range(len(frames)))
    if max_candidates is not None:
        candidates = uniform_indices(len(frames), max_candidates)
    if method == "uniform":
        return [candidates[i] for i in uniform_indices(len(candidates), k)]
    K = scene.frames.depth_intrinsics
    sets = [frame_voxels(frames[i].depth(), K, frames[i].pose, voxel_size, pixel_stride) for i in candidates]
    chosen = greedy_coverage(sets, k)
    if not chosen:
        raise ModelError(
            scene.folder, f"scene {scene.scene_id}: none of {len(candidates)} frames has a depth measurement"
        )
    return [candidates[i] for i in chosen]


def covered_voxels(scene: Scene, indices: list[int], voxel_size: float = 0.1, pixel_stride: int = 8) -> int:
    """How many distinct voxels the given frames see together (the quantity "coverage" maximises)."""
    frames, K = scene.frames.frames, scene.frames.depth_intrinsics
    sets = [frame_voxels(frames[i].depth(), K, frames[i].pose, voxel_size, pixel_stride) for i in indices]
    sets = [s for s in sets if len(s)]
    return len(np.unique(np.concatenate(sets), axis=0)) if sets else 0
