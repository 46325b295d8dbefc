"""`core.annotate.scene_pool`: jobs in worker processes, killed at their deadline, on real processes.

The jobs below stand for a scene's work: one that finishes, one that raises, one stuck in a call that
ignores SIGTERM and SIGINT (as a native ray cast would), one whose process dies. The pool must report each
correctly and go on, and a worker must not outlive a parent killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.annotate.scene_pool import run_with_deadline

ROOT = Path(__file__).resolve().parents[1]


def job(item: str) -> str:
    """`ok`, `raise`, `stuck:<pidfile>` (ignores polite signals, never returns) or `die:<code>`."""
    kind, _, arg = item.partition(":")
    if kind == "raise":
        raise ValueError("the scene is malformed")
    if kind == "stuck":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        Path(arg).write_text(str(os.getpid()))
        time.sleep(3600)
    if kind == "die":
        os._exit(int(arg))
    return f"done {item}"


def failed(item: str, reason: str) -> str:
    return f"failed {item}: {reason}"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not the test's counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_each_job_is_reported_and_the_pool_goes_on(tmp_path: Path) -> None:
    pidfile = tmp_path / "stuck.pid"
    items = ["ok", f"stuck:{pidfile}", "raise", "die:3", "ok2"]
    start = time.monotonic()
    results = list(run_with_deadline(job, failed, items, workers=2, timeout=4.0))
    assert time.monotonic() - start < 30
    assert sorted(results) == sorted(
        [
            "done ok",
            "done ok2",
            f"failed stuck:{pidfile}: exceeded the time limit of 4 s; its worker was stopped",
            "failed raise: ValueError: the scene is malformed",
            "failed die:3: the worker process running it died (exit code 3)",
        ]
    )
    assert not alive(int(pidfile.read_text()))  # killed, although it ignored SIGTERM


def test_without_a_limit_jobs_run_to_the_end() -> None:
    assert list(run_with_deadline(job, failed, ["a", "b", "c"], workers=1)) == ["done a", "done b", "done c"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        list(run_with_deadline(job, failed, ["a"], workers=0))
    with pytest.raises(ValueError, match="time limit"):
        list(run_with_deadline(job, failed, ["a"], timeout=0))


PARENT = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
from test_scene_pool import failed, job
from core.annotate.scene_pool import run_with_deadline
if __name__ == "__main__":
    list(run_with_deadline(job, failed, ["stuck:" + sys.argv[1]], timeout=600))
"""


def test_a_worker_does_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    """`kill -9` of `annotate` must not leave a worker behind that still writes the scene's files."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(tests=str(ROOT / "tests"), root=str(ROOT)))
    pidfile = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pidfile)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not pidfile.is_file() or not pidfile.read_text():
            assert time.monotonic() < deadline and parent.poll() is None, "the worker never started"
            time.sleep(0.05)
        worker = int(pidfile.read_text())
        assert alive(worker)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker)
