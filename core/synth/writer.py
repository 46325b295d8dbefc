"""Write one synthetic room as a ScanNet scene folder, byte-compatible in format with a real scan.

The mesh is written unaligned (a random rotation about Z and a shift, undone by `axisAlignment` in
`<scene>.txt`, as ScanNet does), superpoint ids are the representative vertex index of each segment (not
0..K-1, as in real segs.json files), and frames go in the SensReader export layout with camera-to-world
poses in the unaligned frame.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.atomic import atomic_write_text
from core.scene.geometry import transform_points
from core.scene.mesh import Mesh
from core.scene.plyio import write_ply_mesh

SCENE_TYPES = {  # our room types -> ScanNet's sceneType strings
    "bedroom": "Bedroom / Hotel",
    "living room": "Living room / Lounge",
    "office": "Office",
    "kitchen": "Kitchen",
    "bathroom": "Bathroom",
    "conference room": "Conference Room",
}

COLOR_SIZE = (1296, 968)
DEPTH_SIZE = (640, 480)


@dataclass
class Camera:
    """The two intrinsics of a ScanNet-like RGB-D sensor (3x3, each at its own resolution)."""

    color: np.ndarray
    depth: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Camera:
        """Intrinsics close to those of ScanNet's Structure sensor, varied a little per scan."""
        f_color = rng.uniform(1160.0, 1172.0)
        f_depth = f_color * DEPTH_SIZE[0] / COLOR_SIZE[0] * rng.uniform(0.985, 0.995)
        color = np.array(
            [[f_color, 0, 647.75 + rng.uniform(-2, 2)], [0, f_color, 483.75 + rng.uniform(-2, 2)], [0, 0, 1]]
        )
        depth = np.array([[f_depth, 0, 319.5], [0, f_depth, 239.5], [0, 0, 1]])
        return cls(color, depth)


def random_alignment(rng: np.random.Generator, extent: np.ndarray) -> np.ndarray:
    """A ScanNet-like axisAlignment: it rotates the raw scan about Z and moves it to the origin."""
    angle = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    M = np.eye(4)
    M[:2, :2] = [[c, -s], [s, c]]
    M[:2, 3] = rng.uniform(-3, 3, 2) - np.asarray(extent[:2]) / 2
    return M


def _matrix_text(M: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.9g}" for v in row) for row in np.asarray(M)) + "\n"


def representative_ids(superpoints: np.ndarray) -> np.ndarray:
    """Replace 0..K-1 superpoint ids with the smallest vertex index of each superpoint."""
    first = np.full(superpoints.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, superpoints, np.arange(len(superpoints)))
    return first[superpoints]


def write_geometry(
    folder: Path,
    scene_id: str,
    mesh: Mesh,
    superpoints: np.ndarray,
    vertex_object: np.ndarray,
    labels: list[str],
    nyu40_of: Callable[[str], int],
    alignment: np.ndarray,
) -> None:
    """Mesh, labels mesh, segs.json and aggregation.json of a scene, all written atomically."""
    raw = Mesh(transform_points(np.linalg.inv(alignment), mesh.vertices), mesh.colors, mesh.faces)
    write_ply_mesh(folder / f"{scene_id}_vh_clean_2.ply", raw)
    vertex_nyu40 = np.zeros(mesh.num_vertices, dtype=np.uint16)
    has_object = vertex_object >= 0
    vertex_nyu40[has_object] = np.array([nyu40_of(x) for x in labels], dtype=np.uint16)[
        vertex_object[has_object]
    ]
    write_ply_mesh(folder / f"{scene_id}_vh_clean_2.labels.ply", raw, labels=vertex_nyu40)

    seg_ids = representative_ids(superpoints)
    segs_name = f"{scene_id}_vh_clean_2.0.010000.segs.json"
    segs = {
        "params": {"kThresh": "0.01", "segMinVerts": "20"},
        "sceneId": scene_id,
        "segIndices": seg_ids.tolist(),
    }
    atomic_write_text(folder / segs_name, json.dumps(segs))

    groups = []
    for object_id, label in enumerate(labels):
        members = np.unique(seg_ids[vertex_object == object_id]).tolist()
        groups.append({"id": object_id, "objectId": object_id, "segments": members, "label": label})
    aggregation = {
        "sceneId": f"scannet.{scene_id}",
        "appId": "densescan.synth.v1",
        "segGroups": groups,
        "segmentsFile": f"scannet.{segs_name}",
    }
    atomic_write_text(folder / f"{scene_id}.aggregation.json", json.dumps(aggregation))


def write_meta(
    folder: Path, scene_id: str, alignment: np.ndarray, camera: Camera, room_type: str, n: int
) -> None:
    """`<scene>.txt` with ScanNet's keys."""
    lines = {
        "axisAlignment": " ".join(f"{v:.9g}" for v in alignment.reshape(-1)),
        "colorHeight": COLOR_SIZE[1],
        "colorToDepthExtrinsics": " ".join(f"{v:g}" for v in np.eye(4).reshape(-1)),
        "colorWidth": COLOR_SIZE[0],
        "depthHeight": DEPTH_SIZE[1],
        "depthWidth": DEPTH_SIZE[0],
        "fx_color": f"{camera.color[0, 0]:.6f}",
        "fx_depth": f"{camera.depth[0, 0]:.6f}",
        "fy_color": f"{camera.color[1, 1]:.6f}",
        "fy_depth": f"{camera.depth[1, 1]:.6f}",
        "mx_color": f"{camera.color[0, 2]:.6f}",
        "mx_depth": f"{camera.depth[0, 2]:.6f}",
        "my_color": f"{camera.color[1, 2]:.6f}",
        "my_depth": f"{camera.depth[1, 2]:.6f}",
        "numColorFrames": n,
        "numDepthFrames": n,
        "numIMUmeasurements": 0,
        "sceneType": SCENE_TYPES.get(room_type, "Misc."),
    }
    atomic_write_text(folder / f"{scene_id}.txt", "".join(f"{k} = {v}\n" for k, v in lines.items()))


def write_intrinsics(folder: Path, camera: Camera) -> None:
    def as4(K: np.ndarray) -> np.ndarray:
        M = np.eye(4)
        M[:3, :3] = K
        return M

    atomic_write_text(folder / "intrinsic" / "intrinsic_color.txt", _matrix_text(as4(camera.color)))
    atomic_write_text(folder / "intrinsic" / "intrinsic_depth.txt", _matrix_text(as4(camera.depth)))
    atomic_write_text(folder / "intrinsic" / "extrinsic_color.txt", _matrix_text(np.eye(4)))
    atomic_write_text(folder / "intrinsic" / "extrinsic_depth.txt", _matrix_text(np.eye(4)))


def encode_jpeg(color: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(color).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_depth_png(depth_m: np.ndarray) -> bytes:
    """Metres to ScanNet's uint16 millimetre PNG (0 = no measurement)."""
    mm = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(mm).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_frame(folder: Path, index: int, color_jpeg: bytes, depth_png: bytes, pose_raw: np.ndarray) -> None:
    """One frame in the SensReader layout. Plain writes: the whole scene folder is renamed into place
    only once it is complete."""
    for sub in ("color", "depth", "pose"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "color" / f"{index}.jpg").write_bytes(color_jpeg)
    (folder / "depth" / f"{index}.png").write_bytes(depth_png)
    (folder / "pose" / f"{index}.txt").write_text(_matrix_text(pose_raw))
