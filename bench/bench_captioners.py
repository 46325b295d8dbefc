"""Throughput of the `openai` captioner backend against the project's own server on 127.0.0.1.

    python bench/bench_captioners.py [--requests 256] [--image 224] [--delays 0 50] [--in-flight 1 8 32]

The server runs in a child process (as a VLM server would) and answers a fixed caption after a
server-side delay that models a VLM's latency; with no delay the number is the client's and server's own
overhead (JPEG encoding, HTTP, JSON). Each request carries one RGB crop. Prints requests per second per
setting and the most requests the server saw in flight.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.annotate.captioners.base import CaptionRequest  # noqa: E402
from core.annotate.captioners.openai_backend import OpenAICaptioner  # noqa: E402

MODEL = "fixed"


class FixedCaptioner:
    """Always the same caption: the bench measures the transport, not a model."""

    name = MODEL

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return ["a small wooden chair next to the table" for _ in requests]


def serve(port: int) -> None:
    """The child process: the project's server with test hooks, so the bench can set the delay."""
    import uvicorn

    from core.serve.app import create_app

    app = create_app(FixedCaptioner(), test_hooks=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


def crop_like_image(side: int) -> np.ndarray:
    """Smooth shading plus sensor noise: a JPEG the size of a real crop's (pure noise is 5x larger)."""
    y, x = np.mgrid[0:side, 0:side]
    shading = np.stack([x, y, (x + y) // 2], axis=-1) * (255 / max(side - 1, 1))
    noise = np.random.default_rng(0).normal(0, 6, shading.shape)
    return np.clip(shading + noise, 0, 255).astype(np.uint8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(root: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{root}/v1/models").raise_for_status()
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the bench server did not start")


def run_point(root: str, batch: list[CaptionRequest], delay_ms: float, in_flight: int) -> dict[str, float]:
    """One table row: caption the whole batch once with `in_flight` requests at a time."""
    httpx.post(f"{root}/_test/reset").raise_for_status()
    httpx.post(f"{root}/_test/faults", json={"delay": delay_ms / 1000}).raise_for_status()
    captioner = OpenAICaptioner(f"{root}/v1", MODEL, concurrency=in_flight, retries=0, timeout=60.0)
    start = time.perf_counter()
    texts = captioner.caption(batch)
    seconds = time.perf_counter() - start
    assert len(texts) == len(batch)
    stats = httpx.get(f"{root}/_test/stats").json()
    return {"seconds": seconds, "rate": len(batch) / seconds, "server_max": stats["max_in_flight"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--image", type=int, default=224, help="side of the square RGB crop per request")
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 50.0], help="server delay (ms)")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    image = crop_like_image(args.image)
    batch = [CaptionRequest("isolated_view", f"Describe object {i}.", [image]) for i in range(args.requests)]

    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(root)
        run_point(root, batch[:16], 0.0, 8)  # warm-up
        print(f"{args.requests} requests, one {args.image}px crop (JPEG) each, server in a child process")
        print(
            f"{'delay ms':>8} {'in flight':>9} {'seconds':>8} {'req/s':>8} {'speed-up':>8} {'server max':>10}"
        )
        for delay in args.delays:
            base = None
            for in_flight in args.in_flight:
                row = run_point(root, batch, delay, in_flight)
                base = base or row["rate"]
                print(
                    f"{delay:>8.0f} {in_flight:>9d} {row['seconds']:>8.2f} {row['rate']:>8.1f} "
                    f"{row['rate'] / base:>7.1f}x {row['server_max']:>10d}"
                )
    finally:
        server.terminate()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
