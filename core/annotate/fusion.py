"""Stage 3, multi-view fusion: what recurs across the per-view descriptions wins; conflicts are kept.

The claims of every view's text are read back (`claims.py`). The measured color (the dominant word of
the object's pixels pooled over its views) wins when any view states it; otherwise the color more views
state than any other (ties broken by the measured pixel votes); a relation is kept when at least
`min_views` views state it. Disagreements are recorded as conflicts in words a reviewer reads as they
are ("views disagree on the color: beige in 4 views (kept), brown in 4 views"; "'near the pillow'
dropped: only 1 view").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.annotate.claims import extract_claims
from core.annotate.facts import ColorEvidence
from core.scene.relations import normalize_label


@dataclass
class FusedAttributes:
    color: str | None
    relations: list[str]  # relation phrases, most views first
    color_counts: dict[str, int] = field(default_factory=dict)
    relation_counts: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def recurring(self) -> list[str]:
        """Human-readable list of what the views agree on, for the fusion prompt."""
        out = [f"color {self.color}"] if self.color else []
        return out + self.relations


VIEW_DEPENDENT = ("left of", "right of", "in front of", "behind")


def fuse_views(
    view_texts: list[str], label: str, labels: list[str], colors: ColorEvidence, max_relations: int
) -> FusedAttributes:
    color_counts: Counter[str] = Counter()
    relation_counts: Counter[str] = Counter()
    for text in view_texts:
        claims = extract_claims(text, label, labels)
        color_counts.update({c.value for c in claims if c.kind == "color"})
        relation_counts.update(
            {
                normalize_label(c.text)
                for c in claims
                if c.kind == "relation" and c.value not in VIEW_DEPENDENT
            }
        )
    color = None
    if colors.dominant and colors.dominant in color_counts:  # what the camera sees, when a view says it
        color = colors.dominant
    elif color_counts:
        color = max(color_counts, key=lambda c: (color_counts[c], colors.share(c), c))
    elif colors.dominant:
        color = colors.dominant
    min_views = 1 if len(view_texts) <= 2 else 2
    kept = sorted(
        (r for r, n in relation_counts.items() if n >= min_views), key=lambda r: (-relation_counts[r], r)
    )[:max_relations]
    conflicts = []
    if len(color_counts) > 1:
        ranked = sorted(color_counts.items(), key=lambda cn: (-cn[1], cn[0]))
        stated = ", ".join(f"{c} in {_views(n)}{' (kept)' if c == color else ''}" for c, n in ranked)
        conflicts.append(f"views disagree on the color: {stated}")
    for r, n in sorted(relation_counts.items()):
        if r not in kept:
            why = f"only {_views(n)}" if n < min_views else f"{_views(n)}, beyond the {max_relations} kept"
            conflicts.append(f"'{r}' dropped: {why}")
    return FusedAttributes(
        color, kept, dict(sorted(color_counts.items())), dict(sorted(relation_counts.items())), conflicts
    )


def _views(n: int) -> str:
    return f"{n} view" if n == 1 else f"{n} views"
