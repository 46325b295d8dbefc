"""Progress numbers for the review workspace and the dashboard, from the review store.

`decision_rows` reads the decisions once (read-only); the aggregations below are plain functions over
those rows so that they are tested without a database.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select

from review import ReviewService
from review.schema import Decision, Item, User
from review.stats import Stats

VOTES = ("approve", "edit", "reject")


@dataclass(frozen=True)
class DecisionRow:
    day: date
    user: str
    category: str
    level: str
    action: str  # approve | edit | reject | skip
    undone: bool


def decision_rows(service: ReviewService) -> list[DecisionRow]:
    with service.db.read() as session:
        rows = session.execute(
            select(
                Decision.created_at,
                User.username,
                Item.object_name,
                Item.level,
                Decision.kind,
                Decision.undone_at,
            )
            .join(User, User.id == Decision.user_id)
            .join(Item, Item.id == Decision.item_id)
            .order_by(Decision.id)
        ).all()
    return [
        DecisionRow(_as_utc(created).date(), user, category, level, kind, undone is not None)
        for created, user, category, level, kind, undone in rows
    ]


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
