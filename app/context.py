"""What the app serves: the review service, the scans, and the pipeline's per-scene documents.

`AppContext` caches loaded scenes (with their point-view precomputation and BEV image) and annotation
documents, and answers the questions the workspaces ask about an item: its images, claims, and the
other captions that mention its object.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.scene_view import SceneView, render_bev
from core.scene.render import BEVImage
from core.scene.scannet import Scene, list_scenes, load_scene
from review import ItemView, ReviewService

SCENE_CACHE_SIZE = 4


@dataclass
class LoadedScene:
    scene: Scene
    view: SceneView
    bev: BEVImage | None = None


@dataclass
class AppContext:
    service: ReviewService
    scans: Path | None  # a dataset root (or scans folder); None: no 3D views
    annotations: Path | None  # the pipeline's output folder; None: no images or claims
    auth: bool = False
    local_user: str = "local"  # who acts when --auth is off
    _scenes: OrderedDict[str, LoadedScene] = field(default_factory=OrderedDict)
    _docs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # scenes --------------------------------------------------------------------------------------------

    def scene_ids(self) -> list[str]:
        if self.scans is not None:
            return list_scenes(self.scans)
        if self.annotations is not None and (self.annotations / "scenes").is_dir():
            return sorted(p.name for p in (self.annotations / "scenes").iterdir() if p.is_dir())
        return []

    def loaded(self, scene_id: str) -> LoadedScene | None:
        """The scene (least recently used ones are dropped); None when there are no scans for it."""
        if self.scans is None:
            return None
        with self._lock:
            if scene_id in self._scenes:
                self._scenes.move_to_end(scene_id)
                return self._scenes[scene_id]
        try:
            scene = load_scene(self.scans, scene_id, with_frames=False)
        except Exception:
            return None
        entry = LoadedScene(scene, SceneView(scene))
        entry.view.background_sample  # noqa: B018  (precompute once, outside the request that shows it)
        with self._lock:
            self._scenes[scene_id] = entry
            while len(self._scenes) > SCENE_CACHE_SIZE:
                self._scenes.popitem(last=False)
        return entry

    def bev(self, scene_id: str) -> BEVImage | None:
        entry = self.loaded(scene_id)
        if entry is None:
            return None
        if entry.bev is None:
            entry.bev = render_bev(entry.scene)
        return entry.bev

    # annotation documents ------------------------------------------------------------------------------

    def doc(self, scene_id: str) -> dict[str, Any] | None:
        if scene_id not in self._docs:
            self._docs[scene_id] = self._read_doc(scene_id)
        return self._docs[scene_id]

    def _read_doc(self, scene_id: str) -> dict[str, Any] | None:
        if self.annotations is None:
            return None
        path = self.scene_folder(scene_id) / "annotation.json"
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def scene_folder(self, scene_id: str) -> Path:
        assert self.annotations is not None
        return self.annotations / "scenes" / Path(scene_id).name

    def object_entry(self, scene_id: str, object_id: int) -> dict[str, Any] | None:
        doc = self.doc(scene_id)
        for obj in (doc or {}).get("objects", []):
            if obj.get("object_id") == object_id:
                return obj
        return None

    # what an item shows --------------------------------------------------------------------------------

    def claims(self, item: ItemView) -> list[dict[str, Any]]:
        if isinstance(item.extra.get("claims"), list):
            return item.extra["claims"]
        if item.key.level != "object":
            return []
        obj = self.object_entry(item.key.scene_id, object_id_of(item) or -1)
        return list(((obj or {}).get("verification") or {}).get("claims") or [])

    def images(self, item: ItemView) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(crops, highlighted frames) as (path, caption) pairs for the item's object."""
        object_id = object_id_of(item)
        scene_id = item.key.scene_id
        if self.annotations is None or object_id is None:
            return [], []
        folder = self.scene_folder(scene_id)
        crops: list[tuple[str, str]] = []
        highlights: list[tuple[str, str]] = []
        obj = self.object_entry(scene_id, object_id) or {}
        for view in obj.get("views", []):
            label = f"frame {view.get('frame_id')} · score {view.get('score', 0):.2f}"
            crops += [(str(folder / c), label) for c in view.get("crops", []) if (folder / c).is_file()]
            if view.get("highlight") and (folder / view["highlight"]).is_file():
                highlights.append((str(folder / view["highlight"]), label))
        if item.key.level == "frame":
            for frame in (self.doc(scene_id) or {}).get("frames", []):
                if str(frame.get("frame_id")) == str(item.extra.get("frame_id")) and frame.get("image"):
                    path = folder / frame["image"]
                    if path.is_file():
                        highlights.insert(0, (str(path), f"frame {frame['frame_id']} (this caption)"))
        return crops, highlights

    def other_levels(self, item: ItemView) -> list[tuple[str, str]]:
        """Captions at other levels (object, frame, scene, scenario) that mention the item's object."""
        object_id = object_id_of(item)
        doc = self.doc(item.key.scene_id)
        if doc is None or object_id is None:
            return []
        out: list[tuple[str, str]] = []
        obj = self.object_entry(item.key.scene_id, object_id)
        if item.key.level != "object" and obj and obj.get("caption"):
            out.append(("object", obj["caption"]))
        for frame in doc.get("frames", []):
            mentions = object_id == frame.get("object_id") or object_id in frame.get("visible_objects", [])
            this_one = item.key.level == "frame" and str(frame.get("frame_id")) == item.extra.get("frame_id")
            if mentions and not this_one:
                out.append((f"frame {frame.get('frame_id')}", frame.get("description", "")))
        narrative = doc.get("narrative") or {}
        if any(object_id in m.get("object_ids", []) for m in narrative.get("main_objects", [])):
            out.append(("scene", narrative.get("text", "")))
        for scenario in doc.get("scenarios", []):
            if object_id in scenario.get("answer_object_ids", []):
                out.append(("scenario", f"{scenario.get('question', '')} → {scenario.get('answer', '')}"))
        return out

    def allowed_paths(self) -> list[str]:
        return [str(self.annotations)] if self.annotations is not None else []


def object_id_of(item: ItemView) -> int | None:
    """The item's object as an int, None for scene-level items (object id -1) or non-numeric ids."""
    try:
        value = int(item.key.object_id)
    except ValueError:
        return None
    return value if value >= 0 else None
