"""When should Dense3D answer "no target"? Pick `--empty-below` on one split, score it on others.

    python bench/dense3d_no_target.py --calibrate REPORT DETAILS [--test REPORT DETAILS ...] [--json OUT]

REPORT is a `python -m core eval multi3drefer` report (it names the ground truth, prediction file and scans it
was scored with) and DETAILS the `--details` file of the `python -m core predict dense3d` run that wrote
those predictions. Dense3D's LLM answers with [SEG] for nearly every sentence, so it never says "no target";
on Multi3DRefer a fifth of the queries have none. `predict --empty-below P` answers "no target" when the
chosen proposals' probability (the details' `score`) is below P.

The threshold is picked on the `--calibrate` split: the value among the observed scores that gives the best
mean F1@0.5 (the smallest on a tie). With no box, a zero-target query scores 1 and any other query 0, so
the F1 of every candidate follows from the report's per-query scores without running the model again; the
chosen threshold is then re-scored by the real evaluator on every split (prediction files rewritten with
the abstentions, `evaluate_multi3drefer`), and the two must agree. Printed per split: F1@0.25 / F1@0.5
overall, on zero-target queries and on queries with targets, and the share answered "no target", for the
predictions as they are, with the threshold, and for the blind "no target" answer to every query.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.errors import DataError  # noqa: E402

THRESHOLDS = ("F1@0.25", "F1@0.5")


class NoTargetError(Exception):
    """A report or details file that cannot be used (named, with the reason)."""


@dataclass
class Split:
    """One scored split: per query (in the report's order) whether it has no target, its F1 scores and
    the prediction's score."""

    name: str
    report: dict
    keys: list[str]
    zero: np.ndarray  # bool [N]
    f1: dict[str, np.ndarray]  # per THRESHOLDS name: float [N]
    score: np.ndarray  # float [N]


def load_split(report_path: Path, details_path: Path) -> Split:
    report = _read(report_path)
    details = _read(details_path)
    if report.get("task") != "multi3drefer" or not isinstance(report.get("samples"), list):
        raise NoTargetError(f"{report_path}: not a `python -m core eval multi3drefer` report")
    samples = report["samples"]
    missing = [s["key"] for s in samples if s["key"] not in details]
    if missing:
        raise NoTargetError(
            f"{details_path}: no details for {len(missing)} of the report's queries (first: {missing[0]}); "
            "pass the --details file of the predict run the report scored"
        )
    return Split(
        name=report_path.stem,
        report=report,
        keys=[s["key"] for s in samples],
        zero=np.array([not s["object_ids"] for s in samples], dtype=bool),
        f1={k: np.array([float(s["scores"][k]) for s in samples]) for k in THRESHOLDS},
        score=np.array([float(details[s["key"]]["score"]) for s in samples]),
    )


def _read(path: Path) -> dict:
    from core.data.jsonio import read_json

    document = read_json(path)
    if not isinstance(document, dict):
        raise NoTargetError(f"{path}: expected a JSON object")
    return document


def with_threshold(split: Split, threshold: float) -> dict[str, np.ndarray]:
    """Per-query F1 when every query scoring below `threshold` answers "no target"."""
    empty = split.score < threshold
    return {k: np.where(empty, split.zero.astype(float), v) for k, v in split.f1.items()}


def best_threshold(split: Split) -> float:
    """The observed score (or 0: never abstain) with the best mean F1@0.5; the smallest on a tie."""
    candidates = np.unique(np.concatenate([[0.0], split.score]))
    means = [with_threshold(split, t)["F1@0.5"].mean() for t in candidates]
    return float(candidates[int(np.argmax(means))])


def summary(split: Split, threshold: float) -> dict[str, float]:
    f1 = with_threshold(split, threshold)
    out = {"no_target_share": float((split.score < threshold).mean())}
    for k, v in f1.items():
        out[f"{k} overall"] = float(v.mean())
        out[f"{k} zero-target"] = float(v[split.zero].mean()) if split.zero.any() else float("nan")
        out[f"{k} with targets"] = float(v[~split.zero].mean()) if (~split.zero).any() else float("nan")
    return out


def rescore(split: Split, threshold: float, folder: Path) -> dict[str, float]:
    """The real evaluator on the split's prediction file with the abstentions written in."""
    from core.data.predictions import read_box_sets, write_box_sets
    from core.eval.grounding import evaluate_multi3drefer
    from core.eval.scenes import ScanTruth

    inputs = split.report.get("inputs", {})
    if not all(inputs.get(k) for k in ("gt", "pred", "scans")):
        raise NoTargetError(f"{split.name}: the report does not name its gt, pred and scans")
    preds = read_box_sets(inputs["pred"])
    empty = {key for key, score in zip(split.keys, split.score) if score < threshold}
    cut = {key: (np.zeros((0, 6)) if key in empty else boxes) for key, boxes in preds.items()}
    path = write_box_sets(folder / f"{split.name}-pred.json", cut)
    report = evaluate_multi3drefer(inputs["gt"], path, ScanTruth(inputs["scans"]))
    return {k: float(report.metrics["overall"][k]) for k in THRESHOLDS}


def format_table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    head = (
        '| split | answers | F1@0.25 | F1@0.5 | F1@0.5 zero-target | F1@0.5 with targets | "no target" |\n'
        "|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {split} | {label} | {100 * s['F1@0.25 overall']:.1f} | {100 * s['F1@0.5 overall']:.1f} | "
        f"{100 * s['F1@0.5 zero-target']:.1f} | {100 * s['F1@0.5 with targets']:.1f} | "
        f"{100 * s['no_target_share']:.0f}% |"
        for split, label, s in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", nargs=2, type=Path, required=True, metavar=("REPORT", "DETAILS"))
    parser.add_argument(
        "--test", nargs=2, type=Path, action="append", default=[], metavar=("REPORT", "DETAILS")
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        calibration = load_split(*args.calibrate)
        tests = [load_split(*pair) for pair in args.test]
        threshold = best_threshold(calibration)
        rows, document = [], {"threshold": threshold, "calibrated_on": str(args.calibrate[0]), "splits": {}}
        with tempfile.TemporaryDirectory(prefix="no-target-") as tmp:
            for role, split in [("calibration", calibration), *(("test", s) for s in tests)]:
                chosen = summary(split, threshold)
                real = rescore(split, threshold, Path(tmp))
                for k in THRESHOLDS:
                    if abs(real[k] - chosen[f"{k} overall"]) > 1e-9:
                        raise NoTargetError(
                            f"{split.name}: {k} {real[k]:.6f} from the evaluator, "
                            f"{chosen[f'{k} overall']:.6f} from the report's per-query scores: the details "
                            "do not belong to this report"
                        )
                label = f"{split.name} ({role})"
                as_predicted, blind = summary(split, 0.0), summary(split, float("inf"))
                rows += [
                    (label, "as predicted", as_predicted),
                    (label, f"--empty-below {threshold:.3f}", chosen),
                    (label, 'blind: "no target" for all', blind),
                ]
                document["splits"][split.name] = {
                    "role": role,
                    "queries": len(split.keys),
                    "zero_target": int(split.zero.sum()),
                    "as_predicted": as_predicted,
                    "with_threshold": chosen,
                    "no_target_for_all": blind,
                }
    except (NoTargetError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"threshold chosen on {calibration.name}: --empty-below {threshold:.4f}")
    print(format_table(rows))
    if args.json:
        from core.atomic import atomic_write_json

        atomic_write_json(args.json, document, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
