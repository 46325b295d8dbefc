"""Dataset statistics like the DenseScan paper's: words per caption by level, captions per object,
vocabulary size, and status counts, from a run's `densescan.json`."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from core.data.densescan import LEVELS, read_densescan


def dataset_stats(path: Path) -> dict[str, Any]:
    records = read_densescan(path)
    words_by_level: dict[str, list[int]] = defaultdict(list)
    vocabulary: set[str] = set()
    per_object: Counter[tuple[str, str]] = Counter()
    status = Counter(r.status for r in records)
    for r in records:
        words = [t for t in r.token if t.isalnum()]
        words_by_level[r.level].append(len(words))
        vocabulary.update(words)
        if r.level == "object":
            per_object[(r.scene_id, r.object_id)] += 1
    return {
        "records": len(records),
        "scenes": len({r.scene_id for r in records}),
        "by_level": {
            level: {
                "count": len(words_by_level[level]),
                "mean_words": round(sum(words_by_level[level]) / max(len(words_by_level[level]), 1), 2),
            }
            for level in LEVELS
        },
        "captions_per_object": round(sum(per_object.values()) / max(len(per_object), 1), 2),
        "objects": len(per_object),
        "vocabulary": len(vocabulary),
        "status": {k or "none": v for k, v in sorted(status.items(), key=lambda kv: str(kv[0]))},
    }


def format_stats(stats: dict[str, Any]) -> str:
    lines = [
        f"records {stats['records']} in {stats['scenes']} scenes; vocabulary {stats['vocabulary']} words",
        f"objects {stats['objects']}, captions per object {stats['captions_per_object']}",
        "level      count  words/caption",
    ]
    for level, row in stats["by_level"].items():
        lines.append(f"{level:<10} {row['count']:>5}  {row['mean_words']:>13}")
    lines.append("status: " + ", ".join(f"{k} {v}" for k, v in stats["status"].items()))
    return "\n".join(lines)
