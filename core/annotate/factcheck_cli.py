"""`python -m core factcheck --scans DIR --descriptions FILE [--out report.json] [--json]`.

Checks every claim of a description file against the 3D scenes it describes, with the pipeline's own
checker (`core.annotate.verify.fact_check`), so that anyone can audit our DenseScan output or a human
dataset (ScanRefer, Nr3D-style text in ScanRefer format) the same way. Per record it prints each claim with
its verdict (supported / contradicted / unverifiable and why), then a summary: verdict counts, sentences
the reader could not parse, and the records with a contradiction.

Evidence: object boxes from the scan's aggregation; the color of an object is the vote of its mesh vertex
colors (`core.scene.colors`), since a description file carries no views. Names are matched through the
label table (`--labels`, else the table in the scans root, else the shipped one) plus `claims.SYNONYMS`.
DenseScan records other than object level are listed as skipped, as are records whose scene or object
is missing. Exit status 0, or 2 with a one-line error naming the file on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.annotate.claims import Vocabulary
from core.annotate.facts import ColorEvidence
from core.annotate.verify import CONTRADICTED, SUPPORTED, UNVERIFIABLE, Verdict, fact_check
from core.data.densescan import parse_densescan
from core.data.errors import DataError
from core.data.jsonio import read_json, read_json_list, write_json
from core.data.scanrefer import parse_scanrefer
from core.scene.colors import color_votes, sample_pixels
from core.scene.errors import SceneError

LABEL_TABLE = "scannetv2-labels.combined.tsv"
COLOR_SAMPLES = 2000  # vertex colors that vote per object


@dataclass
class CheckedRecord:
    key: str
    object_name: str
    description: str
    claims: list[Verdict] = field(default_factory=list)
    skipped: str = ""  # why the record was not checked

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "object_name": self.object_name,
            "description": self.description,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        else:
            out["claims"] = [v.to_json() for v in self.claims]
        return out


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "factcheck",
        help="check every claim of a description file (ScanRefer or DenseScan format) against the scans",
        description="Read a ScanRefer-format or DenseScan description file, check each claim (category, "
        "color, size, count, spatial relation) against the 3D scene, print each claim with its verdict "
        "and a summary. Sentences the reader cannot parse are reported as unparsed.",
    )
    p.add_argument("--scans", required=True, type=Path, help="ScanNet scans folder (or dataset root)")
    p.add_argument("--descriptions", required=True, type=Path, help="ScanRefer or DenseScan JSON file")
    p.add_argument("--out", type=Path, help="also write the full report as JSON here")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the text")
    p.add_argument("--labels", type=Path, help=f"label table (default: {LABEL_TABLE} in --scans, or shipped)")
    p.set_defaults(run=run)


def _label_map(scans: Path, labels: Path | None):
    from core.scene.labels import LabelMap

    if labels is not None:
        return LabelMap.from_tsv(labels)
    for candidate in (scans / LABEL_TABLE, scans.parent / LABEL_TABLE):
        if candidate.is_file():
            return LabelMap.from_tsv(candidate)
    return LabelMap.default()


def read_descriptions(path: Path) -> list:
    """ScanRefer or DenseScan records (DenseScan when any record has a `level`)."""
    data = read_json_list(path, read_json(path))
    if any(isinstance(r, dict) and "level" in r for r in data):
        return parse_densescan(path, data)
    return parse_scanrefer(path, data)


def check_file(
    scans: Path, descriptions: Path, labels: Path | None = None, progress: bool = False
) -> list[CheckedRecord]:
    """Every record of the file, checked (or skipped with the reason); `progress`: a bar over scenes."""
    from core.scene.scannet import load_scene, scans_dir

    if not scans_dir(scans).is_dir():
        raise SceneError(scans, "no scans folder here")
    items = read_descriptions(descriptions)
    label_map = _label_map(scans, labels)
    by_scene: dict[str, list] = {}
    for item in items:
        by_scene.setdefault(item.scene_id, []).append(item)
    out: list[CheckedRecord] = []
    for scene_id, records in tqdm(by_scene.items(), desc="factcheck", unit="scene", disable=not progress):
        try:
            scene = load_scene(scans, scene_id, label_map=label_map, with_frames=False)
        except SceneError as err:
            out += [
                CheckedRecord(r.key, r.object_name, r.description, skipped=f"scene: {err}") for r in records
            ]
            continue
        objects = scene.objects()
        by_id = {str(o.object_id): o for o in objects}
        vertices = {inst.object_id: inst.vertex_indices for inst in scene.instances}
        vocab = Vocabulary.from_label_map([o.label for o in objects], label_map)
        evidence: dict[int, ColorEvidence] = {}
        for r in records:
            row = CheckedRecord(r.key, r.object_name, r.description)
            subject = by_id.get(str(r.object_id))
            if getattr(r, "level", "object") != "object":
                row.skipped = f"{r.level}-level record"
            elif subject is None:
                row.skipped = f"object {r.object_id} is not in {scene_id}"
            else:
                if subject.object_id not in evidence:
                    colors = scene.mesh.colors[vertices[subject.object_id]]
                    evidence[subject.object_id] = ColorEvidence(
                        color_votes(sample_pixels(colors, COLOR_SAMPLES)), []
                    )
                row.claims = fact_check(r.description, subject, objects, evidence[subject.object_id], vocab)
            out.append(row)
    return out


def summarize(rows: list[CheckedRecord]) -> dict[str, Any]:
    verdicts = Counter(v.verdict for r in rows for v in r.claims)
    return {
        "records": len(rows),
        "checked": sum(not r.skipped for r in rows),
        "skipped": sum(bool(r.skipped) for r in rows),
        "claims": sum(verdicts.values()),
        SUPPORTED: verdicts[SUPPORTED],
        CONTRADICTED: verdicts[CONTRADICTED],
        UNVERIFIABLE: verdicts[UNVERIFIABLE],
        "unparsed_sentences": sum(v.kind == "sentence" for r in rows for v in r.claims),
        "records_with_contradiction": sum(any(v.verdict == CONTRADICTED for v in r.claims) for r in rows),
        "contradicted_records": [r.key for r in rows if any(v.verdict == CONTRADICTED for v in r.claims)],
    }


def _text_report(rows: list[CheckedRecord], summary: dict[str, Any]) -> str:
    lines = []
    for r in rows:
        lines.append(f"{r.key}  {r.object_name}: {r.description}")
        if r.skipped:
            lines.append(f"    skipped: {r.skipped}")
        for v in r.claims:
            what = "unparsed sentence" if v.kind == "sentence" else v.kind
            note = f"  ({v.note})" if v.note else ""
            lines.append(f"    {v.verdict:<12} {what:<9} {v.text!r}{note}")
    s = summary
    lines.append("")
    lines.append(
        f"{s['records']} records ({s['checked']} checked, {s['skipped']} skipped), {s['claims']} claims: "
        f"{s[SUPPORTED]} supported, {s[CONTRADICTED]} contradicted, {s[UNVERIFIABLE]} unverifiable "
        f"({s['unparsed_sentences']} unparsed sentences); "
        f"{s['records_with_contradiction']} records with a contradiction"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        if not args.descriptions.is_file():
            raise DataError(args.descriptions, "no such file")
        rows = check_file(args.scans, args.descriptions, args.labels, progress=True)
    except (DataError, SceneError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = summarize(rows)
    report = {
        "descriptions": str(args.descriptions),
        "summary": summary,
        "records": [r.to_json() for r in rows],
    }
    if args.out is not None:
        write_json(args.out, report, indent=1)
    print(json.dumps(report, indent=1) if args.json else _text_report(rows, summary))
    return 0
