"""Run the pipeline over many scenes: skip finished ones, record failures and go on, in one process,
in worker processes (`workers`, or any run with a per-scene time limit), or as Ray tasks (`engine="ray"`).
A scene that outlives `scene_timeout` has its worker killed (`scene_pool`) and is recorded as failed.

A job is described by plain data (`JobSpec`: scan root, output root, captioner name and options, config),
so the same function runs in a worker process or on a Ray node and builds its own captioner there.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.annotate.captioners.base import Captioner
from core.annotate.config import AnnotateConfig
from core.annotate.output import clear_leftovers, is_done, scene_dir, write_failure, write_scene
from core.annotate.summary import scene_summary


@dataclass
class JobSpec:
    scans: Path
    out: Path
    captioner: str = "grounded"
    captioner_options: dict[str, Any] = field(default_factory=dict)
    config: AnnotateConfig = field(default_factory=AnnotateConfig)
    scene_timeout: float | None = None  # seconds one scene may take; None: no limit (and no worker process)


@dataclass
class SceneOutcome:
    scene_id: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)  # the done-marker's content
    error: str | None = None
    skipped: bool = False  # finished by an earlier run


class CaptionerUnavailable(Exception):
    """The requested captioner cannot be built here (backend module missing, bad options)."""


def make_captioner(name: str, **options: Any) -> Captioner:
    """The registry's captioner when that module exists; else the built-in offline one."""
    try:
        from core.annotate.captioners.registry import make_captioner as registry_make
    except ImportError:
        registry_make = None
    if registry_make is not None:
        return registry_make(name, **options)
    if name == "grounded":
        from core.annotate.captioners.grounded import GroundedCaptioner

        return GroundedCaptioner(seed=int(options.get("seed") or 0))
    raise CaptionerUnavailable(
        f"captioner {name!r} is not available in this installation (only 'grounded' is built in)"
    )


_CAPTIONERS: dict[tuple, Captioner] = {}


def run_scene(spec: JobSpec, scene_id: str, progress: bool = False) -> SceneOutcome:
    """Annotate one scene and write it; any error is recorded as the scene's failure, never raised."""
    from core.annotate.scene_runner import annotate_scene

    try:
        key = (spec.captioner, tuple(sorted((k, repr(v)) for k, v in spec.captioner_options.items())))
        if key not in _CAPTIONERS:  # one captioner per process (a VLM client or model is costly)
            _CAPTIONERS[key] = make_captioner(spec.captioner, **spec.captioner_options)
        clear_leftovers(spec.out, scene_id)  # a killed run's half-written files
        result = annotate_scene(
            spec.scans, scene_id, scene_dir(spec.out, scene_id), _CAPTIONERS[key], spec.config, progress
        )
        summary = scene_summary(scene_id, result.document, result.timings)
        write_scene(spec.out, scene_id, result.document, result.records, summary)
        return SceneOutcome(scene_id, True, summary)
    except Exception as exc:  # a batch job records the failed scene and goes on
        error = f"{type(exc).__name__}: {exc}"
        write_failure(spec.out, scene_id, error + "\n" + traceback.format_exc(limit=8))
        return SceneOutcome(scene_id, False, error=error)


def run_scene_limited(spec: JobSpec, scene_id: str, progress: bool = False) -> SceneOutcome:
    """`run_scene` under `spec.scene_timeout`, in a worker process of its own (a Ray task runs one scene)."""
    if spec.scene_timeout is None:
        return run_scene(spec, scene_id, progress)
    from core.annotate.scene_pool import run_with_deadline

    job = partial(run_scene, spec, progress=progress)
    [outcome] = run_with_deadline(job, partial(_failed, spec), [scene_id], 1, spec.scene_timeout)
    return outcome


def run_scenes(
    spec: JobSpec,
    scene_ids: list[str],
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> list[SceneOutcome]:
    """Every scene of `scene_ids` that is not finished yet; finished ones come back as `skipped`."""
    from core.annotate.output import done_marker, read_json

    outcomes = [
        SceneOutcome(s, True, read_json(done_marker(spec.out, s)), skipped=True)
        for s in scene_ids
        if is_done(spec.out, s)
    ]
    todo = [s for s in scene_ids if not is_done(spec.out, s)]
    bar = tqdm(total=len(todo), desc="scenes", unit="scene", disable=not progress)
    if engine == "ray":
        from core.annotate.ray_engine import run_on_ray

        runs: Iterator[SceneOutcome] = run_on_ray(spec, todo, ray_address)
    elif workers > 1 or spec.scene_timeout is not None:
        runs = _run_workers(spec, todo, workers, progress)
    else:
        runs = (run_scene(spec, s, progress) for s in todo)
    for outcome in runs:
        outcomes.append(outcome)
        bar.set_postfix_str(f"{outcome.scene_id} {'ok' if outcome.ok else 'FAILED'}")
        bar.update()
    bar.close()
    order = {s: i for i, s in enumerate(scene_ids)}
    return sorted(outcomes, key=lambda o: order[o.scene_id])


def _run_workers(spec: JobSpec, scene_ids: list[str], workers: int, progress: bool) -> Iterator[SceneOutcome]:
    from core.annotate.scene_pool import run_with_deadline

    job = partial(run_scene, spec, progress=progress and workers == 1)  # one scene bar only when alone
    return run_with_deadline(job, partial(_failed, spec), scene_ids, max(1, workers), spec.scene_timeout)


def _failed(spec: JobSpec, scene_id: str, reason: str) -> SceneOutcome:
    """A scene its worker could not finish (time limit, a crash): recorded like any failed scene."""
    error = f"scene {scene_id} {reason}"
    write_failure(spec.out, scene_id, error)
    return SceneOutcome(scene_id, False, error=error)
