"""Read and write ScanNet's binary PLY meshes (`_vh_clean_2.ply` and `_vh_clean_2.labels.ply`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from core.atomic import atomic_write
from core.scene.errors import SceneError
from core.scene.mesh import Mesh


def read_ply_mesh(path: str | Path, with_labels: bool = False) -> tuple[Mesh, np.ndarray | None]:
    """Read a PLY mesh with vertex colors and triangle faces.

    Returns the mesh and, when `with_labels`, the per-vertex `label` property (None if absent). Any
    problem (missing file, truncated data, missing properties, bad face indices) is a `SceneError`
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SceneError(path, "mesh file not found")
    try:
        # Telling plyfile that faces are triangles lets it read them as one array (10x faster).
        ply = PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
        vertex = ply["vertex"].data
        names = vertex.dtype.names or ()
        for prop in ("x", "y", "z"):
            if prop not in names:
                raise SceneError(path, f"vertex property '{prop}' missing")
        vertices = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
        if all(c in names for c in ("red", "green", "blue")):
            colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1).astype(np.uint8)
        else:
            colors = np.full((len(vertices), 3), 128, dtype=np.uint8)
        faces = _read_faces(ply, path)
        labels = np.asarray(vertex["label"]).astype(np.int64) if with_labels and "label" in names else None
    except SceneError:
        raise
    except Exception as exc:  # plyfile reports truncation and header errors with many exception types
        raise SceneError(path, f"cannot read PLY ({type(exc).__name__}: {exc})") from exc
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise SceneError(path, f"face index out of range (mesh has {len(vertices)} vertices)")
    if not np.isfinite(vertices).all():
        raise SceneError(path, "non-finite vertex coordinates")
    return Mesh(vertices, colors, faces), labels


def _read_faces(ply: PlyData, path: Path) -> np.ndarray:
    if "face" not in [e.name for e in ply.elements]:
        return np.zeros((0, 3), dtype=np.int32)
    face = ply["face"].data
    field = "vertex_indices" if "vertex_indices" in face.dtype.names else face.dtype.names[0]
    column = face[field]
    if column.dtype != object:
        return np.asarray(column, dtype=np.int32).reshape(-1, 3)
    lengths = np.fromiter((len(f) for f in column), dtype=np.int64, count=len(column))
    if len(column) and (lengths != 3).any():
        raise SceneError(path, "only triangle faces are supported")
    return np.stack(column).astype(np.int32) if len(column) else np.zeros((0, 3), dtype=np.int32)


def write_ply_mesh(path: str | Path, mesh: Mesh, labels: np.ndarray | None = None) -> None:
    """Write a mesh as ScanNet does: binary little-endian, x y z float, red green blue alpha uchar,
    faces as `list uchar int vertex_indices`; with `labels`, an extra ushort `label` per vertex."""
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    if labels is not None:
        fields.append(("label", "u2"))
    vertex = np.empty(mesh.num_vertices, dtype=fields)
    for i, axis in enumerate("xyz"):
        vertex[axis] = mesh.vertices[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = mesh.colors[:, i]
    vertex["alpha"] = 255
    if labels is not None:
        vertex["label"] = labels
    face = np.empty(mesh.num_faces, dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = mesh.faces
    data = PlyData(
        [
            PlyElement.describe(vertex, "vertex"),
            PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"}),
        ],
        byte_order="<",
    )
    atomic_write(path, lambda f: data.write(f))
