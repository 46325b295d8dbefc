"""`python app.py`: the DenseScan app (review workspace, scene explorer, dashboard).

With no arguments it builds the embedded demo once under `.demo/` (synthetic scenes, the DenseScan
pipeline with the offline `grounded` captioner, a review database with demo users) and serves it.
With `--data DIR --db URL` it serves your own scans and the review database of your annotations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
DEMO_DIR = REPO / ".demo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="a ScanNet-format dataset root (default: the embedded demo)"
    )
    parser.add_argument(
        "--annotations",
        type=Path,
        help="the pipeline's output folder (default: DIR/densescan); imported when the database is empty",
    )
    parser.add_argument("--db", help="review database URL or SQLite path (default: DIR/review.db)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", action="store_true", help="require login; roles from the review store")
    parser.add_argument("--user", default="local", help="who acts when --auth is off (default: local)")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace):  # -> app.context.AppContext
    """The context to serve: the demo (built once) or the user's data."""
    from app.access import ensure_local_user
    from app.context import AppContext
    from app.demo import DEMO_PASSWORD, DEMO_USERS, build_demo
    from review import ReviewService

    if args.data is None:
        paths = build_demo(DEMO_DIR)
        scans, annotations, db = paths.root, paths.annotations, args.db or paths.db_url
        if args.auth:
            users = ", ".join(f"{name} ({role})" for name, role in DEMO_USERS.items())
            print(f"demo users: {users}; demo password: {DEMO_PASSWORD}", flush=True)
    else:
        scans = args.data
        annotations = args.annotations or args.data / "densescan"
        db = args.db or f"sqlite:///{args.data / 'review.db'}"
    service = ReviewService(db)
    if not service.list_items(limit=1) and (annotations / "densescan.json").is_file():
        print(f"importing {annotations / 'densescan.json'} into the review database", flush=True)
        print(service.import_annotations(annotations, progress=True), flush=True)
    ctx = AppContext(
        service,
        scans if scans.is_dir() else None,
        annotations if annotations.is_dir() else None,
        auth=args.auth,
        local_user=args.user,
    )
    if not args.auth:
        ensure_local_user(service, args.user)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: serving on {args.host} without --auth: anyone who can reach it acts as an admin")
    return ctx


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from app.main import build_app, launch

    ctx = prepare(args)
    launch(build_app(ctx), ctx, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
