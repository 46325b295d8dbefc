"""How much can "near the <anchor>" tell same-class copies apart? An upper bound from the ground truth.

    python bench/relation_probe.py --scans DIR --gt SCANREFER.json [--json OUT]

For every ScanRefer query whose target has copies of its class in the room ("multiple"), the anchor is read
from the description as Dense3D's relation matching reads it (`core.models.common.relation_match.
AnchorReader`, told the true class of the target), and the copy whose ground-truth box is nearest (box gap)
to a ground-truth object of the anchor's class is picked. Prints how many queries name an anchor present
in the room, how often that pick is the target, and the chance of a random copy: the most the relation prior
can add, with perfect proposals and classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.models.common.categories import OTHER, build_vocabulary, class_ids  # noqa: E402
from core.models.common.relation_match import AnchorReader, centre_size_gaps  # noqa: E402


def probe(records: list[dict], truth) -> dict[str, float]:
    """Counts and rates of the module docstring over `records` (ScanRefer dicts) and a `ScanTruth`."""
    scenes = {r["scene_id"] for r in records}
    labels = [label for s in sorted(scenes) for label in truth.scene(s).labels.values()]
    vocabulary = build_vocabulary(labels, min_count=1)
    read = AnchorReader(vocabulary)
    multiple = with_anchor = right = 0
    chance = 0.0
    for r in records:
        scene = truth.scene(r["scene_id"])
        ids = [oid for oid in scene.boxes]
        classes = dict(zip(ids, class_ids([scene.labels[oid] for oid in ids], vocabulary)))
        target = int(r["object_id"])
        copies = [oid for oid in ids if classes[oid] == classes[target]]
        if len(copies) < 2:
            continue
        multiple += 1
        anchor = read(r["description"], classes[target])
        anchors = [oid for oid in ids if classes[oid] == anchor]
        if anchor == OTHER or not anchors:
            continue
        with_anchor += 1
        gaps = centre_size_gaps(torch.from_numpy(np.stack([scene.boxes[oid] for oid in ids])))
        index = {oid: i for i, oid in enumerate(ids)}
        nearest = min(copies, key=lambda c: min(float(gaps[index[c], index[a]]) for a in anchors))
        right += int(nearest == target)
        chance += 1.0 / len(copies)
    return {
        "multiple": multiple,
        "with_anchor": with_anchor,
        "nearest_is_target": right / with_anchor if with_anchor else float("nan"),
        "chance": chance / with_anchor if with_anchor else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", required=True, help="dataset root (scans/ under it)")
    parser.add_argument("--gt", required=True, help="ScanRefer-format query file")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    from core.eval.scenes import ScanTruth

    try:
        records = json.loads(Path(args.gt).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: {args.gt}: {exc}", file=sys.stderr)
        return 2
    out = probe(records, ScanTruth(args.scans))
    print("| multiple queries | naming an anchor in the room | nearest copy to it is the target | chance |")
    print("|---|---|---|---|")
    print(
        f"| {out['multiple']} | {out['with_anchor']} ({out['with_anchor'] / max(out['multiple'], 1):.0%}) "
        f"| {out['nearest_is_target']:.1%} | {out['chance']:.1%} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
