"""Agreement measures between two reviewers: Cohen's kappa on approve/reject and edit distance of texts."""

from __future__ import annotations

from collections.abc import Sequence


def cohen_kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Kappa of two raters' yes/no labels: (observed - chance) / (1 - chance); None when undefined.

    Chance agreement comes from each rater's own rate of saying yes. Kappa is undefined when both raters
    always give the same single label (chance agreement is 1), so None is returned then.
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    yes_a = sum(a for a, _ in pairs) / n
    yes_b = sum(b for _, b in pairs) / n
    chance = yes_a * yes_b + (1 - yes_a) * (1 - yes_b)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters (insertions, deletions, substitutions), in O(len(a)*len(b))."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalized_edit_distance(a: str, b: str) -> float:
    """Edit distance divided by the longer text's length: 0 for equal texts, 1 for nothing in common."""
    longest = max(len(a), len(b))
    return edit_distance(a, b) / longest if longest else 0.0
