"""`python -m core predict MODEL --checkpoint DIR --scans DIR --queries FILE --out FILE`: prediction files.

Writes the files `python -m core eval` scores: refseg vertex lists, ScanRefer boxes or Multi3DRefer box
sets (`core.eval.predict_dense3d` says how a mask becomes boxes); Ross3D (`--data DIR --split val --task
T`) writes any of its five benchmarks (`core.eval.predict_ross3d`). A model is one entry of `MODELS`. Bad
input (checkpoint folder, config that does not match the weights, query file, scenes missing from --scans)
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.data.errors import DataError
from core.models.errors import ModelError
from core.scene.errors import SceneError

MODELS = ("dense3d", "ross3d")
# here rather than in the model modules, so that building the command line does not import torch
TASKS = ("refseg", "scanrefer", "multi3drefer")
ROSS3D_TASKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")  # core.eval.predict_ross3d
FORMATS = ("auto", "scanrefer", "multi3drefer", "densescan")
COMPONENT_VOXEL = 0.05  # metres: a little more than the vertex spacing of a ScanNet mesh
MIN_COMPONENT_POINTS = 20


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "predict",
        help="run a trained model over a query file and write benchmark prediction files",
        description="Predict every query of a ScanRefer, Multi3DRefer or DenseScan file with a trained "
        "checkpoint and write the prediction format `python -m core eval TASK` reads: refseg (vertex "
        "indices of the mask), scanrefer (box of the mask's largest connected part) or multi3drefer (a box "
        "per connected part; none when the model finds no target). Ross3D: `--data DIR --task "
        "scanqa|sqa3d|scan2cap|scanrefer|multi3drefer [--split val]`.",
    )
    p.add_argument("model", choices=MODELS, help="which model")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder (save_pretrained)")
    p.add_argument("--scans", type=Path, help="dense3d: dataset root or scans/ folder of the scenes")
    p.add_argument("--queries", type=Path, help="dense3d: ScanRefer / Multi3DRefer / DenseScan file")
    p.add_argument("--data", type=Path, help="ross3d: dataset root (scans/, annotations/, split files)")
    p.add_argument("--split", default="val", help="ross3d: split whose benchmark file is predicted (val)")
    p.add_argument(
        "--proposals",
        type=Path,
        help="ross3d grounding: proposal boxes {scene: [box, ...]} or a dense3d box prediction file "
        "(default: the scenes' ground-truth instance boxes)",
    )
    p.add_argument("--out", required=True, type=Path, help="prediction file (.json; refseg also .npz)")
    p.add_argument(
        "--task",
        choices=tuple(dict.fromkeys(TASKS + ROSS3D_TASKS)),
        help="format to write (dense3d: refseg, scanrefer or multi3drefer; default refseg for ScanRefer / "
        "DenseScan queries, multi3drefer for Multi3DRefer queries; ross3d: the benchmark, required)",
    )
    p.add_argument("--format", default="auto", choices=FORMATS, help="query file format (default: detected)")
    p.add_argument("--batch-size", type=int, default=4, help="queries per forward pass (default 4)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    p.add_argument("--cache-dir", type=Path, help="scene cache folder to reuse (default: a temporary one)")
    p.add_argument("--details", type=Path, help="also write per-query answer, has_seg, score, points (JSON)")
    p.add_argument(
        "--component-voxel",
        type=float,
        default=COMPONENT_VOXEL,
        help=f"voxel size (m) for splitting a mask into connected parts (default {COMPONENT_VOXEL})",
    )
    p.add_argument(
        "--min-points",
        type=int,
        default=MIN_COMPONENT_POINTS,
        help=f"points a part needs to become a Multi3DRefer box (default {MIN_COMPONENT_POINTS})",
    )
    p.add_argument(
        "--empty-below",
        type=float,
        metavar="P",
        help='dense3d, multi3drefer: answer "no target" (no box) when the chosen proposals\' probability is '
        "below P; calibrate P on a split with bench/dense3d_no_target.py (default: never)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.model == "ross3d":
        from core.eval.predict_ross3d import run_cli

        return run_cli(args)
    from core.eval.predict_dense3d import predict_file

    if args.scans is None or args.queries is None or (args.task and args.task not in TASKS):
        tasks = ", ".join(TASKS)
        print(f"error: dense3d needs --scans and --queries, and --task one of {tasks}", file=sys.stderr)
        return 2

    for name, value in (("--component-voxel", args.component_voxel), ("--batch-size", args.batch_size)):
        if value <= 0:
            print(f"error: {name} must be > 0, got {value}", file=sys.stderr)
            return 2
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(args.threads, 1))
    try:
        result, task, path = predict_file(
            args.checkpoint,
            args.scans,
            args.queries,
            args.out,
            task=args.task,
            fmt=args.format,
            batch_size=args.batch_size,
            device=args.device,
            cache_dir=args.cache_dir,
            details=args.details,
            voxel_size=args.component_voxel,
            min_points=args.min_points,
            empty_below=args.empty_below,
            progress=not args.no_progress,
        )
    except (ModelError, DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outputs = result.outputs
    empty = sum(1 for o in outputs if not len(o.vertices))
    print(
        f"{task}: {len(outputs)} queries, {empty} empty masks, {result.per_query:.3f} s per query -> {path}"
    )
    for note in result.notes:
        print(f"note: {note}")
    if args.details:
        print(f"details: {args.details}")
    return 0
