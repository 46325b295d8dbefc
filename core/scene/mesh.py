"""A triangle mesh with per-vertex colors: the in-memory form of a ScanNet `_vh_clean_2.ply`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (zero for vertices in no face)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = 2 * area
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, f[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length > 0, length, 1)).astype(np.float32)


@dataclass
class Mesh:
    """Vertices (N, 3) float32 metres, colors (N, 3) uint8, faces (F, 3) int32."""

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray
    _normals: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.colors = np.ascontiguousarray(self.colors, dtype=np.uint8)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32).reshape(-1, 3)

    @property
    def normals(self) -> np.ndarray:
        """Vertex normals, computed once on first use."""
        if self._normals is None:
            self._normals = vertex_normals(self.vertices, self.faces)
        return self._normals

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)
