"""Dataset statistics like the DenseScan paper's: words per caption by level, captions per object and per
category, vocabulary size, status counts and fact-check verdicts. The one place these numbers are
computed: `python -m core annotate --stats` prints them and the app's dashboard draws them.

Words per caption has one definition (`caption_words`): the tokens of `core.text.scanrefer_tokens` that
start with a letter or digit, counted from the description text. Punctuation and clitics ("'s") are not
words, a hyphenated word ("l-shaped") is one, and the count does not depend on who tokenized the record.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.annotate.document import SceneAnnotation
from core.data.densescan import LEVELS, DenseScanRecord, read_densescan
from core.text import scanrefer_tokens

NO_STATUS = "none"  # the status count's key for a record without a status


def caption_words(text: str) -> list[str]:
    """The words of a caption: "It's the L-shaped desk." -> it, the, l-shaped, desk."""
    return [t for t in scanrefer_tokens(text) if t[0].isalnum()]


def words_per_caption(records: Iterable[DenseScanRecord]) -> dict[str, list[int]]:
    """Caption lengths in words (`caption_words`), per level, in record order."""
    out: dict[str, list[int]] = defaultdict(list)
    for r in records:
        out[r.level].append(len(caption_words(r.description)))
    return dict(out)


def captions_per_level(records: Iterable[DenseScanRecord]) -> dict[str, int]:
    return dict(Counter(r.level for r in records))


def categories(records: Iterable[DenseScanRecord], top: int | None = None) -> dict[str, int]:
    """Object-level captions per category, the most frequent first (`top` of them; all when None)."""
    counts = Counter(r.object_name for r in records if r.level == "object")
    return dict(counts.most_common(top))


def category_count(records: Iterable[DenseScanRecord]) -> int:
    """How many categories the object captions name."""
    return len({r.object_name for r in records if r.level == "object"})


def status_counts(records: Iterable[DenseScanRecord], level: str | None = None) -> dict[str, int]:
    """Records per status (of one level, or of all when None); a missing status counts as "none"."""
    counts = Counter(r.status or NO_STATUS for r in records if level is None or r.level == level)
    return dict(sorted(counts.items()))


def claim_verdicts(docs: Iterable[SceneAnnotation]) -> dict[str, dict[str, int]]:
    """Fact-check claims of the scene documents (`annotation.json`) per kind (category, colour, relation,
    ...) and verdict (supported / contradicted / unverifiable)."""
    out: dict[str, Counter[str]] = {}
    for doc in docs:
        for obj in doc.objects:
            for claim in obj.verification.claims if obj.verification else []:
                out.setdefault(str(claim.get("kind")), Counter())[str(claim.get("verdict"))] += 1
    return {kind: dict(counts) for kind, counts in sorted(out.items())}


def summarize(records: Sequence[DenseScanRecord]) -> dict[str, Any]:
    """Counts, mean words per caption by level, captions per object, vocabulary and status."""
    lengths = words_per_caption(records)
    vocabulary = {w for r in records for w in caption_words(r.description)}
    per_object = Counter((r.scene_id, r.object_id) for r in records if r.level == "object")
    return {
        "records": len(records),
        "scenes": len({r.scene_id for r in records}),
        "by_level": {
            level: {
                "count": len(lengths.get(level, [])),
                "mean_words": round(sum(lengths.get(level, [])) / max(len(lengths.get(level, [])), 1), 2),
            }
            for level in LEVELS
        },
        "captions_per_object": round(sum(per_object.values()) / max(len(per_object), 1), 2),
        "objects": len(per_object),
        "vocabulary": len(vocabulary),
        "status": status_counts(records),
    }


def dataset_stats(path: Path) -> dict[str, Any]:
    """`summarize` over a run's `densescan.json` (a DataError names the file and record when it is bad)."""
    return summarize(read_densescan(path))


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
