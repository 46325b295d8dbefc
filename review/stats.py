"""Review statistics: items by level and status, per-annotator and per-category rates, and agreement.

Rates count votes (approve, edit-and-approve, reject) that are not undone: acceptance rate is the share
of votes that accept the caption (approve or edit), edit rate the share that corrected it, throughput
the votes per hour of active time reported by the app. Agreement compares, on each item that two people
reviewed, the first vote of each: Cohen's kappa on approve vs reject, and the character edit distance
between their texts where both corrected it (the second person sees the first one's correction, so this
measures how much the second changed it).

The progress numbers (done today, a user's acceptance rate, votes per day / per action, the queue by
status) are plain functions over `decision_log()` rows and `Stats`, so the app only draws them; they use
the same vote and acceptance definitions as the per-annotator rates.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from review.agreement import cohen_kappa, edit_distance, normalized_edit_distance
from review.policy import accepts
from review.schema import Decision, Item, Revision, User
from review.views import Action

VOTES = (Action.APPROVE, Action.EDIT, Action.REJECT)  # a skip is not a vote


def acceptance_rate(actions: Iterable[Action | str]) -> float | None:
    """The share of votes that accept the caption (approve or edit-and-approve); skips are not votes.
    None when there is no vote. The caller leaves undone decisions out."""
    votes = [Action(a) for a in actions if a in VOTES]
    return sum(map(accepts, votes)) / len(votes) if votes else None


@dataclass(frozen=True)
class RateStats:
    name: str
    votes: int
    approved: int
    edited: int
    rejected: int
    skipped: int
    undone: int
    active_seconds: float
    throughput_per_hour: float | None
    acceptance_rate: float | None
    edit_rate: float | None


@dataclass(frozen=True)
class AgreementStats:
    double_reviewed: int  # items with votes from two or more people
    observed_agreement: float | None
    kappa: float | None
    both_edited: int
    mean_edit_distance: float | None
    mean_normalized_edit_distance: float | None


@dataclass(frozen=True)
class Stats:
    items: int
    items_by_level: dict[str, dict[str, int]]  # level -> review status -> count
    items_by_pipeline_status: dict[str, int]
    annotators: list[RateStats]
    categories: list[RateStats]
    agreement: AgreementStats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    item_id: int
    user: str
    category: str
    action: Action
    active_seconds: float
    undone: bool
    text: str | None  # the revision the vote made (None for skips)


def _rates(name: str, rows: list[_Row]) -> RateStats:
    active = [r for r in rows if not r.undone]
    counts = Counter(r.action for r in active)
    votes = counts[Action.APPROVE] + counts[Action.EDIT] + counts[Action.REJECT]
    seconds = sum(r.active_seconds for r in active)
    return RateStats(
        name=name,
        votes=votes,
        approved=counts[Action.APPROVE],
        edited=counts[Action.EDIT],
        rejected=counts[Action.REJECT],
        skipped=counts[Action.SKIP],
        undone=len(rows) - len(active),
        active_seconds=round(float(seconds), 1),
        throughput_per_hour=round(votes / (seconds / 3600), 1) if seconds > 0 else None,
        acceptance_rate=acceptance_rate(r.action for r in active),
        edit_rate=counts[Action.EDIT] / votes if votes else None,
    )


def _agreement(rows: list[_Row]) -> AgreementStats:
    first_votes: dict[int, dict[str, _Row]] = defaultdict(dict)
    for r in rows:
        if not r.undone and r.action != Action.SKIP:
            first_votes[r.item_id].setdefault(r.user, r)
    pairs, distances, normalized = [], [], []
    for votes in first_votes.values():
        if len(votes) < 2:
            continue
        a, b = list(votes.values())[:2]
        pairs.append((accepts(a.action), accepts(b.action)))
        if a.action == b.action == Action.EDIT and a.text is not None and b.text is not None:
            distances.append(edit_distance(a.text, b.text))
            normalized.append(normalized_edit_distance(a.text, b.text))
    return AgreementStats(
        double_reviewed=len(pairs),
        observed_agreement=sum(x == y for x, y in pairs) / len(pairs) if pairs else None,
        kappa=cohen_kappa(pairs),
        both_edited=len(distances),
        mean_edit_distance=sum(distances) / len(distances) if distances else None,
        mean_normalized_edit_distance=sum(normalized) / len(normalized) if normalized else None,
    )


def compute_stats(session: Session) -> Stats:
    """All statistics from one consistent snapshot."""
    by_level: dict[str, dict[str, int]] = defaultdict(dict)
    for level, status, n in session.execute(
        select(Item.level, Item.review_status, func.count()).group_by(Item.level, Item.review_status)
    ):
        by_level[level][status] = n
    by_pipeline = dict(
        session.execute(select(Item.pipeline_status, func.count()).group_by(Item.pipeline_status)).all()
    )
    query = (
        select(Decision, User.username, Item.object_name, Revision.description)
        .join(User, User.id == Decision.user_id)
        .join(Item, Item.id == Decision.item_id)
        .outerjoin(
            Revision,
            and_(
                Revision.item_id == Decision.item_id,
                Revision.number == Decision.revision_number,
                Decision.kind != Action.SKIP.value,
            ),
        )
        .order_by(Decision.id)
    )
    rows = [
        _Row(d.item_id, name, category, Action(d.kind), d.active_seconds, d.undone_at is not None, text)
        for d, name, category, text in session.execute(query)
    ]
    per_user: dict[str, list[_Row]] = defaultdict(list)
    per_category: dict[str, list[_Row]] = defaultdict(list)
    for r in rows:
        per_user[r.user].append(r)
        per_category[r.category].append(r)
    return Stats(
        items=sum(sum(v.values()) for v in by_level.values()),
        items_by_level={level: dict(sorted(v.items())) for level, v in sorted(by_level.items())},
        items_by_pipeline_status=dict(sorted(by_pipeline.items())),
        annotators=[_rates(name, per_user[name]) for name in sorted(per_user)],
        categories=[_rates(name, per_category[name]) for name in sorted(per_category)],
        agreement=_agreement(rows),
    )


@dataclass(frozen=True)
class DecisionRow:
    """One decision, flattened for progress views (done today, votes per day per annotator)."""

    day: date  # UTC
    user: str
    category: str
    level: str
    action: str  # approve | edit | reject | skip
    undone: bool


def decision_log(session: Session) -> list[DecisionRow]:
    """Every decision in order, one read."""
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


def _votes(rows: Iterable[DecisionRow]) -> list[DecisionRow]:
    """The rows that are votes still in force (not skips, not undone)."""
    return [r for r in rows if r.action in VOTES and not r.undone]


def done_today(rows: list[DecisionRow], user: str, today: date | None = None) -> int:
    """The user's votes today (UTC), skips and undone ones left out."""
    today = today or datetime.now(UTC).date()
    return sum(1 for r in _votes(rows) if r.user == user and r.day == today)


