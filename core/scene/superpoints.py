"""Superpoints for meshes and point clouds that ship no `segs.json`, computed the way ScanNet's
Segmentator computes them, so that recomputed ids mean the same thing as the released ones.

The algorithm is Felzenszwalb-Huttenlocher graph segmentation over mesh edges, with edge weights from
vertex-normal differences (defaults kThresh = 0.01, segMinVerts = 20). Details matched to the reference
(`Segmentator/segmentator.cpp` in the ScanNet repository):

- Face normals are unit vectors (cross product normalised), not area-weighted.
- A vertex normal is the plain mean of the unit normals of the faces that use it (the reference blends
  them with a running average) and is *not* re-normalised: at a crease it is shorter than 1, which makes
  `1 - dot` larger there. For this reason `core.scene.mesh.vertex_normals` (area-weighted, unit length)
  is not used here.
- Every triangle (i1, i2, i3) contributes three directed edges (i1, i2), (i1, i3), (i3, i2); an edge
  shared by two triangles appears twice. The direction matters because of the convexity rule.
- Edge weight `w = 1 - dot(n_a, n_b)`, squared when `dot(n_b, p_b - p_a) > 0` (a convex edge, where a
  normal difference matters less).
- Edges are visited once in ascending weight; two components merge when `w <= threshold` of both, and the
  merged component's threshold becomes `w + k / size`. Every vertex starts with threshold `k`.
- A second pass over the same edges, still in sorted order (the reference sorts in place), joins the
  two ends of an edge whenever either component has fewer than `seg_min_verts` vertices, whatever the
  weight.

Choices that are ours:

- Weights are computed in float64 and then rounded to float32 (the reference stays in float32 throughout);
  thresholds are float32 as there.
- Ties between equal weights are broken by edge order (stable argsort); the reference's `std::sort` leaves
  that order unspecified.
- A degenerate (zero-area) face contributes a zero normal to its vertices' mean; in the reference it
  divides by zero and poisons those normals with NaN.
- Vertices in no face have no edge and keep a segment of their own, exactly as in the reference.
- Output ids are relabelled to 0..K-1 in order of first appearance (the reference writes root vertex ids).
- Point clouds: a kNN graph (directed edges from each point to its k nearest neighbours) replaces the
  mesh edges and the same weights apply; normals are unit PCA normals oriented towards a viewpoint.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.spatial import cKDTree

__all__ = ["relabel_consecutive", "segment_mesh", "segment_points"]


def relabel_consecutive(ids: np.ndarray) -> np.ndarray:
    """Map arbitrary ids to 0..K-1 in order of first appearance, so labels are dense and reproducible."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {ids.shape}")
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    return rank[inverse.reshape(-1)]


def segment_mesh(
    vertices: np.ndarray, faces: np.ndarray, k_thresh: float = 0.01, seg_min_verts: int = 20
) -> np.ndarray:
    """(N,) int64 superpoint id per vertex, relabelled to 0..K-1 in order of first appearance."""
    points = _check_points(vertices, "vertices")
    tris = _check_faces(faces, len(points))
    _check_params(k_thresh, seg_min_verts)
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    normals = _mean_face_normals(points, tris)
    # Three directed edges per face, in the reference's order: (i1, i2), (i1, i3), (i3, i2).
    a = tris[:, [0, 0, 2]].reshape(-1)
    b = tris[:, [1, 2, 1]].reshape(-1)
    return _segment_graph(points, normals, a, b, k_thresh, seg_min_verts)


def segment_points(
    points: np.ndarray,
    normals: np.ndarray | None = None,
    k_neighbors: int = 16,
    k_thresh: float = 0.01,
    seg_min_verts: int = 20,
    *,
    viewpoint: np.ndarray | None = None,
) -> np.ndarray:
    """Point cloud without faces: kNN graph (scipy cKDTree) replaces the mesh edges; normals estimated by
    local PCA (oriented consistently, e.g. towards +Z or a viewpoint) when not given.

    Estimated normals point towards `viewpoint`; the default sits above the middle of the bounding box,
    which for an indoor scan turns floors and table tops up and walls towards the room. Given normals are
    scaled to unit length. Returns (N,) int64 ids 0..K-1 in order of first appearance.
    """
    pts = _check_points(points, "points")
    _check_params(k_thresh, seg_min_verts)
    if not _is_int(k_neighbors) or k_neighbors < 1:
        raise ValueError(f"k_neighbors must be a positive integer, got {k_neighbors!r}")
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(int(k_neighbors) + 1, n)  # the query returns the point itself too
    _, nbr = cKDTree(pts).query(pts, k=k, workers=-1)
    nbr = np.asarray(nbr, dtype=np.int64).reshape(n, k)

    if normals is None:
        nrm = _pca_normals(pts, nbr, viewpoint)
    else:
        nrm = _check_points(normals, "normals")
        if len(nrm) != n:
            raise ValueError(f"normals has {len(nrm)} rows but points has {n}")
        length = np.linalg.norm(nrm, axis=1, keepdims=True)
        nrm = np.divide(nrm, length, out=np.zeros_like(nrm), where=length > 0)

    a = np.repeat(np.arange(n, dtype=np.int64), k)
    b = nbr.reshape(-1)
    keep = a != b
    return _segment_graph(pts, nrm, a[keep], b[keep], k_thresh, seg_min_verts)


