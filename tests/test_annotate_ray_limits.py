"""`--engine ray` honours the per-scene time limit: a Ray task runs its scene in a worker it can kill."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from misbehaving_openai import MisbehavingServer

from core.annotate.batch import JobSpec, run_scenes

ray = pytest.importorskip("ray")


@pytest.mark.slow  # a Ray cluster start: `pytest -m slow`
def test_a_ray_task_over_its_time_limit_is_recorded(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    with MisbehavingServer() as server:
        server.set("hang")
        options = {"api_base": server.url, "model": "any", "timeout": 600.0, "cache_dir": out / "cache"}
        spec = JobSpec(synth_root, out, "openai", options, scene_timeout=5.0)
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
        try:
            start = time.monotonic()
            outcomes = run_scenes(spec, ["scene0001_00"], engine="ray", progress=False)
            elapsed = time.monotonic() - start
        finally:
            ray.shutdown()
    assert [o.ok for o in outcomes] == [False]
    assert "exceeded the time limit of 5 s" in (out / "failed" / "scene0001_00.json").read_text()
    assert elapsed < 60
