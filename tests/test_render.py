"""The ray-cast renderer against geometry it must agree with: projection, z-depth, occlusion, BEV."""

from __future__ import annotations

import numpy as np
import pytest

from core.scene.geometry import backproject_depth, look_at, project, visible_points, world_to_camera
from core.scene.mesh import Mesh
from core.scene.render import MeshRenderer

K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]])
W, H = 320, 240

# Per box side: (normal axis, sign, the two in-plane axes ordered so that the triangles face outwards).
_SIDES = [(0, 1, 1, 2), (0, -1, 2, 1), (1, 1, 2, 0), (1, -1, 0, 2), (2, 1, 0, 1), (2, -1, 1, 0)]


def box_mesh(centre, size, colors, n: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An axis-aligned box, each side an n x n grid with its own vertices so sides can differ in colour.

    `colors` is one RGB for the whole box or six, in the order +x, -x, +y, -y, +z, -z.
    Returns (vertices, colors, faces).
    """
    colors = np.broadcast_to(np.asarray(colors, dtype=np.uint8).reshape(-1, 3), (6, 3))
    t = np.linspace(-0.5, 0.5, n + 1)
    a, b = (g.reshape(-1) for g in np.meshgrid(t, t, indexing="ij"))
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    q = (i * (n + 1) + j).reshape(-1)  # lower-left corner of each grid cell
    cell = np.concatenate([np.stack([q, q + n + 1, q + n + 2], 1), np.stack([q, q + n + 2, q + 1], 1)])
    verts, cols, faces = [], [], []
    for k, (axis, sign, ax_a, ax_b) in enumerate(_SIDES):
        p = np.zeros((len(a), 3))
        p[:, axis] = 0.5 * sign
        p[:, ax_a], p[:, ax_b] = a, b
        faces.append(cell + len(verts) * len(a))
        verts.append(np.asarray(centre) + p * np.asarray(size))
        cols.append(np.repeat(colors[k][None], len(a), axis=0))
    return np.concatenate(verts), np.concatenate(cols), np.concatenate(faces)


def merge(parts) -> tuple[Mesh, np.ndarray]:
    """One mesh from (vertices, colors, faces) parts; the vertex instance id is the part's index."""
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    mesh = Mesh(
        vertices=np.concatenate([p[0] for p in parts]),
        colors=np.concatenate([p[1] for p in parts]),
        faces=np.concatenate([p[2] + o for p, o in zip(parts, offsets)]),
    )
    ids = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(parts)])
    return mesh, ids


@pytest.fixture(scope="module")
def two_boxes():
    """A floor (id 0), a red box in front (id 1) and a larger green box behind it (id 2)."""
    parts = [
        box_mesh([0, 0, -0.05], [4, 4, 0.1], [128, 128, 128], n=20),
        box_mesh([0, 0, 0.3], [0.4, 0.4, 0.6], [255, 0, 0], n=8),
        box_mesh([0, 1.0, 0.5], [1.0, 0.4, 1.0], [0, 255, 0], n=8),
    ]
    mesh, ids = merge(parts)
    pose = look_at([0, -2.0, 0.4], [0, 1.0, 0.4])
    return mesh, ids, pose, MeshRenderer(mesh, ids)


def test_depth_at_projected_vertices_is_camera_z(two_boxes):
    mesh, ids, _, renderer = two_boxes
    pose = look_at([0.3, -2.0, 1.2], [0, 0, 0])  # looking down: floor depth changes fast across rows
    view = renderer.render(pose, K, W, H)
    p = mesh.vertices
    floor = (ids == 0) & (p[:, 2] > -0.01) & (p[:, 1] < -0.4)  # floor top between camera and boxes
    front = (ids == 1) & (p[:, 1] < -0.2 + 1e-6)  # the red box's side facing the camera, less its rim
    front &= (np.abs(p[:, 0]) < 0.15) & (p[:, 2] > 0.05) & (p[:, 2] < 0.55)
    cam = world_to_camera(p.astype(np.float64), pose)
    uv, z = project(cam, K)
    col, row = np.round(uv).astype(int).T  # pixel centres at integer coordinates
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
    for sel in (floor & inside, front & inside):
        assert sel.sum() > 20
        np.testing.assert_allclose(view.depth[row[sel], col[sel]], z[sel], atol=0.01)
    assert view.depth.dtype == np.float32 and view.depth.shape == (H, W)

    # Same pixel convention as backproject_depth: floor pixels come back onto the floor plane z = 0.
    floor_depth = np.where(view.instance == 0, view.depth, 0)
    points, _ = backproject_depth(floor_depth, K, pose)
    assert len(points) > 1000
    np.testing.assert_allclose(points[:, 2], 0.0, atol=2e-3)


def test_front_box_occludes_back_box(two_boxes):
    mesh, ids, pose, renderer = two_boxes
    view = renderer.render(pose, K, W, H)
    front_centre = np.array([[0.0, -0.2, 0.3]])  # centre of the front box's camera-facing side
    uv, _ = project(world_to_camera(front_centre, pose), K)
    col, row = np.round(uv[0]).astype(int)
    assert view.instance[row, col] == 1
    assert (view.instance == 2).any()  # the back box shows around the front one
    assert view.instance.dtype == np.int32

    back_point = np.array([[0.0, 0.8, 0.3]])  # on the back box's front side, right behind the red box
    vis = visible_points(np.concatenate([front_centre, back_point]), pose, K, view.depth)
    assert vis.visible.tolist() == [True, False]


