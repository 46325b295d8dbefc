"""Scene command: `python -m core scenes` inspects a ScanNet-format dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.scene.errors import SceneError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "scenes",
        help="list the scenes of a ScanNet-format folder with what was found in each",
        description="One line (or one JSON object with --json) per scene: vertices, faces, objects, "
        "categories, superpoints, frames found and frames skipped (and why).",
    )
    p.add_argument(
        "--scans", required=True, type=Path, help="a scans/ folder, or a dataset root holding scans/"
    )
    p.add_argument("--frames", type=Path, help="posed_images root (or one scene's frame folder)")
    p.add_argument("--labels", type=Path, help="scannetv2-labels.combined.tsv, to map labels to NYU40")
    p.add_argument("--scenes", nargs="+", metavar="ID", help="only these scene ids")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    p.set_defaults(run=run_scenes)


def scene_summary(scene) -> dict:
    """What `scenes` reports for one loaded scene."""
    frames = scene.frames
    return {
        "scene_id": scene.scene_id,
        "vertices": scene.mesh.num_vertices,
        "faces": scene.mesh.num_faces,
        "objects": len(scene.instances),
        "categories": len(scene.categories),
        "superpoints": int(scene.superpoints.max()) + 1 if scene.mesh.num_vertices else 0,
        "superpoints_source": "segs.json" if scene.segments is not None else "computed",
        "frame_layout": frames.layout if frames is not None else None,
        "frames": len(frames) if frames is not None else 0,
        "frames_skipped": len(frames.skipped) if frames is not None else 0,
        "skip_reasons": frames.skipped_reasons() if frames is not None else {},
        "notes": scene.notes,
    }


def _format_line(s: dict) -> str:
    skipped = f"{s['frames_skipped']}"
    if s["skip_reasons"]:
        skipped += " (" + ", ".join(f"{n} {why}" for why, n in s["skip_reasons"].items()) + ")"
    layout = f" [{s['frame_layout']}]" if s["frame_layout"] else ""
    line = (
        f"{s['scene_id']}  vertices {s['vertices']}  faces {s['faces']}  objects {s['objects']}  "
        f"categories {s['categories']}  superpoints {s['superpoints']} ({s['superpoints_source']})  "
        f"frames {s['frames']}{layout}  skipped {skipped}"
    )
    return line + "".join(f"\n    note: {n}" for n in s["notes"])


def run_scenes(args: argparse.Namespace) -> int:
    from core.scene.labels import LabelMap
    from core.scene.scannet import list_scenes, load_scene, scans_dir

    try:
        label_map = LabelMap.from_tsv(args.labels) if args.labels else None
        ids = list_scenes(args.scans, args.scenes)
    except SceneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not ids:
        print(f"error: no scene folders with a *_vh_clean_2.ply under {args.scans}", file=sys.stderr)
        return 2
    failed = 0
    for scene_id in ids:
        try:
            summary = scene_summary(load_scene(args.scans, scene_id, args.frames, label_map))
        except Exception as exc:  # one broken scene must not end the listing of the others
            failed += 1
            if not isinstance(exc, SceneError):  # a reader gap: still name the scene's folder
                exc = SceneError(scans_dir(args.scans) / scene_id, f"unexpected {type(exc).__name__}: {exc}")
            summary = {"scene_id": scene_id, "error": str(exc)}
            if not args.json:
                print(f"{scene_id}  ERROR {exc}", flush=True)
                continue
        print(json.dumps(summary) if args.json else _format_line(summary), flush=True)
    if failed:
        print(f"{failed} of {len(ids)} scenes failed to load", file=sys.stderr)
    return 1 if failed else 0
