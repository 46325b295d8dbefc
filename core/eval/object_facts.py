"""What failure analysis asks about an evaluated object: its class, size, how much of it the frames see,
and how many objects of its class stand beside it in the scene.

- `size`: the longest side of its aligned box, in metres (the box `Scene.objects()` measures);
- `visible`: the share of its vertices seen (depth-tested, `core.scene.visibility.frame_visible_mask`)
  in at least one frame of the scan; `best_view`: the largest share one frame sees. Both are NaN when
  the scan has no RGB-D frames;
- `distractors`: the other instances of the scene with the same class (`normalize_label` of the raw
  label, the name the benchmarks' `object_name` carries).

Computing visibility reads each depth frame once (about 10 ms a frame; a scan with more than
`MAX_FRAMES` frames is read at `MAX_FRAMES` evenly spaced ones, as ScanNet's exports every 20th frame),
so `ObjectFactsCache` keeps each scene's facts for the life of the process.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.scene.labels import normalize_label
from core.scene.scannet import Scene, load_scene
from core.scene.visibility import frame_visible_mask

MAX_FRAMES = 300  # frames read per scene for visibility, evenly spaced over the scan


@dataclass(frozen=True)
class ObjectFacts:
    object_id: int
    category: str  # normalised raw label
    box: tuple[float, ...]  # [cx, cy, cz, dx, dy, dz], aligned frame
    size: float  # longest box side, metres
    visible: float  # share of vertices seen in at least one frame (NaN: no frames)
    best_view: float  # largest share seen by one frame (NaN: no frames)
    distractors: int  # other instances of the same category in the scene


def visibility_shares(scene: Scene) -> tuple[dict[int, float], dict[int, float]]:
    """({object id: share seen in any frame}, {object id: best single-frame share}); empty without frames."""
    frames = scene.frames.frames if scene.frames is not None else []
    if not frames:
        return {}, {}
    if len(frames) > MAX_FRAMES:
        frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, MAX_FRAMES)]
    instance = scene.vertex_instance
    ids = np.array(sorted({i.object_id for i in scene.instances}), dtype=np.int64)
    column = np.full(int(max(instance.max(initial=-1), ids.max(initial=-1))) + 2, 0, dtype=np.int64)
    column[ids + 1] = np.arange(1, len(ids) + 1)
    vertex_column = column[instance + 1]  # 0: unannotated
    totals = np.maximum(np.bincount(vertex_column, minlength=len(ids) + 1)[1:], 1)
    seen = np.zeros(len(instance), dtype=bool)
    best = np.zeros(len(ids))
    K = scene.frames.depth_intrinsics
    for frame in frames:
        mask = frame_visible_mask(scene.mesh.vertices, frame.pose, K, frame.depth_mm(), depth_scale=0.001)
        seen |= mask
        best = np.maximum(best, np.bincount(vertex_column[mask], minlength=len(ids) + 1)[1:] / totals)
    anywhere = np.bincount(vertex_column[seen], minlength=len(ids) + 1)[1:] / totals
    return (
        {int(o): float(v) for o, v in zip(ids, anywhere)},
        {int(o): float(v) for o, v in zip(ids, best)},
    )


def scene_facts(scene: Scene) -> dict[int, ObjectFacts]:
    """The facts of every instance of `scene` that has vertices."""
    anywhere, best = visibility_shares(scene)
    objects = scene.objects()
    categories = {o.object_id: normalize_label(o.label) for o in objects}
    counts: dict[str, int] = {}
    for name in categories.values():
        counts[name] = counts.get(name, 0) + 1
    return {
        o.object_id: ObjectFacts(
            object_id=o.object_id,
            category=categories[o.object_id],
            box=tuple(float(v) for v in o.box),
            size=float(np.max(o.box[3:6])),
            visible=anywhere.get(o.object_id, math.nan),
            best_view=best.get(o.object_id, math.nan),
            distractors=counts[categories[o.object_id]] - 1,
        )
        for o in objects
    }


class ObjectFactsCache:
    """Per-scene facts under one scans root, computed once per scene (thread-safe)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._scenes: dict[str, dict[int, ObjectFacts]] = {}
        self._lock = threading.Lock()

    def scene(self, scene_id: str) -> dict[int, ObjectFacts]:
        """The scene's facts; a `SceneError` names the folder when the scene cannot be loaded."""
        with self._lock:
            if scene_id not in self._scenes:
                self._scenes[scene_id] = scene_facts(load_scene(self.root, scene_id, with_frames=True))
            return self._scenes[scene_id]

    def object(self, scene_id: str, object_id: int) -> ObjectFacts | None:
        return self.scene(scene_id).get(object_id)
