"""Where a run's files go, and the writes that make it resumable.

Layout under `--out`:

    scenes/<scene_id>/annotation.json   the scene document (every stage's output, `document.py`)
    scenes/<scene_id>/records.json      its DenseScan records (`core.data.densescan`)
    scenes/<scene_id>/crops/, highlights/, frames/   the images the captioner saw
    scenes/<scene_id>/done.json         the done-marker, written last (timings and counts)
    failed/<scene_id>.json              the error of a failed scene (removed when it later succeeds)
    densescan.json                      every finished scene's records, merged in scene order

Every file is written atomically, and a scene counts as finished only once its done-marker exists, so a
killed run restarted with the same command redoes at most the scenes that were in flight and, the
pipeline being deterministic, ends with the same files as an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.annotate.document import DOCUMENT_FILE, SceneAnnotation, write_annotation
from core.atomic import atomic_write_json
from core.data.densescan import DenseScanRecord, read_densescan, write_densescan


def scene_dir(out: Path, scene_id: str) -> Path:
    return out / "scenes" / scene_id


def done_marker(out: Path, scene_id: str) -> Path:
    return scene_dir(out, scene_id) / "done.json"


def failure_file(out: Path, scene_id: str) -> Path:
    return out / "failed" / f"{scene_id}.json"


def is_done(out: Path, scene_id: str) -> bool:
    return done_marker(out, scene_id).is_file()


def clear_leftovers(out: Path, scene_id: str) -> int:
    """Remove the temp files a killed run left in the scene's folder (an atomic write that never got to
    its rename); called before the scene is redone, when nothing else writes there. Returns the count."""
    folder = scene_dir(out, scene_id)
    stale = list(folder.rglob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def document_path(out: Path, scene_id: str) -> Path:
    return scene_dir(out, scene_id) / DOCUMENT_FILE


def write_scene(
    out: Path, scene_id: str, doc: SceneAnnotation, records: list[DenseScanRecord], summary: dict[str, Any]
) -> None:
    """The scene's document and records, then its done-marker (last: it is what marks completion)."""
    folder = scene_dir(out, scene_id)
    write_annotation(document_path(out, scene_id), doc)
    write_densescan(folder / "records.json", records, indent=1)
    atomic_write_json(done_marker(out, scene_id), summary, indent=1)
    failure_file(out, scene_id).unlink(missing_ok=True)


def write_failure(out: Path, scene_id: str, error: str) -> None:
    atomic_write_json(failure_file(out, scene_id), {"scene_id": scene_id, "error": error}, indent=1)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def merge_records(out: Path) -> int:
    """Rewrite `<out>/densescan.json` from every finished scene, in scene-id order; returns the count."""
    merged: list[DenseScanRecord] = []
    root = out / "scenes"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / "done.json").is_file():
            merged.extend(read_densescan(folder / "records.json"))
    write_densescan(out / "densescan.json", merged, indent=1)
    return len(merged)
