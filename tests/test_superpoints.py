"""Superpoints: outcomes on meshes built here (boxes, planes, folds), and agreement with a slow, literal
version of ScanNet's Segmentator written out in plain Python."""

from __future__ import annotations

import numpy as np
import pytest

from core.scene.superpoints import relabel_consecutive, segment_mesh, segment_points

# ------------------------------------------------------------------------------------------- helpers


def grid(origin, du, dv, nu: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """A subdivided parallelogram; its triangles face along du x dv."""
    s, t = np.meshgrid(np.arange(nu + 1) / nu, np.arange(nv + 1) / nv, indexing="ij")
    origin, du, dv = (np.asarray(x, float) for x in (origin, du, dv))
    verts = origin + s[..., None] * du + t[..., None] * dv
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    v00, v10, v11, v01 = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate(
        [np.stack([v00, v10, v11], -1).reshape(-1, 3), np.stack([v00, v11, v01], -1).reshape(-1, 3)]
    )
    return verts.reshape(-1, 3), faces


def weld(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate meshes and merge vertices at the same position, so that shared borders connect."""
    verts, faces, offset = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    v, f = np.concatenate(verts), np.concatenate(faces)
    uniq, inverse = np.unique(np.round(v, 6), axis=0, return_inverse=True)
    return uniq.astype(np.float32), inverse.reshape(-1)[f].astype(np.int32)


def box(lo, hi, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Closed axis-aligned box surface with outward faces, each side an n x n grid."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    ex, ey, ez = np.diag(hi - lo)
    return weld(
        grid(lo, ey, ex, n, n),  # bottom, -z
        grid(lo + ez, ex, ey, n, n),  # top, +z
        grid(lo, ez, ey, n, n),  # -x
        grid(lo + ex, ey, ez, n, n),  # +x
        grid(lo, ex, ez, n, n),  # -y
        grid(lo + ey, ez, ex, n, n),  # +y
    )


def folded_plane(n: int = 20, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Floor z=0 (x, y in [0, 1]) meeting a wall x=1 at 90 degrees: a concave corner, convex if flipped."""
    v, f = weld(grid((0, 0, 0), (1, 0, 0), (0, 1, 0), n, n), grid((1, 0, 0), (0, 0, 1), (0, 1, 0), n, n))
    return v, (f[:, ::-1] if flip else f)


def noisy_plane(n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    v, f = grid((0, 0, 0), (1, 0, 0), (0, 1, 0), n, n)
    v[:, 2] += np.random.default_rng(seed).normal(0, noise, len(v))
    return v.astype(np.float32), f


def box_points(lo, hi, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points sampled uniformly on a box surface, with the outward normal of the side each lies on."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    size = hi - lo
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]]).repeat(2)
    side = rng.choice(6, size=count, p=areas / areas.sum())
    pts = lo + rng.random((count, 3)) * size
    axis, upper = side // 2, side % 2 == 1
    pts[np.arange(count), axis] = np.where(upper, hi[axis], lo[axis])
    normals = np.zeros((count, 3))
    normals[np.arange(count), axis] = np.where(upper, 1.0, -1.0)
    return pts, normals


def partition(ids: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(ids == s).tolist()) for s in np.unique(ids)}


