"""The app served in-process on 127.0.0.1 for the tests that drive it over HTTP or in a browser.

Why: the browser, admin, security, failure, Ask and retrain tests all build the app, serve it on a free
port and close the app and its review store afterwards; one context manager does it for all of them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.access import LoginThrottle
from app.context import AppContext
from app.main import build_app, launch


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(
    ctx: AppContext, export_dir: Path | None = None, throttle: LoginThrottle | None = None
) -> Iterator[str]:
    """Serve `build_app(ctx, export_dir)` on a free 127.0.0.1 port without blocking and yield its URL
    ("http://127.0.0.1:PORT/"); on leaving, close the app and `ctx.service`."""
    demo = build_app(ctx, export_dir=export_dir)
    port = free_port()
    launch(demo, ctx, "127.0.0.1", port, block=False, throttle=throttle)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        ctx.service.close()
