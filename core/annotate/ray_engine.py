"""`--engine ray`: the same per-scene job as Ray tasks, for clusters (one VLM server per GPU node).

Each task runs `batch.run_scene` on a node, which builds its own captioner from the job's plain-data
spec and writes the scene's files itself, so the output folder must be shared by the nodes (NFS, or a
local cluster). Tasks come back as they finish; failures are recorded exactly as in a local run.
"""

from __future__ import annotations

from collections.abc import Iterator

from core.annotate.batch import JobSpec, SceneOutcome, run_scene_limited
from core.annotate.errors import AnnotateError


def run_on_ray(
    spec: JobSpec, scene_ids: list[str], address: str | None = None, num_cpus: int | None = None
) -> Iterator[SceneOutcome]:
    try:
        import ray
    except ImportError as exc:
        raise AnnotateError("--engine ray needs the ray package: pip install ray==2.60.0") from exc
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(run_scene_limited)  # spec.scene_timeout bounds each task
        pending = [task.remote(spec, s, False) for s in scene_ids]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
