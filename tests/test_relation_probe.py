"""bench/relation_probe.py: the ground-truth bound of the "near the <anchor>" prior, on generated rooms."""

from __future__ import annotations

import json

from bench import relation_probe as script
from core.eval.scenes import ScanTruth


def test_the_probe_counts_anchors_and_beats_chance(synth_root, tmp_path, capsys):
    records = [
        r
        for split in ("train", "val")
        for r in json.loads((synth_root / "annotations" / f"ScanRefer_filtered_{split}.json").read_text())
    ]
    out = script.probe(records, ScanTruth(synth_root))
    assert 0 < out["with_anchor"] <= out["multiple"] < len(records)
    # the generator says "next to" / "near" only when it holds: the nearest copy wins far above chance
    assert out["nearest_is_target"] > out["chance"] + 0.15, out
    # a description that names nothing else is no anchor query
    bare = [{**r, "description": "there is an object."} for r in records]
    assert script.probe(bare, ScanTruth(synth_root))["with_anchor"] == 0
    gt = tmp_path / "all.json"
    gt.write_text(json.dumps(records))
    assert script.main(["--scans", str(synth_root), "--gt", str(gt), "--json", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text()) == out
    assert "| multiple queries |" in capsys.readouterr().out
    assert script.main(["--scans", str(synth_root), "--gt", str(tmp_path / "missing.json")]) == 2
