"""Ground-truth geometry from a ScanNet-format scans folder: object boxes and vertex sets.

Each needed scene is loaded once (without frames): the aligned boxes of its instances (as measured by
`Scene.objects()` from the instance vertices), the vertex indices of each instance and the vertex count.
The mesh itself is dropped after loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.eval.errors import EvalError
from core.scene.errors import SceneError
from core.scene.scannet import load_scene


@dataclass
class SceneTruth:
    scene_id: str
    num_vertices: int
    boxes: dict[int, np.ndarray]  # object id -> [cx, cy, cz, dx, dy, dz], aligned frame
    vertices: dict[int, np.ndarray]  # object id -> vertex indices
    labels: dict[int, str]  # object id -> raw label as annotated (every segGroup)
    _masks: dict[int, np.ndarray]

    def mask(self, object_id: int) -> np.ndarray:
        """Boolean vertex mask of an object (built on first use)."""
        if object_id not in self._masks:
            mask = np.zeros(self.num_vertices, dtype=bool)
            mask[self.vertices[object_id]] = True
            self._masks[object_id] = mask
        return self._masks[object_id]


class ScanTruth:
    """Lazy, cached access to the ground truth of the scenes under `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._scenes: dict[str, SceneTruth] = {}

    def preload(self, scene_ids: list[str], progress: bool = False) -> None:
        """Load every scene a run needs up front, with a progress bar when asked."""
        todo = [s for s in dict.fromkeys(scene_ids) if s not in self._scenes]
        for scene_id in tqdm(todo, desc="loading scenes", unit="scene", disable=not progress or not todo):
            self.scene(scene_id)

    def scene(self, scene_id: str) -> SceneTruth:
        if scene_id not in self._scenes:
            try:
                scene = load_scene(self.root, scene_id, with_frames=False)
            except SceneError as exc:
                raise EvalError(exc.path, f"cannot load scene {scene_id}: {exc.reason}") from None
            self._scenes[scene_id] = SceneTruth(
                scene_id,
                scene.mesh.num_vertices,
                {o.object_id: np.asarray(o.box, dtype=np.float64) for o in scene.objects()},
                {i.object_id: i.vertex_indices for i in scene.instances if len(i.vertex_indices)},
                {i.object_id: i.label for i in scene.instances},
                {},
            )
        return self._scenes[scene_id]

    def object_of(self, gt_path: str | Path, index: int, scene_id: str, object_id: str | int) -> int:
        """The integer id of a ground-truth record's object, checked to exist in its scene."""
        text = str(object_id)
        if not text.isdigit():
            raise EvalError(
                gt_path, f"expected an integer ScanNet object id, found {text!r}", index, "object_id"
            )
        scene = self.scene(scene_id)
        if int(text) not in scene.boxes:
            raise EvalError(
                gt_path,
                f"scene {scene_id} under {self.root} has no object {text} with vertices",
                index,
                "object_id",
            )
        return int(text)
