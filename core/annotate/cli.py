"""`python -m core annotate`: the DenseScan pipeline over a scans folder (resumable), and `--stats`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from core.annotate.config import BACKGROUNDS, HIGHLIGHT_STYLES, AnnotateConfig
from core.annotate.errors import AnnotateError
from core.scene.errors import SceneError

# a scene of ScanNet size with a VLM at 32 requests in flight takes minutes; an hour means it is stuck
DEFAULT_SCENE_TIMEOUT = 3600.0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "annotate",
        help="run the DenseScan annotation pipeline over ScanNet-format scenes (resumable)",
        description="Views and isolated crops, highlighted frames, multi-view fusion and verification (a "
        "geometric fact check included) for every object; frame descriptions, a narrative and scenario "
        "questions per scene. Writes <out>/scenes/<id>/ and <out>/densescan.json. Rerun the same command "
        "to resume. A scene that fails (a captioner that gave up, a scene over --scene-timeout) is recorded "
        "in <out>/failed/ and the run goes on. Exit status: the number of failed scenes. Output format: "
        "README.",
    )
    p.add_argument("--scans", type=Path, help="a scans/ folder, or a dataset root holding scans/")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--scenes", nargs="+", metavar="ID", help="only these scene ids")
    p.add_argument("--captioner", default="grounded", help="grounded (offline default), openai or hf")
    p.add_argument("--api-base", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (openai)")
    p.add_argument("--model", help="model name at the endpoint (openai)")
    p.add_argument("--model-path", type=Path, help="local model folder (hf)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument("--send-facts", action="store_true", help="also send the 3D facts to a VLM backend")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="openai: total seconds one request may take, however slowly the reply arrives (default 120)",
    )
    p.add_argument(
        "--retries", type=int, default=4, help="openai: retries of a failed or unusable reply (default 4)"
    )
    p.add_argument(
        "--scene-timeout",
        type=float,
        default=DEFAULT_SCENE_TIMEOUT,
        metavar="S",
        help=f"seconds one scene may take before its worker is stopped and the scene recorded as failed "
        f"(default {DEFAULT_SCENE_TIMEOUT:g}; 0: no limit, and scenes run in this process)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top-k", type=int, default=8, help="views per object (default 8)")
    p.add_argument("--highlight", choices=HIGHLIGHT_STYLES, default="outline")
    p.add_argument("--background", choices=BACKGROUNDS, default="mask", help="isolated crops' background")
    p.add_argument("--workers", type=int, default=1, help="scenes in parallel on this machine")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local one)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--stats", type=Path, metavar="DIR", help="print statistics of DIR/densescan.json and exit"
    )
    p.add_argument("--json", action="store_true", help="with --stats: print JSON")
    p.set_defaults(run=run_annotate)


def run_annotate(args: argparse.Namespace) -> int:
    if args.stats is not None:
        return _stats(args)
    if args.scans is None or args.out is None:
        print("error: --scans and --out are required (or --stats DIR)", file=sys.stderr)
        return 2
    from core.annotate.batch import JobSpec, make_captioner, run_scenes
    from core.annotate.output import merge_records
    from core.annotate.summary import summary_table
    from core.scene.scannet import list_scenes

    try:
        scene_ids = list_scenes(args.scans, args.scenes)
        config = AnnotateConfig(
            top_k=args.top_k, highlight=args.highlight, background=args.background, seed=args.seed
        )
        _check_limits(args)
    except (SceneError, AnnotateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not scene_ids:
        print(f"error: no scenes found under {args.scans}", file=sys.stderr)
        return 2
    options = {
        "api_base": args.api_base,
        "model": args.model,
        "model_path": args.model_path,
        "concurrency": args.concurrency,
        "cache_dir": args.out / "cache",
        "seed": args.seed,
        "send_facts": args.send_facts,
        "timeout": args.timeout,
        "retries": args.retries,
    }
    if args.captioner == "ross3d":
        options["scans"] = args.scans  # Ross3D reads each scene's frames itself
    try:  # fail before the first scene when the captioner cannot be built at all
        make_captioner(args.captioner, **options)
    except Exception as exc:  # registry errors, missing packages, bad options: one clear line
        print(f"error: cannot build captioner {args.captioner!r}: {exc}", file=sys.stderr)
        return 2
    scene_timeout = args.scene_timeout or None  # 0: no limit
    spec = JobSpec(args.scans, args.out, args.captioner, options, config, scene_timeout)
    outcomes = run_scenes(spec, scene_ids, args.workers, args.engine, args.ray_address, not args.no_progress)
    count = merge_records(args.out)
    print(summary_table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    print(
        f"{count} records in {args.out / 'densescan.json'}; {len(failed)} scene(s) failed"
        + (f" (see {args.out / 'failed'})" if failed else "")
    )
    return min(len(failed), 125)


def _check_limits(args: argparse.Namespace) -> None:
    """`--timeout`, `--retries` and `--scene-timeout` must be usable numbers (the error names the flag)."""
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise AnnotateError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.retries < 0:
        raise AnnotateError(f"--retries must be 0 or more, got {args.retries}")
    if not (math.isfinite(args.scene_timeout) and args.scene_timeout >= 0):
        raise AnnotateError(
            f"--scene-timeout must be 0 (no limit) or a positive number of seconds, got {args.scene_timeout}"
        )


def _stats(args: argparse.Namespace) -> int:
    from core.annotate.stats import dataset_stats, format_stats
    from core.data.errors import DataError

    path = args.stats / "densescan.json" if args.stats.is_dir() else args.stats
    try:
        stats = dataset_stats(path)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=1) if args.json else format_stats(stats))
    return 0