def assert_apart(ids: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """No superpoint holds a vertex of both masks."""
    assert not set(ids[first].tolist()) & set(ids[second].tolist())


def slow_segmentator(vertices: np.ndarray, faces: np.ndarray, k: float, min_verts: int) -> np.ndarray:
    """The reference algorithm spelled out one face and one edge at a time (float32 weights/thresholds)."""
    n = len(vertices)
    p = vertices.astype(np.float64)
    sums, counts, edges = np.zeros((n, 3)), np.zeros(n), []
    for i1, i2, i3 in faces.tolist():
        normal = np.cross(p[i2] - p[i1], p[i3] - p[i1])
        normal /= np.linalg.norm(normal)
        for i in (i1, i2, i3):
            sums[i] += normal
            counts[i] += 1
        edges += [(i1, i2), (i1, i3), (i3, i2)]
    normals = sums / np.maximum(counts, 1)[:, None]
    weighted = []
    for a, b in edges:
        w = 1.0 - float(normals[a] @ normals[b])
        if float(normals[b] @ (p[b] - p[a])) > 0:
            w = w * w
        weighted.append((np.float32(w), a, b))
    weighted.sort(key=lambda e: e[0])  # stable, like the module's tie order
    parent, size = list(range(n)), [1] * n
    threshold = [np.float32(k)] * n

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for w, a, b in weighted:
        ra, rb = find(a), find(b)
        if ra != rb and w <= threshold[ra] and w <= threshold[rb]:
            parent[ra] = rb
            size[rb] += size[ra]
            threshold[rb] = np.float32(w + np.float32(k) / np.float32(size[rb]))
    for _, a, b in weighted:
        ra, rb = find(a), find(b)
        if ra != rb and (size[ra] < min_verts or size[rb] < min_verts):
            parent[ra] = rb
            size[rb] += size[ra]
    return np.array([find(v) for v in range(n)])


# ------------------------------------------------------------------------------------------- meshes


def test_two_disjoint_boxes_never_share_a_superpoint_and_split_into_sides():
    va, fa = box((0, 0, 0), (1, 1, 1))
    vb, fb = box((2, 0, 0), (3, 1.5, 0.8))
    v, f = weld((va, fa), (vb, fb))
    ids = segment_mesh(v, f)
    in_a = v[:, 0] < 1.5
    assert_apart(ids, in_a, ~in_a)
    # Box edges are 90 degree creases: each flat side becomes one superpoint, edge vertices join a side.
    assert len(np.unique(ids[in_a])) == 6
    assert len(np.unique(ids[~in_a])) == 6


def test_flat_subdivided_plane_is_one_segment():
    v, f = grid((0, 0, 0), (2, 0, 0), (0, 1, 0), 40, 20)
    ids = segment_mesh(v, f)
    assert ids.dtype == np.int64 and ids.shape == (len(v),)
    assert np.all(ids == 0)


@pytest.mark.parametrize("flip", [False, True], ids=["concave", "convex"])
def test_fold_at_90_degrees_separates_the_two_sides(flip):
    v, f = folded_plane(flip=flip)
    ids = segment_mesh(v, f)
    floor, wall = v[:, 0] < 1 - 1e-6, v[:, 2] > 1e-6
    assert_apart(ids, floor, wall)
    assert len(np.unique(ids[floor])) == 1 and len(np.unique(ids[wall])) == 1


def test_matches_a_literal_transcription_of_the_reference():
    # A noisy closed box: many distinct weights, convex and concave edges. Closed, so that no vertex lies on
    # a single face, where an in-face edge makes the convexity test a rounding coin flip (in the reference
    # too).
    v, f = box((0, 0, 0), (1, 1, 1), n=7)
    v = v + np.random.default_rng(3).normal(0, 0.01, v.shape).astype(np.float32)
    for k, min_verts in [(0.01, 5), (0.05, 20), (0.002, 0)]:
        ours = segment_mesh(v, f, k_thresh=k, seg_min_verts=min_verts)
        ref = slow_segmentator(v, f, k, min_verts)
        assert len(np.unique(ref)) > 1
        assert partition(ours) == partition(ref)


def test_seg_min_verts_is_honoured():
    v, f = noisy_plane(40, noise=0.02)
    loose = np.bincount(segment_mesh(v, f, seg_min_verts=0))
    assert loose.min() < 20, "the mesh must produce small segments for this test to mean anything"
    for min_verts in (20, 50):
        sizes = np.bincount(segment_mesh(v, f, seg_min_verts=min_verts))
        assert sizes.min() >= min_verts


def test_small_components_and_lone_vertices_keep_their_own_ids():
    v, f = grid((0, 0, 0), (1, 0, 0), (0, 1, 0), 10, 10)
    tri = np.array([[5, 5, 1], [5.1, 5, 1], [5, 5.1, 1]])
    lone = np.array([[9.0, 9.0, 9.0]])
    verts = np.concatenate([v, tri, lone])
    faces = np.concatenate([f, [[len(v), len(v) + 1, len(v) + 2]]])
    ids = segment_mesh(verts, faces, seg_min_verts=20)
    assert len(np.unique(ids[: len(v)])) == 1
    assert len(np.unique(ids[len(v) : len(v) + 3])) == 1
    assert len({ids[0], ids[len(v)], ids[-1]}) == 3


def test_ids_are_consecutive_in_order_of_first_appearance():
    v, f = noisy_plane(30, noise=0.02, seed=1)
    ids = segment_mesh(v, f, seg_min_verts=5)
    uniq, first = np.unique(ids, return_index=True)
    assert np.array_equal(uniq, np.arange(len(uniq)))
    assert np.all(np.diff(first) > 0)
    assert len(uniq) > 5


@pytest.mark.parametrize("min_verts", [0, 20])
def test_larger_k_thresh_gives_fewer_or_equal_segments(min_verts):
    # Scan-like noise, where segments hold tens to hundreds of vertices. (Where nearly every vertex stays a
    # singleton, the size-merge pass alone decides and the count need not fall monotonically.)
    v, f = noisy_plane(40, noise=0.002, seed=2)
    ks = (0.001, 0.003, 0.01, 0.03, 0.1, 1.0)
    counts = [len(np.unique(segment_mesh(v, f, k_thresh=k, seg_min_verts=min_verts))) for k in ks]
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert counts[0] > 3 * counts[-1]


def test_no_faces_and_empty_meshes():
    v = np.random.default_rng(0).random((5, 3))
    assert np.array_equal(segment_mesh(v, np.zeros((0, 3), np.int32)), np.arange(5))
    assert segment_mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64)).shape == (0,)


