"""`--engine ray` on a local Ray cluster gives the same files as a local run."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.annotate.batch import JobSpec, run_scenes
from core.annotate.output import merge_records

ray = pytest.importorskip("ray")


@pytest.mark.slow  # a Ray cluster start and two scene runs: `pytest -m slow`
def test_ray_engine_matches_local_run(synth_root: Path, tmp_path: Path):
    scenes = ["scene0001_00"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_scenes(JobSpec(synth_root, local), scenes, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
    try:
        outcomes = run_scenes(JobSpec(synth_root, remote), scenes, engine="ray", progress=False)
    finally:
        ray.shutdown()
    assert [o.ok for o in outcomes] == [True]
    merge_records(local)
    merge_records(remote)
    assert (local / "densescan.json").read_bytes() == (remote / "densescan.json").read_bytes()
    a = local / "scenes" / scenes[0] / "annotation.json"
    assert a.read_bytes() == (remote / "scenes" / scenes[0] / "annotation.json").read_bytes()
