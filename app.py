"""`python app.py`: the DenseScan app (review workspace, scene explorer, dashboard, ask the scene).

With no arguments it builds the embedded demo once under `.demo/` (synthetic scenes, the DenseScan
pipeline with the offline `grounded` captioner, a review database with demo users) and serves it.
With `--data DIR --db URL` it serves your own scans and the review database of your annotations.
Several `python app.py` processes (on different ports) may serve one PostgreSQL database together.
It says what it is doing from the first second: the heavy libraries load after the first line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent
DEMO_DIR = REPO / ".demo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from app.guard import allowed_host_value

    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="a ScanNet-format dataset root (default: the embedded demo)"
    )
    parser.add_argument(
        "--annotations",
        type=Path,
        help="the pipeline's output folder (default: DIR/densescan); imported when the database is empty",
    )
    parser.add_argument(
        "--db",
        help="review database URL (sqlite:///FILE or postgresql://USER:PASSWORD@HOST/NAME) or SQLite path "
        "(default: DIR/review.db)",
    )
    parser.add_argument(
        "--export-dir",
        type=Path,
        help="where the Admin tab writes exports (default: exports/ beside the SQLite database, else "
        "beside the data)",
    )
    parser.add_argument(
        "--dense3d",
        type=Path,
        help="Dense3D checkpoint folder for the Ask tab (default: assets/dense3d when present)",
    )
    parser.add_argument(
        "--ross3d",
        type=Path,
        help="Ross3D checkpoint folder for the Ask tab (default: assets/ross3d when present)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads for the models (default: the cores, at most 8)"
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="load the Ask tab's models when first asked, not in the background at start",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", action="store_true", help="require login; roles from the review store")
    parser.add_argument("--user", default="local", help="who acts when --auth is off (default: local)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        type=allowed_host_value,
        metavar="NAME[:PORT]",
        help="another host name the app answers to, e.g. behind a reverse proxy (repeatable); requests "
        "naming any other host are refused",
    )
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def export_dir_for(args: argparse.Namespace, data_root: Path, db: str) -> Path:
    """`--export-dir`, else exports/ beside the SQLite database file, else beside the data."""
    from review.db import sqlite_file

    if args.export_dir is not None:
        return args.export_dir.resolve()
    db_file = sqlite_file(db)
    return (db_file.parent if db_file is not None else data_root).resolve() / "exports"


def _once(step: Callable[[], T]) -> T:
    """Run a start-up write that another app process may be doing at the same moment over the same
    database (importing, adding users): when it clashes with theirs, run it again; the steps are
    idempotent, so the second run finds their work and adds nothing."""
    from review import ReviewError

    try:
        return step()
    except ReviewError as exc:
        if exc.code != "conflict":
            raise
        say("another app process wrote the same rows at the same moment; checking again")
        return step()


def prepare(args: argparse.Namespace):  # -> app.context.AppContext
    """The context to serve: the demo (built once) or the user's data."""
    from app.demo import DEMO_PASSWORD, DEMO_USERS, add_demo_users, build_demo  # light: imports when used

    if args.data is None:
        paths = build_demo(DEMO_DIR)
        scans, annotations, db = paths.root, paths.annotations, args.db or paths.db_url
    else:
        scans = args.data
        annotations = args.annotations or args.data / "densescan"
        db = args.db or f"sqlite:///{args.data / 'review.db'}"
    say("loading the review store")
    from app.access import ensure_local_user
    from app.context import AppContext
    from review import ReviewService

    say(f"opening the review database {_shown_url(db)}")
    service = ReviewService(db)
    if not service.list_items(limit=1) and (annotations / "densescan.json").is_file():
        say(f"importing {annotations / 'densescan.json'} into the review database")
        report = _once(lambda: service.import_annotations(annotations, progress=True))
        say(f"imported {report.summary()}")
    demo = args.data is None or args.data.resolve() == DEMO_DIR.resolve()
    if demo:
        if args.db:  # the demo over another database (PostgreSQL, say): it needs the demo users too
            _once(lambda: add_demo_users(service))
        if args.auth:
            users = ", ".join(f"{name} ({role})" for name, role in DEMO_USERS.items())
            say(f"demo users: {users}; demo password: {DEMO_PASSWORD}")
    args.export_dir = export_dir_for(args, scans, db)
    ctx = AppContext(
        service,
        scans if scans.is_dir() else None,
        annotations if annotations.is_dir() else None,
        auth=args.auth,
        local_user=args.user,
        models=scene_models(args, scans if scans.is_dir() else None),
    )
    if not args.auth:
        _once(lambda: ensure_local_user(service, args.user))
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: serving on {args.host} without --auth: anyone who can reach it acts as an admin")
    return ctx


def scene_models(args: argparse.Namespace, scans: Path | None):  # -> core.serve.ask.SceneModels
    """The Ask tab's models: `--dense3d` / `--ross3d`, else the shipped assets/ folders when present
    (loaded when first used; a missing one is a message in the tab)."""
    from core.serve.ask import SceneModels, default_threads

    def folder(given: Path | None, name: str) -> Path | None:
        if given is not None:
            return given.resolve()
        shipped = REPO / "assets" / name
        return shipped if (shipped / "config.json").is_file() else None

    dense3d, ross3d = folder(args.dense3d, "dense3d"), folder(args.ross3d, "ross3d")
    models = SceneModels(scans, dense3d, ross3d, threads=max(args.threads or default_threads(), 1))
    for name, path in (("dense3d", dense3d), ("ross3d", ross3d)):
        problem = models.missing(name)
        say(f"{name}: {path}" if problem is None else f"note: {problem}")
    return models


def warm_first_scene(ctx, args: argparse.Namespace) -> None:
    """Load the models and answer one sentence about the Ask tab's first scene on a background thread,
    so that the first sentence a person types is answered at full speed (asks wait for it on a lock)."""
    scenes = ctx.scene_ids()
    if args.no_warm or ctx.models is None or not scenes:
        return
    if all(ctx.models.missing(name) for name in ("dense3d", "ross3d")):
        return
    say(f"warming the models on {scenes[0]} in the background")
    ctx.models.warm_in_background(scenes[0])


def _shown_url(db: str) -> str:
    """The database URL without its password, for the terminal."""
    from sqlalchemy import make_url

    try:
        return make_url(db).render_as_string(hide_password=True) if "://" in db else db
    except Exception:  # not a URL we can parse: the database reports the problem itself
        return db


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    say("DenseScan app: starting (the first run builds the embedded demo; later runs reuse it)")
    if args.data is not None and not args.data.is_dir():
        print(f"error: --data {args.data}: no such folder", file=sys.stderr)
        return 1
    from review import ReviewError

    try:
        ctx = prepare(args)
    except ReviewError as exc:  # a wrong database path or URL: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    say("loading the web app (Gradio, Plotly)")
    from app.main import build_app, launch

    demo = build_app(ctx, export_dir=args.export_dir)
    say(f"ready after {time.monotonic() - started:.0f} s; exports go to {args.export_dir}")
    warm_first_scene(ctx, args)
    launch(demo, ctx, args.host, args.port, allowed_hosts=args.allowed_host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
