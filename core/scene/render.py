"""CPU ray-cast renderer for meshes: posed RGB-D + instance frames and top-down BEV images.

Built on `open3d.t.geometry.RaycastingScene` so the synthetic dataset, the Ross3D BEV targets and the
annotation pipeline can render without a GPU. Conventions:

- Cameras are OpenCV (x right, y down, z forward) with camera-to-world poses, as in `geometry`.
- Pixel centres sit at integer coordinates: pixel (col, row) is the ray through u = col, v = row, the
  OpenCV convention that `geometry.backproject_depth` inverts exactly. A point projected by
  `geometry.project` to (u, v) therefore lands in pixel (round(u), round(v)).
- Depth is the z coordinate in the camera frame (not the ray length), 0 where nothing is hit.
- open3d's `primitive_uvs` (u, v) weight triangle vertices 1 and 2; vertex 0 gets 1 - u - v.
- A pixel's instance is the id of the hit triangle's vertex with the largest barycentric weight, so
  instance borders follow the mesh's vertex labels rather than blending them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from core.scene.checks import intrinsics_problem
from core.scene.geometry import as_intrinsics
from core.scene.mesh import Mesh


@dataclass
class RenderedView:
    """One rendered frame; every image is (H, W)."""

    color: np.ndarray  # (H, W, 3) uint8 barycentric vertex colours, 0 where no hit
    depth: np.ndarray  # (H, W) float32 camera-frame z in metres, 0 where no hit
    instance: np.ndarray  # (H, W) int32 instance id, -1 where no hit or unannotated


@dataclass
class BEVImage:
    """Top-down orthographic view along -Z of the (axis-aligned) scene.

    Orientation: columns grow with +x and rows grow with -y, so row 0 is at the largest y and the image
    reads like a map with +y up. `origin_xy` is the world xy of the centre of pixel (col 0, row 0).
    """

    color: np.ndarray  # (S, S, 3) uint8, 0 where empty
    instance: np.ndarray  # (S, S) int32, -1 where empty or unannotated
    height: np.ndarray  # (S, S) float32 world z of the top surface, nan where empty
    empty: np.ndarray  # (S, S) bool: no surface under this pixel (excluded from Ross3D's BEV loss)
    origin_xy: np.ndarray  # (2,) float64 world xy of the centre of pixel (0, 0)
    metres_per_pixel: float

    def pixel_of(self, xy: np.ndarray) -> np.ndarray:
        """World xy (N, 2) -> float pixel coordinates (N, 2) as (col, row); round them to index."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        col = (xy[:, 0] - self.origin_xy[0]) / self.metres_per_pixel
        row = (self.origin_xy[1] - xy[:, 1]) / self.metres_per_pixel
        return np.stack([col, row], axis=1)

    def xy_of(self, pixels: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) as (col, row) -> world xy (N, 2); the inverse of `pixel_of`."""
        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        x = self.origin_xy[0] + pixels[:, 0] * self.metres_per_pixel
        y = self.origin_xy[1] - pixels[:, 1] * self.metres_per_pixel
        return np.stack([x, y], axis=1)


class MeshRenderer:
    """Renders one mesh from many cameras; build once per scene and call `render` per frame.

    The ray-casting scene (BVH) and the per-face colour and instance tables are built once and reused,
    which is what makes 200+ frames cheap. Per-frame rays need no cache: see `_pinhole_rays`.
    """

    def __init__(self, mesh: Mesh, vertex_instance: np.ndarray | None = None):
        self.mesh = mesh
        self._scene = o3d.t.geometry.RaycastingScene()
        if mesh.num_faces:
            self._scene.add_triangles(
                o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32))
            )
        # Per channel, vertex 0's colour (+ 0.5, to round on the cast to uint8) and the differences to
        # vertices 1 and 2 of every face, as contiguous 1-D tables: c0 + u (c1 - c0) + v (c2 - c0).
        corners = mesh.colors[mesh.faces].astype(np.float32)  # (F, 3 vertices, 3 channels)
        corners[:, 1:] -= corners[:, :1]
        corners[:, 0] += 0.5
        self._color_tables = [[np.ascontiguousarray(corners[:, k, c]) for k in range(3)] for c in range(3)]
        self._face_instance: np.ndarray | None = None  # (3 F,) ids of each face's vertices 0, 1, 2
        if vertex_instance is not None:
            vertex_instance = np.asarray(vertex_instance).reshape(-1)
            if len(vertex_instance) != mesh.num_vertices:
                raise ValueError(
                    f"vertex_instance has {len(vertex_instance)} ids for {mesh.num_vertices} vertices"
                )
            self._face_instance = vertex_instance.astype(np.int32)[mesh.faces].reshape(-1)

    # ---------------------------------------------------------------------------------------- frames

    def render(
        self,
        pose_c2w: np.ndarray,
        intrinsics: np.ndarray,
        width: int,
        height: int,
        color: bool = True,
        instance: bool = True,
    ) -> RenderedView:
        """Render a pinhole view; with `color`/`instance` False those images are zeros / -1 (faster)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        pose = np.asarray(pose_c2w, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError(f"pose must be a finite 4x4 camera-to-world matrix, got shape {pose.shape}")
        K = as_intrinsics(intrinsics)
        problem = intrinsics_problem(K)
        if problem is not None:  # NaN or zero focal lengths make NaN rays, which open3d may chase forever
            raise ValueError(problem)
        rays = _pinhole_rays(pose, K, width, height)
        hits = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays))

        # With z = 1 in the camera frame, the hit distance in units of the direction is the z-depth.
        t_hit = hits["t_hit"].numpy()
        hit = np.isfinite(t_hit).reshape(-1)
        depth = np.where(hit, t_hit.reshape(-1), 0).astype(np.float32)
        rgb, inst = self._shade(hits, hit, color, instance)
        return RenderedView(
            color=rgb.reshape(height, width, 3),
            depth=depth.reshape(height, width),
            instance=inst.reshape(height, width),
        )

    def _shade(
        self, hits: dict[str, o3d.core.Tensor], hit: np.ndarray, color: bool, instance: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat (N, 3) uint8 colours and (N,) int32 instance ids of the cast rays.

        Works on every ray (a miss reads the last face, thanks to mode="clip") and blanks the misses, which
        is cheaper than gathering and scattering the hits. Every array is 1-D and reused: numpy is slow on
        (N, 3) arrays, whose short last axis it loops over row by row.
        """
        n = len(hit)
        rgb = np.zeros((n, 3), dtype=np.uint8)
        inst = np.full(n, -1, dtype=np.int32)
        want_instance = instance and self._face_instance is not None
        if not (color or want_instance) or not hit.any():
            return rgb, inst
        miss = ~hit
        prim = hits["primitive_ids"].numpy().reshape(-1)
        uv = hits["primitive_uvs"].numpy().reshape(-1, 2)
        u, v = uv[:, 0], uv[:, 1]  # weights of vertices 1 and 2; vertex 0 gets 1 - u - v
        if color:
            value, term = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
            for c, (c0_table, d1_table, d2_table) in enumerate(self._color_tables):
                np.take(c0_table, prim, out=value, mode="clip")
                np.take(d1_table, prim, out=term, mode="clip")
                term *= u
                value += term
                np.take(d2_table, prim, out=term, mode="clip")
                term *= v
                value += term
                np.clip(value, 0, 255, out=value)
                value[miss] = 0
                rgb[:, c] = value
        if want_instance:
            corner = np.where(u > v, np.uint32(1), np.uint32(2))
            corner[1.0 - u - v >= np.maximum(u, v)] = 0
            corner += prim * np.uint32(3)  # misses wrap around, are clipped, then blanked
            inst = np.take(self._face_instance, corner, mode="clip")
            inst[miss] = -1
        return rgb, inst

    # ------------------------------------------------------------------------------------------- BEV

    def render_bev(
        self,
        image_size: int = 432,
        margin: float = 0.05,
        bounds: tuple[float, float, float, float] | None = None,
        max_height: float | None = None,
    ) -> BEVImage:
        """Top-down orthographic image of the scene, looking along -Z.

        `bounds` is (xmin, ymin, xmax, ymax) in metres (default: the mesh's xy extent). The image is square:
        its side is the longer of the two extents plus `margin` times that on each side, and the shorter
        side is padded so that pixels stay square; see `BEVImage` for the pixel orientation. Rays start
        at `max_height` (default: just above the mesh's top), so a height below the ceiling cuts the
        ceiling off (a ray starting inside a closed object sees that object's inner faces).
        """
        if image_size <= 0:
            raise ValueError("image_size must be positive")
        if bounds is None:
            if self.mesh.num_vertices == 0:
                raise ValueError("an empty mesh has no bounds: pass bounds")
            lo, hi = self.mesh.vertices[:, :2].min(axis=0), self.mesh.vertices[:, :2].max(axis=0)
        else:
            xmin, ymin, xmax, ymax = (float(b) for b in bounds)
            lo, hi = np.array([xmin, ymin]), np.array([xmax, ymax])
        lo, hi = lo.astype(np.float64), hi.astype(np.float64)
        side = max(float((hi - lo).max()), 1e-3) * (1.0 + 2.0 * margin)
        mpp = side / image_size
        centre = (lo + hi) / 2
        origin_xy = np.array([centre[0] - side / 2 + mpp / 2, centre[1] + side / 2 - mpp / 2])

        if max_height is not None:
            top = float(max_height)
        elif self.mesh.num_vertices:
            top = float(self.mesh.vertices[:, 2].max()) + 0.01
        else:
            top = 0.0
        col, row = np.meshgrid(np.arange(image_size), np.arange(image_size))
        rays = np.zeros((image_size * image_size, 6), dtype=np.float32)
        rays[:, 0] = (origin_xy[0] + col * mpp).reshape(-1)
        rays[:, 1] = (origin_xy[1] - row * mpp).reshape(-1)
        rays[:, 2] = top
        rays[:, 5] = -1.0
        hits = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays))

        t_hit = hits["t_hit"].numpy()
        hit = np.isfinite(t_hit)
        height = np.where(hit, top - t_hit, np.nan).astype(np.float32)
        rgb, inst = self._shade(hits, hit, color=True, instance=True)
        shape = (image_size, image_size)
        return BEVImage(
            color=rgb.reshape(*shape, 3),
            instance=inst.reshape(shape),
            height=height.reshape(shape),
            empty=~hit.reshape(shape),
            origin_xy=origin_xy,
            metres_per_pixel=mpp,
        )


def _pinhole_rays(pose_c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """World rays (H, W, 6) through the integer pixel centres; directions have camera-frame z = 1.

    The direction R [x, y, 1] is a column term R[:, 0] x(col) plus a row term R[:, 1] y(row) + R[:, 2],
    so each component is an outer sum written straight into the ray buffer. That costs less than
    rotating a cached (H*W, 3) direction array, and avoids a BLAS call, whose worker threads spin and
    slow down open3d's own threads.
    """
    R, t = pose_c2w[:3, :3], pose_c2w[:3, 3]
    x = (np.arange(width) - K[0, 2]) / K[0, 0]
    y = (np.arange(height) - K[1, 2]) / K[1, 1]
    col_term = (x[:, None] * R[:, 0]).astype(np.float32)  # (W, 3)
    row_term = (y[:, None] * R[:, 1] + R[:, 2]).astype(np.float32)  # (H, 3)
    rays = np.empty((height, width, 6), dtype=np.float32)
    for k in range(3):
        rays[:, :, k] = t[k]
        np.add(row_term[:, k, None], col_term[None, :, k], out=rays[:, :, 3 + k])
    return rays
