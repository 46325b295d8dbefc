"""Dataset statistics for the dashboard: plain functions over DenseScan records and scene documents."""

from __future__ import annotations

from collections import Counter
from typing import Any


def words_per_caption(records: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Caption lengths in words, per level."""
    out: dict[str, list[int]] = {}
    for record in records:
        out.setdefault(str(record.get("level", "object")), []).append(len(str(record["description"]).split()))
    return out


def captions_per_level(records: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(r.get("level", "object")) for r in records))


def category_count(records: list[dict[str, Any]]) -> int:
    """How many categories the object captions name."""
    return len({str(r["object_name"]) for r in records if r.get("level", "object") == "object"})


def categories(records: list[dict[str, Any]], top: int = 25) -> dict[str, int]:
    """Object captions per category, the most frequent first."""
    counts = Counter(str(r["object_name"]) for r in records if r.get("level", "object") == "object")
    return dict(counts.most_common(top))


def pipeline_statuses(records: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(r.get("status", "accepted")) for r in records if r.get("level") == "object"))


def claim_verdicts(docs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Verification claims per kind (category, colour, relation, ...) and verdict."""
    out: dict[str, Counter[str]] = {}
    for doc in docs:
        for obj in doc.get("objects", []):
            for claim in (obj.get("verification") or {}).get("claims", []):
                out.setdefault(str(claim.get("kind")), Counter())[str(claim.get("verdict"))] += 1
    return {kind: dict(counts) for kind, counts in sorted(out.items())}


WORD_BIN = 2  # words per histogram bin: every level uses the same bins


def word_bins(lengths: dict[str, list[int]], size: int = WORD_BIN) -> dict[str, float]:
    """One set of histogram bins for every level (start, end, size), so the levels can be compared."""
    longest = max((max(v) for v in lengths.values() if v), default=size)
    return {"start": 0, "end": (longest // size + 1) * size, "size": size}
