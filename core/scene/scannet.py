"""Load a ScanNet-format scene folder (REFERENCE §1) into one `Scene`, in the axis-aligned frame.

The same reader serves real ScanNet scans and the project's synthetic ones. Required: the mesh. Optional
parts (superpoints, instances, alignment, frames) are reported in `Scene.notes` when absent, never fatal;
a present but broken file is a `SceneError` naming the file.

Nothing is cast silently: `segIndices`, `objectId`s and `segments` must be JSON integers (a float or a
boolean is refused, not truncated), `objectId`s are unique, labels are non-empty strings, the mesh has
vertices and faces, and the alignment and camera matrices are checked by `checks`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.scene.checks import check_rigid
from core.scene.errors import SceneError
from core.scene.frames import FrameSet, find_frames, load_frames
from core.scene.geometry import aabb_of, transform_points
from core.scene.mesh import Mesh
from core.scene.objects import ObjectInfo
from core.scene.plyio import read_ply_mesh

if TYPE_CHECKING:
    from core.scene.labels import LabelMap

_SCENE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Instance:
    """One annotated object: ScanNet `segGroups[i]`."""

    object_id: int  # 0-based `objectId`, what ScanRefer's object_id refers to
    label: str  # raw category as annotated
    segments: list[int]
    vertex_indices: np.ndarray


def read_json(path: Path) -> Any:
    """Parse a JSON file; every way it can fail is a `SceneError` naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise SceneError(path, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise SceneError(path, "malformed JSON: nested too deeply") from None
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8, an integer of thousands of digits
        raise SceneError(path, f"cannot read ({exc})") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file whose top level must be an object (segs.json, aggregation.json)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise SceneError(path, f"expected a JSON object at the top level, found {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return type(value) is int  # a JSON integer; bool is a subclass of int and is refused


def _int_list(path: Path, values: Any, where: str) -> list[int]:
    """`values` when it is a list of JSON integers, else a `SceneError` saying what was found where."""
    if not isinstance(values, list):
        raise SceneError(path, f"{where} must be a list of integers, found {_json_type(values)}")
    for i, v in enumerate(values):
        if not _is_int(v):
            raise SceneError(path, f"{where}[{i}] must be an integer, found {_json_type(v)} {v!r}")
    return values


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise SceneError(path, f"cannot read ({exc})") from None


def read_axis_alignment(path: Path) -> np.ndarray | None:
    """The `axisAlignment` of a `<scene>.txt` meta file, or None when the line is absent (test scenes)."""
    for line in _read_lines(path):
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            try:
                values = np.array(value.split(), dtype=np.float64)
            except ValueError as exc:
                raise SceneError(path, f"axisAlignment is not 16 numbers ({exc})") from exc
            if values.size != 16:
                raise SceneError(path, f"axisAlignment must be 16 numbers, found {values.size}")
            return check_rigid(values.reshape(4, 4), path, "axisAlignment")
    return None


def read_meta(path: Path) -> dict[str, str]:
    meta = {}
    for line in _read_lines(path):
        key, sep, value = line.partition("=")
        if sep:
            meta[key.strip()] = value.strip()
    return meta


def read_segments(path: Path, num_vertices: int) -> np.ndarray:
    """`segIndices` of a segs.json, checked against the mesh's vertex count."""
    data = read_json_object(path)
    if "segIndices" not in data:
        raise SceneError(path, "field 'segIndices' missing")
    try:
        seg = np.asarray(_int_list(path, data["segIndices"], "segIndices"), dtype=np.int64)
    except OverflowError:
        raise SceneError(path, "segIndices holds an integer too large for 64 bits") from None
    if seg.ndim != 1 or len(seg) != num_vertices:
        raise SceneError(path, f"segIndices has {seg.size} entries but the mesh has {num_vertices} vertices")
    return seg


def read_instances(path: Path, segments: np.ndarray) -> list[Instance]:
    """segGroups of an aggregation.json mapped to vertices through the superpoints."""
    data = read_json_object(path)
    groups = data.get("segGroups")
    if not isinstance(groups, list):
        raise SceneError(path, "field 'segGroups' missing or not a list")
    seg_ids, inverse = np.unique(segments, return_inverse=True)
    instances = []
    seen: dict[int, int] = {}  # objectId -> index of the group that gave it
    for i, group in enumerate(groups):
        object_id, label, segs = _read_group(path, group, f"segGroups[{i}]")
        if object_id in seen:
            raise SceneError(
                path, f"segGroups[{i}]: objectId {object_id} already given by segGroups[{seen[object_id]}]"
            )
        seen[object_id] = i
        member = np.isin(seg_ids, segs)
        instances.append(Instance(object_id, label, segs, np.flatnonzero(member[inverse])))
    return instances


def _read_group(path: Path, group: Any, where: str) -> tuple[int, str, list[int]]:
    """(objectId, label, segments) of one segGroup, each of exactly the JSON type ScanNet writes."""
    if not isinstance(group, dict):
        raise SceneError(path, f"{where} is malformed: expected an object, found {_json_type(group)}")
    key = "id" if "objectId" not in group and "id" in group else "objectId"  # old exports: only `id`
    for name in (key, "label", "segments"):
        if name not in group:
            raise SceneError(path, f"{where} is malformed: field '{name}' missing")
    object_id, label = group[key], group["label"]
    if not _is_int(object_id) or object_id < 0:
        raise SceneError(
            path, f"{where}.{key} must be a non-negative integer, found {_json_type(object_id)} {object_id!r}"
        )
    if not isinstance(label, str) or not label.strip():
        raise SceneError(
            path, f"{where}.label must be a non-empty string, found {_json_type(label)} {label!r}"
        )
    return object_id, label, _int_list(path, group["segments"], f"{where}.segments")


def scene_files(folder: Path, scene_id: str) -> dict[str, Path | None]:
    """The standard file paths of a scene folder (None where an optional file is absent)."""

    def first(*names: str) -> Path | None:
        return next((folder / n for n in names if (folder / n).is_file()), None)

    segs = sorted(folder.glob(f"{scene_id}_vh_clean_2*.segs.json"))
    return {
        "mesh": folder / f"{scene_id}_vh_clean_2.ply",
        "labels_mesh": first(f"{scene_id}_vh_clean_2.labels.ply"),
        "segs": segs[0] if segs else None,
        "aggregation": first(f"{scene_id}.aggregation.json", f"{scene_id}_vh_clean.aggregation.json"),
        "meta": first(f"{scene_id}.txt"),
    }


@dataclass
class Scene:
    """A ScanNet scan in the axis-aligned frame."""

    scene_id: str
    folder: Path
    mesh: Mesh  # aligned vertices
    axis_alignment: np.ndarray  # 4x4, raw mesh frame -> aligned frame
    segments: np.ndarray | None  # (N,) raw superpoint ids from segs.json
    instances: list[Instance]
    frames: FrameSet | None
    meta: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # optional parts that were missing
    label_map: LabelMap | None = None

    @classmethod
    def load(
        cls,
        folder: str | Path,
        frames_dir: str | Path | None = None,
        label_map: LabelMap | None = None,
        with_frames: bool = True,
    ) -> Scene:
        """Load the scene in `folder` (its name is the scene id)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise SceneError(folder, "scene folder not found")
        scene_id = folder.name
        files = scene_files(folder, scene_id)
        mesh_raw, _ = read_ply_mesh(files["mesh"])
        if mesh_raw.num_vertices == 0 or mesh_raw.num_faces == 0:
            raise SceneError(
                files["mesh"],
                f"empty mesh ({mesh_raw.num_vertices} vertices, {mesh_raw.num_faces} faces): "
                "a scan needs both",
            )
        notes: list[str] = []

        alignment, meta = np.eye(4), {}
        if files["meta"] is not None:
            meta = read_meta(files["meta"])
            found = read_axis_alignment(files["meta"])
            if found is None:
                notes.append("no axisAlignment in meta file (identity used)")
            else:
                alignment = found
        else:
            notes.append(f"no {scene_id}.txt (identity alignment)")
        mesh = Mesh(transform_points(alignment, mesh_raw.vertices), mesh_raw.colors, mesh_raw.faces)

        segments = None
        if files["segs"] is not None:
            segments = read_segments(files["segs"], mesh.num_vertices)
        else:
            notes.append("no segs.json (superpoints computed from the mesh on demand)")

        instances: list[Instance] = []
        if files["aggregation"] is None:
            notes.append("no aggregation.json (no instance annotations)")
        elif segments is None:
            notes.append("aggregation.json present but no segs.json: instances cannot be mapped")
        else:
            instances = read_instances(files["aggregation"], segments)

        frames = None
        if with_frames:
            found_frames = find_frames(folder, scene_id, Path(frames_dir) if frames_dir else None)
            if found_frames is None:
                notes.append("no RGB-D frames found")
            else:
                frames = load_frames(*found_frames, alignment)
        return cls(scene_id, folder, mesh, alignment, segments, instances, frames, meta, notes, label_map)

    # ----------------------------------------------------------------------------------- derived views

    @cached_property
    def superpoints(self) -> np.ndarray:
        """(N,) superpoint ids relabelled 0..K-1: segs.json when present, else computed from the mesh."""
        from core.scene.superpoints import relabel_consecutive, segment_mesh

        if self.segments is not None:
            return relabel_consecutive(self.segments)
        return segment_mesh(self.mesh.vertices, self.mesh.faces)

    @cached_property
    def vertex_instance(self) -> np.ndarray:
        """(N,) object id of each vertex, -1 where unannotated."""
        out = np.full(self.mesh.num_vertices, -1, dtype=np.int32)
        for inst in self.instances:
            out[inst.vertex_indices] = inst.object_id
        return out

    def instance(self, object_id: int) -> Instance:
        for inst in self.instances:
            if inst.object_id == object_id:
                return inst
        raise KeyError(f"{self.scene_id} has no object {object_id}")

    @property
    def categories(self) -> list[str]:
        """Distinct raw labels, or mapped NYU40 names when a label table was given."""
        names = {self.semantic_name(inst.label) for inst in self.instances}
        return sorted(names)

    def semantic_name(self, raw_label: str) -> str:
        return self.label_map.nyu40_name(raw_label) if self.label_map is not None else raw_label

    def vertex_semantic(self, scheme: str = "nyu40") -> np.ndarray:
        """(N,) semantic id per vertex (0 = unannotated); needs a label table."""
        if self.label_map is None:
            raise SceneError(self.folder, "no label table given: pass scannetv2-labels.combined.tsv")
        lookup = self.label_map.nyu40_id if scheme == "nyu40" else self.label_map.scannet200_id
        out = np.zeros(self.mesh.num_vertices, dtype=np.int32)
        for inst in self.instances:
            out[inst.vertex_indices] = lookup(inst.label)
        return out

    def objects(self) -> list[ObjectInfo]:
        """Every annotated instance with vertices, as an `ObjectInfo` with its aligned box."""
        out = []
        for inst in self.instances:
            if len(inst.vertex_indices):
                box = aabb_of(self.mesh.vertices[inst.vertex_indices])
                out.append(ObjectInfo(inst.object_id, inst.label, box))
        return out


# --------------------------------------------------------------------------------------- scene roots


def scans_dir(root: str | Path) -> Path:
    """The folder holding scene folders: `root` itself, or `root/scans` for a dataset root."""
    root = Path(root)
    if not root.is_dir():
        raise SceneError(root, "scans folder not found")
    nested = root / "scans"
    return nested if nested.is_dir() else root


def list_scenes(root: str | Path, ids: list[str] | None = None) -> list[str]:
    """Scene ids under a scans root (folders holding a `<id>_vh_clean_2.ply`), optionally filtered."""
    folder = scans_dir(root)
    found = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and (p / f"{p.name}_vh_clean_2.ply").is_file()
    )
    if ids is None:
        return found
    for scene_id in ids:
        scene_folder(root, scene_id)
    return [s for s in found if s in set(ids)]


def scene_folder(root: str | Path, scene_id: str) -> Path:
    """The folder of `scene_id` under `root`, refusing ids that are not plain folder names under it."""
    folder = scans_dir(root)
    if not _SCENE_ID.match(scene_id) or scene_id in {".", ".."}:
        raise SceneError(folder, f"invalid scene id {scene_id!r}")
    path = (folder / scene_id).resolve()
    if path.parent != folder.resolve() or not path.is_dir():
        raise SceneError(folder, f"no scene {scene_id!r} under this root")
    return path


def load_scene(
    root: str | Path,
    scene_id: str,
    frames_dir: str | Path | None = None,
    label_map: LabelMap | None = None,
    with_frames: bool = True,
) -> Scene:
    """Load one scene of a scans root by id (validated)."""
    return Scene.load(scene_folder(root, scene_id), frames_dir, label_map, with_frames)
