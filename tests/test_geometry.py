"""Cameras, boxes and downsampling against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from core.scene.geometry import (
    aabb_of,
    as_intrinsics,
    backproject_depth,
    box_iou,
    box_iou_matrix,
    look_at,
    project,
    scale_intrinsics,
    transform_points,
    visible_points,
    voxel_downsample,
    world_to_camera,
)

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])


def test_projection_by_hand() -> None:
    uv, z = project(np.array([[0.2, -0.1, 2.0], [0.0, 0.0, 1.0]]), K)
    np.testing.assert_allclose(uv, [[320 + 500 * 0.1, 240 - 500 * 0.05], [320, 240]])
    np.testing.assert_allclose(z, [2.0, 1.0])
    K4 = np.eye(4)
    K4[:3, :3] = K
    np.testing.assert_array_equal(as_intrinsics(K4), K)
    np.testing.assert_allclose(scale_intrinsics(K, 0.5, 0.5)[:2], [[250, 0, 160], [0, 250, 120]])


def test_backprojection_inverts_projection_through_a_pose() -> None:
    pose = look_at(np.array([1.0, -2.0, 1.5]), np.array([0.5, 1.0, 0.8]))
    depth = np.full((48, 64), 2.5, dtype=np.float32)
    depth[0, 0] = 0  # no measurement: dropped
    Ks = scale_intrinsics(K, 0.1, 0.1)
    pts, idx = backproject_depth(depth, Ks, pose)
    assert len(pts) == 48 * 64 - 1 and 0 not in idx
    uv, z = project(world_to_camera(pts, pose), Ks)
    v, u = np.divmod(idx, 64)
    np.testing.assert_allclose(uv, np.stack([u, v], 1), atol=1e-3)
    np.testing.assert_allclose(z, 2.5, atol=1e-5)


def test_look_at_uses_opencv_axes() -> None:
    pose = look_at(np.zeros(3), np.array([0.0, 5.0, 0.0]))
    np.testing.assert_allclose(pose[:3, 2], [0, 1, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(pose[:3, 1], [0, 0, -1], atol=1e-12)  # y down
    np.testing.assert_allclose(pose[:3, 0], [1, 0, 0], atol=1e-12)  # x right
    np.testing.assert_allclose(np.linalg.det(pose[:3, :3]), 1.0)


def test_visibility_depth_test_and_range() -> None:
    pose = np.eye(4)
    depth = np.full((480, 640), 2.0, dtype=np.float32)
    depth[:, :10] = 0  # a strip without measurements
    pts = np.array(
        [
            [0.0, 0.0, 2.02],  # on the surface within 5 cm
            [0.0, 0.0, 2.5],  # behind the surface: occluded
            [0.0, 0.0, 0.05],  # nearer than 0.1 m
            [100.0, 0.0, 2.0],  # outside the image
            [-1.27, 0.0, 2.0],  # projects into the unmeasured strip (u = 2.5 -> pixel 3)
        ]
    )
    vis = visible_points(pts, pose, K, depth, tolerance=0.05)
    assert vis.visible.tolist() == [True, False, False, False, False]
    assert visible_points(pts, pose, K, depth, tolerance=0.6).visible.tolist() == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_box_iou_by_hand() -> None:
    a = np.array([0, 0, 0, 2, 2, 2.0])
    b = np.array([1, 0, 0, 2, 2, 2.0])  # overlap 1x2x2 = 4; union 8 + 8 - 4
    assert box_iou(a, b) == pytest.approx(4 / 12)
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, np.array([5, 5, 5, 1, 1, 1.0])) == 0.0
    assert box_iou(a, np.array([0, 0, 0, 0, 0, 0.0])) == 0.0  # degenerate box
    m = box_iou_matrix(np.stack([a, b]), np.stack([a, b, a]))
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 1 / 3, 1], [1 / 3, 1, 1 / 3]])


def test_aabb_and_transform() -> None:
    pts = np.array([[0, 0, 0], [1, 2, 3], [0.5, -1, 1]], dtype=np.float32)
    np.testing.assert_allclose(aabb_of(pts), [0.5, 0.5, 1.5, 1, 3, 3])
    M = np.eye(4)
    M[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(transform_points(M, pts)[1], [2, 4, 6])
    with pytest.raises(ValueError):
        aabb_of(np.zeros((0, 3)))


def test_voxel_downsample_maps_back_to_every_vertex() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (5000, 3)).astype(np.float32)
    kept, inverse = voxel_downsample(pts, 0.1)
    assert len(kept) <= 1000 and len(inverse) == 5000
    # Each point lies in the same voxel as its representative.
    keys = np.floor(pts / 0.1).astype(int)
    np.testing.assert_array_equal(keys[kept][inverse], keys)
    # Per-voxel values broadcast back: the representative's own index comes back for itself.
    assert (kept[inverse][kept] == kept).all()
    with pytest.raises(ValueError):
        voxel_downsample(pts, 0)
