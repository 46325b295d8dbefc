"""`python -m core eval TASK --gt FILE --pred FILE [--scans DIR] [--out FILE]`: benchmark metrics.

Prints a table and writes a JSON report with every number and the per-sample scores (default: beside the
prediction file, `<pred>.<task>-eval.json`). Also `python -m core baselines --data DIR [--split val]`: the
blind baselines (`core.eval.baselines`), scored by the same runners.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.data.errors import DataError
from core.scene.errors import SceneError

TASKS = ("scanrefer", "multi3drefer", "scanqa", "sqa3d", "scan2cap", "refseg", "densescan")
NEEDS_SCANS = ("scanrefer", "multi3drefer", "scan2cap", "refseg")
CAPTIONS = ("scanqa", "scan2cap", "densescan")
LABEL_TABLE = "scannetv2-labels.combined.tsv"


def register(commands: argparse._SubParsersAction) -> None:
    register_eval(commands)
    register_baselines(commands)


def register_eval(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "eval",
        help="benchmark metrics of a prediction file (ScanRefer, Multi3DRefer, ScanQA, SQA3D, Scan2Cap, ...)",
        description="Score predictions against a benchmark file, computed as the papers do. Prints a table "
        "and writes a JSON report with every number and per-sample scores. Prediction formats: README.",
    )
    p.add_argument("task", choices=TASKS)
    p.add_argument("--gt", required=True, type=Path, help="ground-truth annotation file of the split")
    p.add_argument("--pred", required=True, type=Path, help="prediction file (format per task: README)")
    p.add_argument(
        "--scans",
        type=Path,
        help="ScanNet scans folder (or dataset root): needed for " + ", ".join(NEEDS_SCANS),
    )
    p.add_argument("--out", type=Path, help="JSON report path (default: <pred>.<task>-eval.json)")
    p.add_argument(
        "--labels",
        type=Path,
        help=f"label table for the unique / multiple split (default: {LABEL_TABLE} in --scans, or shipped)",
    )
    p.add_argument(
        "--lookup",
        type=Path,
        help="unique / multiple lookup file {scene_id: {object_id: 0|1}} to use instead",
    )
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java; ~10 s start-up)")
    p.set_defaults(run=run_eval)


def _label_map(args: argparse.Namespace):
    from core.scene.labels import LabelMap

    if args.labels:
        return LabelMap.from_tsv(args.labels)
    for candidate in (args.scans / LABEL_TABLE, args.scans.parent / LABEL_TABLE):
        if candidate.is_file():
            return LabelMap.from_tsv(candidate)
    return LabelMap.default()


def evaluate(args: argparse.Namespace):
    """Run one task's evaluation from parsed arguments; returns its `EvalReport`."""
    from core.data.scanrefer import read_unique_multiple_lookup
    from core.eval.captioning import evaluate_densescan, evaluate_scan2cap
    from core.eval.captions import CaptionScorer
    from core.eval.grounding import evaluate_multi3drefer, evaluate_refseg, evaluate_scanrefer
    from core.eval.qa import evaluate_scanqa, evaluate_sqa3d
    from core.eval.scenes import ScanTruth

    task = args.task
    if task in NEEDS_SCANS and args.scans is None:
        raise DataError(None, f"{task} needs --scans DIR (target boxes and vertices come from the scans)")
    truth = ScanTruth(args.scans) if task in NEEDS_SCANS else None
    if task in ("scanrefer", "refseg"):
        lookup = read_unique_multiple_lookup(args.lookup) if args.lookup else None
        label_map = None if lookup else _label_map(args)
        run = evaluate_scanrefer if task == "scanrefer" else evaluate_refseg
        return run(args.gt, args.pred, truth, label_map, lookup, progress=True)
    if task == "multi3drefer":
        return evaluate_multi3drefer(args.gt, args.pred, truth, progress=True)
    if task == "sqa3d":
        return evaluate_sqa3d(args.gt, args.pred)
    with CaptionScorer(meteor=not args.no_meteor) as scorer:
        if task == "scanqa":
            report = evaluate_scanqa(args.gt, args.pred, scorer)
        elif task == "scan2cap":
            report = evaluate_scan2cap(args.gt, args.pred, truth, scorer, progress=True)
        else:
            report = evaluate_densescan(args.gt, args.pred, scorer)
    if args.no_meteor:
        report.notes.append("METEOR skipped (--no-meteor)")
    return report


def run_eval(args: argparse.Namespace) -> int:
    try:
        report = evaluate(args)
    except (DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report.inputs = {
        "gt": str(args.gt),
        "pred": str(args.pred),
        **({"scans": str(args.scans)} if args.scans else {}),
    }
    out = args.out or args.pred.with_name(f"{args.pred.stem}.{args.task}-eval.json")
    report.write(out)
    print(report.format_table())
    print(f"report: {out}")
    return 0


def register_baselines(commands: argparse._SubParsersAction) -> None:
    from core.eval.baselines import SPLITS

    p = commands.add_parser(
        "baselines",
        help="blind baselines (class-name oracle, no target, majority answer, ...) of a dataset's benchmarks",
        description="Score the blind baselines every model is read against, with the runners of `eval`: "
        "ScanRefer / refseg class-name oracle and random instance, Multi3DRefer no target and all of the "
        "class, ScanQA / SQA3D majority answer (counted on train) overall and per question type, Scan2Cap "
        "'a <class>.'. Prints a table (task, baseline, metric, value, n).",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset root as `python -m core synth` writes")
    p.add_argument("--split", default="val", choices=SPLITS, help="split to evaluate (default: val)")
    p.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    p.add_argument("--out", type=Path, help="also write the JSON document to this file")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java; ~10 s start-up)")
    p.set_defaults(run=run_baselines)


def run_baselines(args: argparse.Namespace) -> int:
    import json

    from core.eval.baselines import compute_baselines

    try:
        result = compute_baselines(args.data, args.split, meteor=not args.no_meteor, progress=not args.json)
    except (DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        result.write(args.out)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(result.format_table())
        if args.out:
            print(f"report: {args.out}")
    return 0
