"""Jobs in worker processes that are killed at a deadline, so that one stuck scene cannot stall a run.

A scene's work may sit in one long native call (a ray cast in open3d or numpy, a blocked socket) that no
check between steps and no signal handler interrupts; killing the process that runs it is the one bound
that always holds. Workers live long (each builds its captioner once) and take one job at a time; a worker
past its deadline is killed and replaced, and its job reported as failed. A worker that dies on its own
(a crash in native code, the out-of-memory killer) is reported the same way. A worker exits as soon as
its parent is gone, so a killed run leaves nothing behind that still writes files.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing import get_context, parent_process
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

R = TypeVar("R")


def _exit_with_parent() -> None:
    parent = parent_process()
    if parent is not None:
        parent.join()  # returns once the parent process has ended, however it ended
        os._exit(1)


def _serve(conn: Connection, job: Callable[[str], Any]) -> None:
    """A worker's loop: take an item, send back ("ok", result) or ("error", message); None ends it."""
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    conn.send(("ready", None))  # imports are done: the clock of the first job starts now
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        try:
            answer: tuple[str, Any] = ("ok", job(item))
        except Exception as exc:  # the job's own errors travel back as a failure of that item
            answer = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(answer)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    item: str | None = None
    started: float = 0.0


def run_with_deadline(
    job: Callable[[str], R],
    failed: Callable[[str, str], R],
    items: list[str],
    workers: int = 1,
    timeout: float | None = None,
) -> Iterator[R]:
    """`job(item)` for every item in up to `workers` processes, yielded as they finish.

    An item whose job runs longer than `timeout` seconds, or whose worker dies, yields
    `failed(item, reason)` instead; `job` must be picklable (a module-level function or a partial of one).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"the time limit must be a positive number of seconds, got {timeout}")
    context = get_context("spawn")  # not fork: open3d and BLAS thread pools do not survive a fork reliably
    pending = deque(items)
    pool: list[_Worker] = []

    def start() -> _Worker:
        mine, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, job), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, mine)

    try:
        while pending or any(w.item is not None for w in pool):
            while pending:
                idle = next((w for w in pool if w.item is None), None)
                if idle is None and len(pool) == workers:
                    break
                fresh = idle is None
                worker = start() if fresh else idle
                if fresh:
                    pool.append(worker)
                try:
                    worker.conn.send(pending[0])
                except OSError:  # an idle worker that died between jobs: replace it, keep the item
                    if fresh:
                        raise
                    _stop(worker)
                    pool.remove(worker)
                    continue
                worker.item, worker.started = pending.popleft(), time.monotonic()
            busy = [w for w in pool if w.item is not None]
            wait_s = None
            if timeout is not None:
                wait_s = max(0.0, min(w.started for w in busy) + timeout - time.monotonic())
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_s))
            for worker in busy:
                item = str(worker.item)
                if worker.conn in ready or worker.process.sentinel in ready:
                    try:
                        kind, value = worker.conn.recv()
                    except (EOFError, OSError):  # the worker died before it answered
                        worker.process.join(timeout=5)
                        pool.remove(worker)
                        code = worker.process.exitcode
                        yield failed(item, f"the worker process running it died (exit code {code})")
                        continue
                    if kind == "ready":  # a new worker's start-up does not count against its first job
                        worker.started = time.monotonic()
                        continue
                    worker.item = None
                    yield value if kind == "ok" else failed(item, value)
                elif timeout is not None and time.monotonic() - worker.started >= timeout:
                    _stop(worker)
                    pool.remove(worker)
                    yield failed(item, f"exceeded the time limit of {timeout:g} s; its worker was stopped")
    finally:  # normal end: idle workers are told to exit; early end (an error, Ctrl-C): busy ones are killed
        for worker in pool:
            if worker.item is None:
                with suppress(OSError):
                    worker.conn.send(None)
            else:
                worker.process.kill()
        for worker in pool:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                _stop(worker)
            worker.conn.close()


def _stop(worker: _Worker) -> None:
    worker.process.kill()  # SIGKILL: a native call stuck in a loop ignores anything gentler
    worker.process.join()
    worker.conn.close()
