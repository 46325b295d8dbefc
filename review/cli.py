"""`python -m review`: import pipeline output, export the reviewed training set, manage users, print stats."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from review.config import ReviewConfig
from review.db import display_url, one_line, sqlite_file
from review.errors import ReviewError
from review.exporter import EXPORT_CHOICES, check_export_path
from review.service import ReviewService
from review.stats import RateStats, Stats
from review.views import Role

DB_ENV = "REVIEW_DB_URL"


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=os.environ.get(DB_ENV),
        required=DB_ENV not in os.environ,
        help=f"database URL (sqlite:///file.db, postgresql://...) or a SQLite file path; default ${DB_ENV}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m review",
        description="The review store: import pipeline annotations, export the reviewed training set, "
        "manage users, print statistics.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("import", help="load pipeline annotations (idempotent; keeps human decisions)")
    p.add_argument(
        "--annotations", required=True, type=Path, help="folder holding densescan.json (or the file)"
    )
    _add_db(p)
    p.add_argument("--double-review-rate", type=float, default=ReviewConfig.double_review_rate)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_import)

    p = commands.add_parser("export", help="write the reviewed training set in the DenseScan record format")
    _add_db(p)
    p.add_argument("--out", required=True, help="the file to write (JSON); its folder is created if needed")
    p.add_argument(
        "--status",
        choices=EXPORT_CHOICES,
        default="approved",
        help="approved items only (default), or all but rejected",
    )
    p.set_defaults(run=run_export)

    users = commands.add_parser("users", help="add or list users").add_subparsers(
        dest="users_command", metavar="ACTION", required=True
    )
    p = users.add_parser("add", help="add a user; the password is prompted for, or read from stdin")
    _add_db(p)
    p.add_argument("username")
    p.add_argument("--role", choices=[r.value for r in Role], default=Role.ANNOTATOR.value)
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    p.set_defaults(run=run_users_add)
    p = users.add_parser("list", help="list users and roles")
    _add_db(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_users_list)

    p = commands.add_parser("stats", help="items by level and status, decisions by annotator, agreement")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_stats)
    return parser


def _existing(url: str) -> ReviewService:
    """A service on a database that must exist already: a mistyped path should not create an empty one."""
    path = sqlite_file(url)
    if path is not None and not path.exists():  # a folder or a foreign file: `Database` says what it is
        raise ReviewError(path, "no review database here (create it with `python -m review import`)", "input")
    return ReviewService(url)


def run_import(args: argparse.Namespace) -> int:
    service = ReviewService(args.db, ReviewConfig(double_review_rate=args.double_review_rate))
    report = service.import_annotations(args.annotations, progress=not args.quiet)
    print(report.summary())
    for conflict in report.conflicts[:20]:
        state = f"{conflict.review_status}, revision {conflict.head_revision}"
        print(f"  conflict {conflict.key} ({state}): {conflict.reason}")
    if len(report.conflicts) > 20:
        print(f"  ... and {len(report.conflicts) - 20} more conflicts")
    return 0


def run_export(args: argparse.Namespace) -> int:
    check_export_path(args.out)  # before reading the database: a wrong --out fails at once
    report = _existing(args.db).export(args.out, args.status)
    by_status = ", ".join(f"{n} {s}" for s, n in sorted(report.by_review_status.items())) or "nothing"
    print(f"wrote {report.records} records ({by_status}; {report.edited} edited) to {report.path}")
    print(
        "fine-tune on it: python -m core train dense3d --config PRESET --init CHECKPOINT --data DIR "
        f"--densescan {report.path} --out DIR"
    )
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ReviewError(None, "the two passwords differ", code="input")
    return first


def run_users_add(args: argparse.Namespace) -> int:
    user = ReviewService(args.db).add_user(args.username, _read_password(args.password_stdin), args.role)
    print(f"added {user.username} ({user.role})")
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    users = _existing(args.db).list_users()
    if args.json:
        print(json.dumps([asdict(u) for u in users], default=str, indent=1))
    for u in [] if args.json else users:
        state = "active" if u.active else "disabled"
        print(f"{u.username:24} {u.role:10} {state:9} since {u.created_at:%Y-%m-%d}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _rate_table(title: str, rows: list[RateStats]) -> list[str]:
    lines = [
        f"{title:24} {'votes':>6} {'approve':>7} {'edit':>5} {'reject':>6} {'skip':>5} {'undone':>6} "
        f"{'active h':>8} {'per h':>6} {'accept':>6} {'edit %':>6}"
    ]
    for r in rows:
        per_hour = "-" if r.throughput_per_hour is None else f"{r.throughput_per_hour:.0f}"
        counts = f"{r.votes:6} {r.approved:7} {r.edited:5} {r.rejected:6} {r.skipped:5} {r.undone:6}"
        rates = f"{per_hour:>6} {_pct(r.acceptance_rate):>6} {_pct(r.edit_rate):>6}"
        lines.append(f"{r.name[:24]:24} {counts} {r.active_seconds / 3600:8.2f} {rates}")
    return lines


def format_stats(stats: Stats) -> str:
    statuses = sorted({s for by_status in stats.items_by_level.values() for s in by_status})
    lines = [f"{stats.items} items", f"{'level':10}" + "".join(f"{s:>16}" for s in statuses)]
    for level, by_status in stats.items_by_level.items():
        lines.append(f"{level:10}" + "".join(f"{by_status.get(s, 0):16}" for s in statuses))
    lines.append(
        "pipeline status: " + ", ".join(f"{n} {s}" for s, n in stats.items_by_pipeline_status.items())
    )
    lines += ["", *_rate_table("annotator", stats.annotators), "", *_rate_table("category", stats.categories)]
    a = stats.agreement
    kappa = "-" if a.kappa is None else f"{a.kappa:.3f}"
    distance = "-" if a.mean_edit_distance is None else f"{a.mean_edit_distance:.1f} characters"
    lines += [
        "",
        f"agreement: {a.double_reviewed} double-reviewed items, observed {_pct(a.observed_agreement)}, "
        f"Cohen's kappa {kappa}; both edited {a.both_edited}, mean edit distance {distance}",
    ]
    return "\n".join(lines)


def run_stats(args: argparse.Namespace) -> int:
    stats = _existing(args.db).stats()
    print(json.dumps(stats.to_dict(), indent=1) if args.json else format_stats(stats))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ReviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:  # the database failed after it opened (server gone, disk full, ...)
        print(f"error: {display_url(args.db)}: database error: {one_line(exc)}", file=sys.stderr)
        return 1
