"""What the app serves: the review service, the scans, and the pipeline's per-scene documents.

`AppContext` caches loaded scenes (with their point-view precomputation and BEV image) and annotation
documents, and answers the questions the workspaces ask about an item: its images, claims, and the
other captions that mention its object.

Every image path a document names goes through `contained_file`: it must resolve (symlinks followed) to
a file inside the annotations' `scenes/` folder, the one folder Gradio is allowed to serve; a path that
leaves it (`../../review.db`, an absolute path, a symlink out) is skipped with a note, never served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from app.scene_view import SceneView, render_bev
from core.annotate.document import DOCUMENT_FILE, ObjectEntry, SceneAnnotation, read_annotation
from core.scene.errors import SceneError
from core.scene.render import BEVImage
from core.scene.scannet import Scene, list_scenes, load_scene
from core.serve.ask import SceneModels
from review import ItemView, ReviewService
from review.db import sqlite_file

SCENE_CACHE_SIZE = 4
SCENE_RETRY_S = 30.0  # a scene that failed to load is tried again after this long (the user may fix it)

log = logging.getLogger(__name__)


class UnsafePath(ValueError):
    """A path from an annotation document that does not stay inside the folder it must stay in."""


def contained_file(root: Path, base: Path, name: object) -> Path | None:
    """`base / name` resolved, when it lies inside `root`: the file, or None when no such file exists.

    Raises UnsafePath (one line naming the path) for a non-string, an absolute path or a path that
    resolves outside `root`; the one check every image path read from a document goes through.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafePath(f"image path {name!r} is not a file name")
    if Path(name).is_absolute():
        raise UnsafePath(f"image path {name!r} is absolute; it must be relative to its scene folder")
    resolved = (base / name).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise UnsafePath(f"image path {name!r} leaves the annotations folder; skipped")
    return resolved if resolved.is_file() else None