# ----------------------------------------------------------------------------------------------- checks


def _check_points(array: np.ndarray, name: str) -> np.ndarray:
    """(N, 3) finite float64 copy, or a ValueError that names the argument."""
    arr = np.asarray(array)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """(F, 3) int64 faces whose indices all name a vertex."""
    arr = np.asarray(faces)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3) (triangles), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= num_vertices:
        raise ValueError(f"face indices must lie in [0, {num_vertices}), found range [{lo}, {hi}]")
    return arr.astype(np.int64)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_params(k_thresh: float, seg_min_verts: int) -> None:
    if not np.isfinite(k_thresh) or k_thresh < 0:
        raise ValueError(f"k_thresh must be a finite number >= 0, got {k_thresh!r}")
    if not _is_int(seg_min_verts) or seg_min_verts < 0:
        raise ValueError(f"seg_min_verts must be an integer >= 0, got {seg_min_verts!r}")


# ----------------------------------------------------------------------------------------------- graph


def _mean_face_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Mean of the unit normals of the faces around each vertex, left unnormalised as the reference does."""
    p0, p1, p2 = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    face_n = np.cross(p1 - p0, p2 - p0)
    length = np.linalg.norm(face_n, axis=1, keepdims=True)
    face_n = np.divide(face_n, length, out=np.zeros_like(face_n), where=length > 0)
    corners = faces.reshape(-1)  # face-major: each face's three corners in turn
    n = len(points)
    sums = np.stack(
        [np.bincount(corners, weights=np.repeat(face_n[:, c], 3), minlength=n) for c in range(3)], axis=1
    )
    counts = np.bincount(corners, minlength=n)
    return sums / np.maximum(counts, 1)[:, None]


def _pca_normals(points: np.ndarray, nbr: np.ndarray, viewpoint: np.ndarray | None) -> np.ndarray:
    """Unit normals from the covariance of each neighbourhood, flipped to face the viewpoint."""
    local = points[nbr]  # (N, k, 3)
    local = local - local.mean(axis=1, keepdims=True)
    cov = local.transpose(0, 2, 1) @ local  # batched matmul: several times faster than einsum here
    _, vecs = np.linalg.eigh(cov)
    normals = vecs[:, :, 0]  # eigenvector of the smallest eigenvalue
    if viewpoint is None:
        lo, hi = points.min(axis=0), points.max(axis=0)
        extent = float((hi - lo).max()) or 1.0
        viewpoint = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2] + extent])
    else:
        viewpoint = np.asarray(viewpoint, dtype=np.float64).reshape(-1)
        if viewpoint.shape != (3,) or not np.isfinite(viewpoint).all():
            raise ValueError(f"viewpoint must be 3 finite numbers, got {viewpoint!r}")
    flip = np.einsum("ij,ij->i", normals, viewpoint - points) < 0
    normals[flip] *= -1
    return normals


def _edge_weights(points: np.ndarray, normals: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference weights: 1 - n_a.n_b, squared on convex edges (n_b points away from a)."""
    nb = normals[b]
    w = 1.0 - np.einsum("ij,ij->i", normals[a], nb)
    # The reference tests dot(n_b, unit(p_b - p_a)) > 0; dividing by the length cannot change the sign,
    # and a zero-length edge (NaN there) is not convex in either form.
    convex = np.einsum("ij,ij->i", nb, points[b] - points[a]) > 0
    w[convex] *= w[convex]
    return w.astype(np.float32)


def _segment_graph(
    points: np.ndarray, normals: np.ndarray, a: np.ndarray, b: np.ndarray, k_thresh: float, seg_min_verts: int
) -> np.ndarray:
    """Weights, one stable sort, then the sequential merge passes in numba."""
    w = _edge_weights(points, normals, a, b)
    order = np.argsort(w, kind="stable")
    return _felzenszwalb(
        len(points),
        np.ascontiguousarray(a[order], dtype=np.int64),
        np.ascontiguousarray(b[order], dtype=np.int64),
        np.ascontiguousarray(w[order]),
        np.float32(k_thresh),
        np.int64(seg_min_verts),
    )


@numba.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    """Root of x, halving the path on the way; the partition does not depend on which node is root."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(cache=True)
def _felzenszwalb(
    num_vertices: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, k: np.float32, min_size: np.int64
) -> np.ndarray:
    """Both passes of the reference over edges sorted by weight; returns ids in order of first appearance."""
    parent = np.arange(num_vertices)
    size = np.ones(num_vertices, dtype=np.int64)
    threshold = np.full(num_vertices, k, dtype=np.float32)
    for i in range(len(w)):
        ra = _find(parent, a[i])
        rb = _find(parent, b[i])
        if ra != rb and w[i] <= threshold[ra] and w[i] <= threshold[rb]:
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            threshold[ra] = w[i] + k / np.float32(size[ra])
    for i in range(len(w)):
        ra = _find(parent, a[i])
        rb = _find(parent, b[i])
        if ra != rb and (size[ra] < min_size or size[rb] < min_size):
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
    label = np.full(num_vertices, -1, dtype=np.int64)
    out = np.empty(num_vertices, dtype=np.int64)
    count = 0
    for v in range(num_vertices):
        r = _find(parent, v)
        if label[r] < 0:
            label[r] = count
            count += 1
        out[v] = label[r]
    return out
