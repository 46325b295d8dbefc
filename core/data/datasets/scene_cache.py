"""Scenes as training arrays, cached on disk: loading a mesh and its annotations once, not once per epoch.

A `CachedScene` holds what the models and their losses need, per mesh vertex in the axis-aligned frame:
`xyz`, `rgb`, the instance (ScanNet objectId, -1 unannotated) and semantic (NYU40 id, 0 unannotated)
labels, the superpoint ids (0..K-1, from segs.json, or computed from the mesh when the config allows),
and the voxelisation at the config's voxel size (`voxels.voxel_grid`); plus the scene's object table
(object ids and raw labels).

Cache files: `<cache_dir>/<scene_id>.<config hash>.npz` (plain numpy, no pickle), so several voxel sizes
live side by side. Each file stores its key: the config fields that change the arrays, a digest of the
label table, a format version, and the size and mtime of every source file. A file whose key differs
(a source file was edited or replaced, or segs.json appeared or vanished) or that cannot be read is
rebuilt; writes are atomic (temp file, then rename), so concurrent processes at worst build twice.

Errors are `DataError`s naming the scene and the file: a scene without superpoints (unless
`compute_superpoints`), without instance annotations (when `require_instances`), or whose files
disagree (reported by `core.scene` as `SceneError`, re-raised here with the scene id).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.atomic import atomic_write
from core.data.datasets.voxels import voxel_grid
from core.data.errors import DataError
from core.scene.errors import SceneError
from core.scene.labels import LabelMap
from core.scene.scannet import load_scene, scans_dir, scene_files, scene_folder

CACHE_VERSION = 1  # bump when the arrays or their meaning change: every cache file is then rebuilt
LABEL_TABLE_NAME = "scannetv2-labels.combined.tsv"


@dataclass(frozen=True)
class SceneCacheConfig:
    voxel_size: float = 0.02  # metres (2 cm, scale 50: REFERENCE §4)
    compute_superpoints: bool = False  # no segs.json: compute them from the mesh (slow) instead of an error
    require_instances: bool = True  # no aggregation.json: an error (training needs instance labels)
    memory_scenes: int = 16  # scenes kept in memory by one `SceneCache` (least recently used dropped)

    def key_fields(self) -> dict:
        """The fields that change the cached arrays (memory_scenes does not)."""
        fields = asdict(self)
        fields.pop("memory_scenes")
        return fields


@dataclass
class CachedScene:
    scene_id: str
    xyz: np.ndarray  # (N, 3) float32 metres, axis-aligned
    rgb: np.ndarray  # (N, 3) uint8
    instance: np.ndarray  # (N,) int32 objectId, -1 where unannotated
    semantic: np.ndarray  # (N,) int32 NYU40 id, 0 where unannotated
    superpoint: np.ndarray  # (N,) int64 superpoint id 0..K-1
    voxel_coords: np.ndarray  # (V, 3) int32 non-negative grid coordinates
    point_to_voxel: np.ndarray  # (N,) int64
    voxel_origin: np.ndarray  # (3,) int64 absolute grid index of voxel (0, 0, 0)
    voxel_size: float
    object_ids: np.ndarray  # (I,) int32 objectIds of the annotated instances
    object_labels: list[str]  # (I,) raw labels

    @property
    def num_points(self) -> int:
        return len(self.xyz)

    @property
    def num_superpoints(self) -> int:
        return int(self.superpoint.max()) + 1 if len(self.superpoint) else 0

    @property
    def num_voxels(self) -> int:
        return len(self.voxel_coords)

    def point_mask(self, object_ids: list[int] | tuple[int, ...]) -> np.ndarray:
        """(N,) bool: the union of the given objects' points (all False for no objects)."""
        return np.isin(self.instance, np.asarray(list(object_ids), dtype=np.int32))

    def superpoint_mask(self, point_mask: np.ndarray) -> np.ndarray:
        """(K,) bool: superpoints whose mean of the point mask is > 0.5 (REFERENCE §4's GT rule)."""
        count = np.bincount(self.superpoint, minlength=self.num_superpoints)
        weights = point_mask.astype(np.float64)
        hits = np.bincount(self.superpoint, weights=weights, minlength=self.num_superpoints)
        return hits > 0.5 * count

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "xyz": self.xyz,
            "rgb": self.rgb,
            "instance": self.instance,
            "semantic": self.semantic,
            "superpoint": self.superpoint,
            "voxel_coords": self.voxel_coords,
            "point_to_voxel": self.point_to_voxel,
            "voxel_origin": self.voxel_origin,
            "voxel_size": np.array(self.voxel_size, dtype=np.float64),
            "object_ids": self.object_ids,
            "object_labels": np.array(self.object_labels, dtype=str),
        }


def label_table_digest(label_map: LabelMap) -> str:
    """A digest of what the label table maps (raw label -> NYU40 id), independent of where it lives."""
    rows = sorted((raw, row.nyu40_id) for raw, row in label_map.rows.items())
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def default_label_map(root: str | Path) -> LabelMap:
    """The dataset's own label table (`<root>/scannetv2-labels.combined.tsv`), else the shipped one."""
    for folder in (Path(root), Path(root).parent):
        if (folder / LABEL_TABLE_NAME).is_file():
            return LabelMap.from_tsv(folder / LABEL_TABLE_NAME)
    return LabelMap.default()