@dataclass
class ItemImages:
    crops: list[tuple[str, str]]  # (path, caption)
    highlights: list[tuple[str, str]]
    skipped: list[str]  # one line per image path refused by `contained_file`


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
    models: SceneModels | None = None  # Dense3D / Ross3D for the "Ask the scene" tab, loaded on first use
    _scenes: OrderedDict[str, LoadedScene] = field(default_factory=OrderedDict)
    _docs: dict[str, SceneAnnotation | None] = field(default_factory=dict)
    _scene_errors: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (when, one line)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # scenes --------------------------------------------------------------------------------------------

    def scene_ids(self) -> list[str]:
        if self.scans is not None:
            return list_scenes(self.scans)
        if self.annotations is not None and (self.annotations / "scenes").is_dir():
            return sorted(p.name for p in (self.annotations / "scenes").iterdir() if p.is_dir())
        return []

    def loaded(self, scene_id: str) -> LoadedScene | None:
        """The scene (least recently used ones are dropped); None when there are no scans or it cannot be
        loaded: then `scene_error` says why, and the load is not retried for SCENE_RETRY_S seconds."""
        if self.scans is None:
            return None
        with self._lock:
            if scene_id in self._scenes:
                self._scenes.move_to_end(scene_id)
                return self._scenes[scene_id]
            failed = self._scene_errors.get(scene_id)
        if failed is not None and time.monotonic() - failed[0] < SCENE_RETRY_S:
            return None
        try:
            scene = load_scene(self.scans, scene_id, with_frames=False)
        except SceneError as exc:
            return self._scene_failed(scene_id, str(exc))
        except Exception as exc:  # a bug or an unreadable disk, not a format error: traceback to the log
            log.exception("loading scene %s", scene_id)
            return self._scene_failed(scene_id, f"{type(exc).__name__}: {exc}")
        entry = LoadedScene(scene, SceneView(scene))
        entry.view.background_sample  # noqa: B018  (precompute once, outside the request that shows it)
        with self._lock:
            self._scene_errors.pop(scene_id, None)
            self._scenes[scene_id] = entry
            while len(self._scenes) > SCENE_CACHE_SIZE:
                self._scenes.popitem(last=False)
        return entry

    def _scene_failed(self, scene_id: str, reason: str) -> None:
        log.warning("scene %s cannot be loaded: %s", scene_id, reason)
        with self._lock:
            self._scene_errors[scene_id] = (time.monotonic(), reason)
        return None

    def scene_error(self, scene_id: str | None) -> str | None:
        """Why the scene could not be loaded (one line naming the file), or None."""
        with self._lock:
            failed = self._scene_errors.get(scene_id) if scene_id else None
        return failed[1] if failed is not None else None

    def bev(self, scene_id: str) -> BEVImage | None:
        entry = self.loaded(scene_id)
        if entry is None:
            return None
        if entry.bev is None:
            entry.bev = render_bev(entry.scene)
        return entry.bev

    # annotation documents ------------------------------------------------------------------------------

    def doc(self, scene_id: str) -> SceneAnnotation | None:
        if scene_id not in self._docs:
            self._docs[scene_id] = self._read_doc(scene_id)
        return self._docs[scene_id]

    def _read_doc(self, scene_id: str) -> SceneAnnotation | None:
        """The scene's document, None when the pipeline has not written one; a malformed one is an
        `AnnotateError` naming the file and key."""
        if self.annotations is None:
            return None
        path = self.scene_folder(scene_id) / DOCUMENT_FILE
        return read_annotation(path) if path.is_file() else None

    def scene_folder(self, scene_id: str) -> Path:
        assert self.annotations is not None
        return self.annotations / "scenes" / Path(scene_id).name

    def object_entry(self, scene_id: str, object_id: int) -> ObjectEntry | None:
        doc = self.doc(scene_id)
        return doc.object(object_id) if doc is not None else None

    # what an item shows --------------------------------------------------------------------------------

    def claims(self, item: ItemView) -> list[dict[str, Any]]:
        if isinstance(item.extra.get("claims"), list):
            return item.extra["claims"]
        if item.key.level != "object":
            return []
        obj = self.object_entry(item.key.scene_id, object_id_of(item) or -1)
        return list(obj.verification.claims) if obj is not None and obj.verification else []

    def images(self, item: ItemView) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(crops, highlighted frames) as (path, caption) pairs for the item's object; refused paths are
        left out and shown as a warning toast when called from a callback."""
        found = self.item_images(item)
        for note in found.skipped:
            gr.Warning(escape(note))  # the toast renders HTML; the note quotes the document
        return found.crops, found.highlights

    def item_images(self, item: ItemView) -> ItemImages:
        """The item's crops and highlighted frames, and a note for every image path that was refused."""
        found = ItemImages([], [], [])
        object_id = object_id_of(item)
        scene_id = item.key.scene_id
        if self.annotations is None or object_id is None:
            return found
        folder = self.scene_folder(scene_id)
        where = f"scenes/{folder.name}/annotation.json"  # relative: the note must not reveal server paths

        def add(into: list[tuple[str, str]], name: object, caption: str, first: bool = False) -> None:
            try:
                path = contained_file(self.images_root(), folder, name)
            except UnsafePath as exc:
                found.skipped.append(f"{where}: {exc}")
                return
            if path is not None:
                into.insert(0 if first else len(into), (str(path), caption))

        obj = self.object_entry(scene_id, object_id)
        for view in obj.views if obj is not None else []:
            label = f"frame {view.frame_id} · score {view.score:.2f}"
            for crop in view.crops:
                add(found.crops, crop, label)
            if view.highlight:
                add(found.highlights, view.highlight, label)
        doc = self.doc(scene_id)
        if item.key.level == "frame" and doc is not None:
            for frame in doc.frames:
                if frame.frame_id == str(item.extra.get("frame_id")) and frame.image:
                    add(found.highlights, frame.image, f"frame {frame.frame_id} (this caption)", True)
        return found

    def other_levels(self, item: ItemView) -> list[tuple[str, str]]:
        """Captions at other levels (object, frame, scene, scenario) that mention the item's object."""
        object_id = object_id_of(item)
        doc = self.doc(item.key.scene_id)
        if doc is None or object_id is None:
            return []
        out: list[tuple[str, str]] = []
        obj = doc.object(object_id)
        if item.key.level != "object" and obj is not None and obj.caption:
            out.append(("object", obj.caption))
        for frame in doc.frames:
            mentions = object_id == frame.object_id or object_id in frame.visible_objects
            this_one = item.key.level == "frame" and frame.frame_id == str(item.extra.get("frame_id"))
            if mentions and not this_one:
                out.append((f"frame {frame.frame_id}", frame.description))
        if any(object_id in m.object_ids for m in doc.narrative.main_objects):
            out.append(("scene", doc.narrative.text))
        for scenario in doc.scenarios:
            if object_id in scenario.answer_object_ids:
                out.append(("scenario", f"{scenario.question} → {scenario.answer}"))
        return out

    def images_root(self) -> Path:
        """The one folder images are served from: the annotations' per-scene folders."""
        assert self.annotations is not None
        return self.annotations / "scenes"

    def allowed_paths(self) -> list[str]:
        """What Gradio may serve beyond its own cache: the per-scene image folders, nothing above them."""
        return [str(self.images_root().resolve())] if self.annotations is not None else []

    def blocked_paths(self) -> list[str]:
        """Never served whatever a callback returns: the SQLite review database and its side files."""
        db = sqlite_file(self.service.db.url)
        if db is None:
            return []
        db = db.resolve()
        return [str(db), *(str(db.with_name(db.name + s)) for s in ("-wal", "-shm", "-journal"))]


def object_id_of(item: ItemView) -> int | None:
    """The item's object as an int, None for scene-level items (object id -1) or non-numeric ids."""
    try:
        value = int(item.key.object_id)
    except ValueError:
        return None
    return value if value >= 0 else None
