"""Why a referring-segmentation model misses: the wrong kind of object, or the right kind but the wrong one?

    python bench/refseg_failure_modes.py --report EVAL.json --pred PRED.json --scans DIR [--json OUT]
        [--details DETAILS.json]

Reads a `python -m core eval refseg` report (its samples carry the scene, the target object and the
unique / multiple split) and the prediction file it scored, takes the object each predicted mask lies on
most (the most overlapped annotated object), and prints per split: how often that object is of the
target's class (its label, normalised as the class-name baselines of `python -m core baselines` read the
sample's object name), how often it is the target, and - among the answers of the right class - how often
the right instance was picked beside the chance of picking it at random among the scene's objects of that
class. A model that reads the class
but not the relations sits at that chance; the class-name blind baseline has the class right every time
and sits at it too, which is why it is hard to beat on "multiple" without reading the relations.
With the `--details` file of `python -m core predict dense3d` of a model with class matching, it also
prints how often the model read the named class from the sentence (`named_class`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scene.labels import normalize_label  # noqa: E402


def majority_object(indices: np.ndarray, vertices: dict[int, np.ndarray]) -> int | None:
    """The annotated object holding most of the predicted vertices; None for an empty or off-object mask."""
    if len(indices) == 0:
        return None
    overlap = {oid: int(np.isin(v, indices, assume_unique=True).sum()) for oid, v in vertices.items()}
    best = max(overlap, key=lambda oid: (overlap[oid], -oid), default=None)
    return best if best is not None and overlap[best] > 0 else None


def failure_modes(
    report: dict, preds: dict, truth, details: dict | None = None
) -> dict[str, dict[str, float]]:
    """Per split (and "overall"): counts and rates of the class / instance outcomes (module docstring);
    with `details` (keyed like the predictions) that carry `named_class`, also how often the sentence's class
    was read right."""
    counts: dict[str, Counter] = defaultdict(Counter)
    chance: dict[str, float] = defaultdict(float)
    for sample in report["samples"]:
        scene = truth.scene(sample["scene_id"])
        classes = {oid: normalize_label(scene.labels[oid]) for oid in scene.vertices}
        target = int(sample["object_id"])
        same_class = sum(1 for cls in classes.values() if cls == classes[target])
        pred = preds.get(sample["key"])
        picked = majority_object(pred.indices, scene.vertices) if pred is not None else None
        named = (details or {}).get(sample["key"], {}).get("named_class")
        for split in (sample["split"], "overall"):
            c = counts[split]
            c["samples"] += 1
            c["class named"] += int(named is not None)
            c["class read"] += int(named is not None and normalize_label(named) == classes[target])
            if picked is None:
                c["no object"] += 1
            elif classes[picked] == classes[target]:
                c["right class"] += 1
                chance[split] += 1.0 / same_class
                c["right object"] += int(picked == target)
    out = {}
    for split, c in counts.items():
        n, right_class = c["samples"], c["right class"]
        out[split] = {
            "samples": n,
            "no_object": c["no object"] / n,
            "right_class": right_class / n,
            "right_object": c["right object"] / n,
            "right_object_given_class": c["right object"] / right_class if right_class else float("nan"),
            "chance_given_class": chance[split] / right_class if right_class else float("nan"),
        }
        if c["class named"]:  # only details of a model with class matching name one
            out[split]["class_read"] = c["class read"] / c["class named"]
    return out


def format_table(modes: dict[str, dict[str, float]]) -> str:
    read = "class_read" in modes["overall"]
    head = "| split | samples | no object | right class | right object | right object, class right | chance |"
    lines = [head + (" class read from the sentence |" if read else ""), "|---" * (8 if read else 7) + "|"]
    order = [s for s in ("unique", "multiple") if s in modes] + ["overall"]
    for split in order:
        m = modes[split]
        lines.append(
            f"| {split} | {m['samples']} | {m['no_object']:.1%} | {m['right_class']:.1%} | "
            f"{m['right_object']:.1%} | {m['right_object_given_class']:.1%} | {m['chance_given_class']:.1%} |"
            + (f" {m.get('class_read', float('nan')):.1%} |" if read else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", required=True, type=Path, help="a `python -m core eval refseg` report")
    parser.add_argument("--pred", required=True, type=Path, help="the prediction file that report scored")
    parser.add_argument("--scans", required=True, type=Path, help="the dataset root of the scenes")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--details", type=Path, help="the --details file of `predict dense3d` (class read)")
    args = parser.parse_args(argv)

    from core.data.errors import DataError
    from core.data.predictions import read_vertex_sets
    from core.eval.errors import EvalError
    from core.eval.scenes import ScanTruth

    try:
        report = json.loads(args.report.read_text())
        if report.get("task") != "refseg" or not isinstance(report.get("samples"), list):
            raise DataError(args.report, "not a refseg report of `python -m core eval refseg --out`")
        details = json.loads(args.details.read_text()) if args.details else None
        modes = failure_modes(report, read_vertex_sets(args.pred), ScanTruth(args.scans), details)
    except (OSError, json.JSONDecodeError, DataError, EvalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(modes))
    if args.json:
        args.json.write_text(json.dumps(modes, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
