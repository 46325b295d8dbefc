"""The end-of-run table: objects, captions, mean caption length, flagged / rejected, time per stage; and
the per-scene counts behind it (`scene_summary`, kept in each scene's done-marker)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from core.annotate.document import SceneAnnotation
from core.annotate.stats import caption_words

if TYPE_CHECKING:
    from core.annotate.batch import SceneOutcome


def scene_summary(scene_id: str, doc: SceneAnnotation, timings: dict[str, float]) -> dict[str, Any]:
    """Counts for the summary table, stored in the done-marker; words as `stats.caption_words` counts them."""
    captioned = [o for o in doc.objects if o.caption and o.verification]
    statuses = [o.verification.status for o in captioned if o.verification]
    return {
        "scene_id": scene_id,
        "objects": len(doc.objects),
        "captions": len(captioned),
        "words": sum(len(caption_words(o.caption or "")) for o in captioned),
        "accepted": statuses.count("accepted"),
        "flagged": statuses.count("flagged"),
        "rejected": statuses.count("rejected"),
        "not_visible": len(doc.objects) - len(captioned),
        "frames": len(doc.frames),
        "scenarios": len(doc.scenarios),
        "seconds": timings,
    }


def summary_table(outcomes: list[SceneOutcome]) -> str:
    done = [o for o in outcomes if o.ok]
    rows = [("scene", "objects", "captions", "words/caption", "flagged", "rejected", "seconds", "note")]
    stage_seconds: dict[str, float] = defaultdict(float)
    totals = defaultdict(float)
    for o in outcomes:
        if not o.ok:
            rows.append((o.scene_id, "-", "-", "-", "-", "-", "-", f"FAILED: {o.error}"[:80]))
            continue
        s = o.summary
        seconds = sum(s["seconds"].values())
        for stage, value in s["seconds"].items():
            if not o.skipped:
                stage_seconds[stage] += value
        for k in ("objects", "captions", "words", "flagged", "rejected"):
            totals[k] += s[k]
        mean = s["words"] / s["captions"] if s["captions"] else 0.0
        rows.append(
            (
                o.scene_id,
                str(s["objects"]),
                str(s["captions"]),
                f"{mean:.1f}",
                str(s["flagged"]),
                str(s["rejected"]),
                f"{seconds:.1f}",
                "done earlier" if o.skipped else "",
            )
        )
    mean = totals["words"] / totals["captions"] if totals["captions"] else 0.0
    rows.append(
        (
            f"all ({len(done)} ok, {len(outcomes) - len(done)} failed)",
            str(int(totals["objects"])),
            str(int(totals["captions"])),
            f"{mean:.1f}",
            str(int(totals["flagged"])),
            str(int(totals["rejected"])),
            "",
            "",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if stage_seconds:
        lines.append("")
        lines.append(
            "time per stage (this run): " + ", ".join(f"{k} {v:.1f}s" for k, v in stage_seconds.items())
        )
    return "\n".join(lines)