class SceneCache:
    """Cached scenes of one scans root for one config. `builds` counts scenes built by this object."""

    def __init__(
        self,
        root: str | Path,
        cache_dir: str | Path,
        config: SceneCacheConfig | None = None,
        label_map: LabelMap | None = None,
    ):
        self.root = Path(root)
        self.scans = scans_dir(root)
        self.cache_dir = Path(cache_dir)
        self.config = config or SceneCacheConfig()
        self.label_map = label_map or default_label_map(self.root)
        self.builds = 0
        labels = label_table_digest(self.label_map)
        self._config_key = {"version": CACHE_VERSION, **self.config.key_fields(), "labels": labels}
        config_json = json.dumps(self._config_key, sort_keys=True)
        self._config_hash = hashlib.sha256(config_json.encode()).hexdigest()[:12]
        self._memory: OrderedDict[tuple[str, str], CachedScene] = OrderedDict()

    def path(self, scene_id: str) -> Path:
        """The cache file of `scene_id` for this config."""
        return self.cache_dir / f"{scene_id}.{self._config_hash}.npz"

    def key(self, scene_id: str) -> str:
        """The full cache key of a scene now: config fields plus the size and mtime of its source files."""
        try:
            folder = scene_folder(self.root, scene_id)
        except SceneError as exc:
            raise DataError(exc.path, f"scene {scene_id}: {exc.reason}") from None
        sources = {}
        for name, path in sorted(scene_files(folder, scene_id).items()):
            if path is None or not path.is_file():
                sources[name] = None
            else:
                stat = path.stat()
                sources[name] = [path.name, stat.st_size, stat.st_mtime_ns]
        return json.dumps({"config": self._config_key, "sources": sources}, sort_keys=True)

    def get(self, scene_id: str) -> CachedScene:
        """The scene's arrays: from memory, else from its cache file, else built (and the file written)."""
        key = self.key(scene_id)
        digest = hashlib.sha256(key.encode()).hexdigest()
        memo = (scene_id, digest)
        if memo in self._memory:
            self._memory.move_to_end(memo)
            return self._memory[memo]
        path = self.path(scene_id)
        scene = self._read(path, key, scene_id)
        if scene is None:
            scene = self.build(scene_id)
            arrays = {**scene._arrays(), "key": np.array(key)}
            atomic_write(path, lambda f: np.savez(f, **arrays))
            self.builds += 1
        self._memory[memo] = scene
        while len(self._memory) > max(self.config.memory_scenes, 1):
            self._memory.popitem(last=False)
        return scene

    def _read(self, path: Path, key: str, scene_id: str) -> CachedScene | None:
        """The cached scene when `path` exists, reads cleanly and carries `key`; None means rebuild."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != key:
                    return None
                arrays = {name: data[name] for name in data.files if name != "key"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a truncated or foreign file: rebuilt and replaced
        return CachedScene(
            scene_id=scene_id,
            voxel_size=float(arrays.pop("voxel_size")),
            object_labels=[str(s) for s in arrays.pop("object_labels")],
            **arrays,
        )

    def build(self, scene_id: str) -> CachedScene:
        """Load the scene from its ScanNet files and compute the arrays (no cache involved)."""
        try:
            scene = load_scene(self.root, scene_id, label_map=self.label_map, with_frames=False)
        except SceneError as exc:
            raise DataError(exc.path, f"scene {scene_id}: {exc.reason}") from None
        if scene.segments is None and not self.config.compute_superpoints:
            raise DataError(
                scene.folder,
                f"scene {scene_id}: no superpoints ({scene_id}_vh_clean_2.*.segs.json missing); "
                "add the file or set compute_superpoints to compute them from the mesh",
            )
        if not scene.instances and self.config.require_instances:
            files = scene_files(scene.folder, scene_id)
            why = "no aggregation.json" if files["aggregation"] is None else "aggregation.json has no objects"
            if files["aggregation"] is not None and scene.segments is None:
                why = "aggregation.json cannot be mapped to vertices without segs.json"
            raise DataError(scene.folder, f"scene {scene_id}: no instance labels ({why})")
        grid = voxel_grid(scene.mesh.vertices, self.config.voxel_size)
        instances = [inst for inst in scene.instances if len(inst.vertex_indices)]
        return CachedScene(
            scene_id=scene_id,
            xyz=np.ascontiguousarray(scene.mesh.vertices, dtype=np.float32),
            rgb=np.ascontiguousarray(scene.mesh.colors, dtype=np.uint8),
            instance=scene.vertex_instance.astype(np.int32),
            semantic=scene.vertex_semantic("nyu40").astype(np.int32),
            superpoint=np.asarray(scene.superpoints, dtype=np.int64),
            voxel_coords=grid.coords,
            point_to_voxel=grid.point_to_voxel,
            voxel_origin=grid.origin,
            voxel_size=grid.voxel_size,
            object_ids=np.array([inst.object_id for inst in instances], dtype=np.int32),
            object_labels=[inst.label for inst in instances],
        )