def test_degenerate_faces_do_not_break_segmentation():
    v, f = grid((0, 0, 0), (1, 0, 0), (0, 1, 0), 10, 10)
    f = np.concatenate([f, [[0, 0, 1], [3, 3, 3]]])  # zero-area faces, as decimated scans sometimes have
    assert np.all(segment_mesh(v, f) == 0)


@pytest.mark.parametrize(
    "vertices, faces, message",
    [
        (np.zeros((4, 2)), np.array([[0, 1, 2]]), "vertices must have shape"),
        (np.zeros((4, 3)), np.array([[0, 1, 2, 3]]), "faces must have shape"),
        (np.zeros((4, 3)), np.array([[0, 1, 4]]), "face indices"),
        (np.zeros((4, 3)), np.array([[0, -1, 2]]), "face indices"),
        (np.zeros((4, 3)), np.array([[0.0, 1.0, 2.0]]), "integer"),
        (np.full((4, 3), np.nan), np.array([[0, 1, 2]]), "NaN"),
    ],
)
def test_bad_mesh_input_raises(vertices, faces, message):
    with pytest.raises(ValueError, match=message):
        segment_mesh(vertices, faces)


def test_bad_parameters_raise():
    v, f = grid((0, 0, 0), (1, 0, 0), (0, 1, 0), 2, 2)
    with pytest.raises(ValueError, match="k_thresh"):
        segment_mesh(v, f, k_thresh=-0.1)
    with pytest.raises(ValueError, match="seg_min_verts"):
        segment_mesh(v, f, seg_min_verts=-1)


# ------------------------------------------------------------------------------------------- points


@pytest.mark.parametrize("given_normals", [False, True])
def test_point_cloud_keeps_two_boxes_apart(given_normals):
    rng = np.random.default_rng(0)
    pa, na = box_points((0, 0, 0), (1, 1, 1), 3000, rng)
    pb, nb = box_points((1.5, 0.2, 0), (2.5, 1.0, 0.7), 2500, rng)
    pts, normals = np.concatenate([pa, pb]), np.concatenate([na, nb])
    ids = segment_points(pts, normals if given_normals else None)
    in_a = np.arange(len(pts)) < len(pa)
    assert_apart(ids, in_a, ~in_a)
    assert len(np.unique(ids[in_a])) >= 2 and len(np.unique(ids[~in_a])) >= 2


def test_point_cloud_plane_is_one_segment_and_fold_separates():
    rng = np.random.default_rng(1)
    plane = np.column_stack([rng.random((2000, 2)) * 2, np.zeros(2000)])
    assert np.all(segment_points(plane) == 0)

    floor = np.column_stack([rng.random((1500, 2)), np.zeros(1500)])
    wall = np.column_stack([np.ones(1500), rng.random((1500, 2))])
    pts = np.concatenate([floor, wall])
    ids = segment_points(pts)
    assert_apart(ids, pts[:, 0] < 0.85, pts[:, 2] > 0.15)


def test_point_cloud_bad_input_raises():
    pts = np.random.default_rng(0).random((50, 3))
    with pytest.raises(ValueError, match="points must have shape"):
        segment_points(pts[:, :2])
    with pytest.raises(ValueError, match="normals has"):
        segment_points(pts, normals=pts[:10])
    with pytest.raises(ValueError, match="k_neighbors"):
        segment_points(pts, k_neighbors=0)
    assert segment_points(pts[:1]).tolist() == [0]


def test_relabel_consecutive():
    assert relabel_consecutive(np.array([5, 5, -1, 3, 5, 3])).tolist() == [0, 0, 1, 2, 0, 2]
    assert relabel_consecutive(np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError):
        relabel_consecutive(np.zeros((2, 2)))