def test_uniform_face_color(two_boxes):
    _, _, pose, renderer = two_boxes
    view = renderer.render(pose, K, W, H)
    assert (view.color[view.instance == 1] == [255, 0, 0]).all()
    assert (view.color[view.instance == 2] == [0, 255, 0]).all()
    assert (view.color[view.depth == 0] == 0).all()


def test_interpolated_color_and_uv_convention():
    """One triangle with red, green, blue corners: the colour at a point is its barycentric mix."""
    verts = np.array([[0, 0, 2], [1, 0, 2], [0, 1, 2]], dtype=np.float32)
    mesh = Mesh(verts, np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]]), np.array([[0, 2, 1]]))
    renderer = MeshRenderer(mesh, np.array([7, 8, 9]))
    view = renderer.render(np.eye(4), np.array([[100, 0, 0], [0, 100, 0], [0, 0, 1]]), 60, 60)
    # Pixel (col 20, row 10) sees (0.4, 0.2, 2): weights 0.4 (vertex 0), 0.4 (vertex 1), 0.2 (vertex 2).
    np.testing.assert_allclose(view.color[10, 20], [102, 102, 51], atol=1)
    assert view.instance[10, 20] in (7, 8)
    assert view.instance[5, 45] == 8  # (0.9, 0.1): nearest to vertex 1
    assert view.instance[45, 5] == 9  # (0.1, 0.9): nearest to vertex 2


def test_depth_is_z_not_ray_length():
    plane = box_mesh([0, 0, 2.05], [20, 20, 0.1], [200, 200, 200])  # near side at z = 2 m
    mesh, _ = merge([plane])
    view = MeshRenderer(mesh).render(np.eye(4), K, W, H)
    np.testing.assert_allclose(view.depth[[0, 0, -1, -1], [0, -1, 0, -1]], 2.0, atol=1e-4)
    np.testing.assert_allclose(view.depth, 2.0, atol=1e-4)
    assert (view.instance == -1).all()  # no vertex ids given


def test_skipping_color_and_instance():
    mesh, ids = merge([box_mesh([0, 0, 3], [1, 1, 1], [10, 20, 30])])
    view = MeshRenderer(mesh, ids).render(np.eye(4), K, W, H, color=False, instance=False)
    assert (view.depth > 0).any()
    assert (view.color == 0).all() and (view.instance == -1).all()


def test_bev(two_boxes):
    mesh, ids, _, renderer = two_boxes
    bev = renderer.render_bev(image_size=200)
    assert bev.color.shape == (200, 200, 3) and bev.instance.shape == (200, 200)
    for obj, (centre, top) in {1: ([0, 0], 0.6), 2: ([0, 1.0], 1.0)}.items():
        col, row = np.round(bev.pixel_of(np.array(centre))[0]).astype(int)
        assert bev.instance[row, col] == obj
        assert bev.height[row, col] == pytest.approx(top, abs=1e-3)
        assert not bev.empty[row, col]
    floor_col, floor_row = np.round(bev.pixel_of(np.array([1.5, -1.5]))[0]).astype(int)
    assert bev.instance[floor_row, floor_col] == 0
    assert bev.height[floor_row, floor_col] == pytest.approx(0.0, abs=1e-3)
    # +x to the right, +y up: the back box (larger y) sits above the front one in the image.
    assert bev.pixel_of(np.array([0, 1.0]))[0, 1] < bev.pixel_of(np.array([0, 0]))[0, 1]
    np.testing.assert_allclose(bev.xy_of(bev.pixel_of(np.array([[0.3, -0.7]]))), [[0.3, -0.7]])

    # A wider window: outside the floor is empty, with nan height and no colour.
    wide = renderer.render_bev(image_size=100, bounds=(-4, -3, 4, 3), margin=0.0)
    col, row = np.round(wide.pixel_of(np.array([3.5, 0.0]))[0]).astype(int)
    assert wide.empty[row, col] and np.isnan(wide.height[row, col]) and wide.instance[row, col] == -1
    assert (wide.color[wide.empty] == 0).all()
    assert wide.metres_per_pixel == pytest.approx(8 / 100)

    # Starting the rays below the back box's lid cuts the lid off; the front box's top stays.
    cut = renderer.render_bev(image_size=200, max_height=0.8)
    col, row = np.round(cut.pixel_of(np.array([0, 1.0]))[0]).astype(int)
    assert cut.height[row, col] < 0.8
    col, row = np.round(cut.pixel_of(np.array([0, 0]))[0]).astype(int)
    assert cut.height[row, col] == pytest.approx(0.6, abs=1e-3)


def test_empty_mesh_and_bad_ids():
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)))
    view = MeshRenderer(empty).render(np.eye(4), K, W, H)
    assert (view.depth == 0).all() and (view.color == 0).all() and (view.instance == -1).all()
    assert MeshRenderer(empty).render_bev(image_size=8, bounds=(0, 0, 1, 1)).empty.all()
    mesh, ids = merge([box_mesh([0, 0, 3], [1, 1, 1], [10, 20, 30])])
    with pytest.raises(ValueError):
        MeshRenderer(mesh, ids[:-1])