def user_acceptance_rate(rows: list[DecisionRow], user: str) -> float | None:
    """`acceptance_rate` of the user's votes in force; None before their first vote."""
    return acceptance_rate(r.action for r in _votes(rows) if r.user == user)


@dataclass(frozen=True)
class UserProgress:
    """The review workspace's progress line for one annotator."""

    done_today: int  # votes in force cast today (UTC)
    queue: dict[str, int]  # items per review status
    acceptance_rate: float | None  # of the user's votes in force; None before the first


def user_progress(session: Session, username: str, now: datetime) -> UserProgress:
    """`UserProgress` from three aggregate queries over the user's decisions (the decisions table is
    indexed by user): the same numbers as `done_today`, `queue_by_status` and `user_acceptance_rate`
    without reading every decision and revision of the project on each review step."""
    queue = session.execute(select(Item.review_status, func.count()).group_by(Item.review_status)).all()
    in_force = and_(
        User.username == username,
        Decision.kind.in_([a.value for a in VOTES]),
        Decision.undone_at.is_(None),
    )
    votes = select(Decision.kind, func.count()).join(User, User.id == Decision.user_id).where(in_force)
    by_kind = {kind: n for kind, n in session.execute(votes.group_by(Decision.kind))}
    midnight = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    today = and_(Decision.created_at >= midnight, Decision.created_at < midnight + timedelta(days=1))
    joined = select(func.count()).select_from(Decision).join(User, User.id == Decision.user_id)
    done = session.scalar(joined.where(in_force, today)) or 0
    total = sum(by_kind.values())
    accepted = sum(n for kind, n in by_kind.items() if accepts(Action(kind)))
    return UserProgress(done, dict(sorted(queue)), accepted / total if total else None)


def queue_by_status(stats: Stats) -> dict[str, int]:
    """Items per review status over every level."""
    counts: Counter[str] = Counter()
    for by_status in stats.items_by_level.values():
        counts.update(by_status)
    return dict(sorted(counts.items()))


def votes_per_day(rows: list[DecisionRow], by: str = "user") -> dict[str, dict[date, int]]:
    """Votes in force per day for each annotator (`by="user"`) or category (`by="category"`)."""
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for r in _votes(rows):
        out[getattr(r, by)][r.day] += 1
    return {name: dict(sorted(days.items())) for name, days in sorted(out.items())}


def votes_by_action(rows: list[DecisionRow], by: str = "user") -> dict[str, dict[str, int]]:
    """Votes in force per annotator (`by="user"`) or category, split by action (approve / edit / reject)."""
    out: dict[str, dict[str, int]] = {}
    for r in _votes(rows):
        counts = out.setdefault(getattr(r, by), {a.value: 0 for a in VOTES})
        counts[r.action] += 1
    return dict(sorted(out.items()))
