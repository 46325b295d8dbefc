"""Progress numbers for the review workspace and the dashboard, from the review store.

`ReviewService.decision_log()` reads the decisions once; the aggregations below are plain functions over
those rows so that they are tested without a database.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime

from review.stats import DecisionRow, Stats

VOTES = ("approve", "edit", "reject")


def done_today(rows: list[DecisionRow], user: str, today: date | None = None) -> int:
    """The user's decisions today (UTC), skips and undone ones left out."""
    today = today or datetime.now(UTC).date()
    return sum(1 for r in rows if r.user == user and r.day == today and r.action in VOTES and not r.undone)


def acceptance_rate(rows: list[DecisionRow], user: str) -> float | None:
    votes = [r for r in rows if r.user == user and r.action in VOTES and not r.undone]
    if not votes:
        return None
    return sum(r.action != "reject" for r in votes) / len(votes)


def queue_by_status(stats: Stats) -> dict[str, int]:
    """Items per review status over every level."""
    counts: Counter[str] = Counter()
    for by_status in stats.items_by_level.values():
        counts.update(by_status)
    return dict(sorted(counts.items()))


def votes_per_day(rows: list[DecisionRow], by: str = "user") -> dict[str, dict[date, int]]:
    """Votes per day for each annotator (`by="user"`) or category (`by="category"`)."""
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if r.action in VOTES and not r.undone:
            out[getattr(r, by)][r.day] += 1
    return {name: dict(sorted(days.items())) for name, days in sorted(out.items())}


def votes_by_action(rows: list[DecisionRow], by: str = "user") -> dict[str, dict[str, int]]:
    """Active votes per annotator (`by="user"`) or category, split by action (approve / edit / reject)."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.action in VOTES and not r.undone:
            counts = out.setdefault(getattr(r, by), dict.fromkeys(VOTES, 0))
            counts[r.action] += 1
    return dict(sorted(out.items()))
