"""Run the pipeline over many scenes: skip finished ones, record failures and go on, in one process,
in a local process pool (`workers`), or as Ray tasks (`engine="ray"`).

A job is described by plain data (`JobSpec`: scan root, output root, captioner name and options, config),
so the same function runs in a worker process or on a Ray node and builds its own captioner there.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.annotate.captioners.base import Captioner
from core.annotate.config import AnnotateConfig
from core.annotate.output import is_done, scene_dir, write_failure, write_scene


@dataclass
class JobSpec:
    scans: Path
    out: Path
    captioner: str = "grounded"
    captioner_options: dict[str, Any] = field(default_factory=dict)
    config: AnnotateConfig = field(default_factory=AnnotateConfig)


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


def summarise(scene_id: str, doc: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """Counts for the summary table, stored in the done-marker."""
    objects = doc["objects"]
    captions = [o for o in objects if o.get("caption")]
    statuses = [o["verification"]["status"] for o in captions]
    words = [len(o["caption"].split()) for o in captions]
    return {
        "scene_id": scene_id,
        "objects": len(objects),
        "captions": len(captions),
        "words": sum(words),
        "accepted": statuses.count("accepted"),
        "flagged": statuses.count("flagged"),
        "rejected": statuses.count("rejected"),
        "not_visible": len(objects) - len(captions),
        "frames": len(doc["frames"]),
        "scenarios": len(doc["scenarios"]),
        "seconds": timings,
    }


_CAPTIONERS: dict[tuple, Captioner] = {}


def run_scene(spec: JobSpec, scene_id: str, progress: bool = False) -> SceneOutcome:
    """Annotate one scene and write it; any error is recorded as the scene's failure, never raised."""
    from core.annotate.scene_runner import annotate_scene

    try:
        key = (spec.captioner, tuple(sorted((k, repr(v)) for k, v in spec.captioner_options.items())))
        if key not in _CAPTIONERS:  # one captioner per process (a VLM client or model is costly)
            _CAPTIONERS[key] = make_captioner(spec.captioner, **spec.captioner_options)
        result = annotate_scene(
            spec.scans, scene_id, scene_dir(spec.out, scene_id), _CAPTIONERS[key], spec.config, progress
        )
        summary = summarise(scene_id, result.doc, result.timings)
        write_scene(spec.out, scene_id, result.doc, result.records, summary)
        return SceneOutcome(scene_id, True, summary)
    except Exception as exc:  # a batch job records the failed scene and goes on
        error = f"{type(exc).__name__}: {exc}"
        write_failure(spec.out, scene_id, error + "\n" + traceback.format_exc(limit=8))
        return SceneOutcome(scene_id, False, error=error)


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
    elif workers > 1:
        runs = _run_pool(spec, todo, workers)
    else:
        runs = (run_scene(spec, s, progress) for s in todo)
    for outcome in runs:
        outcomes.append(outcome)
        bar.set_postfix_str(f"{outcome.scene_id} {'ok' if outcome.ok else 'FAILED'}")
        bar.update()
    bar.close()
    order = {s: i for i, s in enumerate(scene_ids)}
    return sorted(outcomes, key=lambda o: order[o.scene_id])


def _run_pool(spec: JobSpec, scene_ids: list[str], workers: int) -> Iterator[SceneOutcome]:
    # spawn, not fork: open3d and BLAS thread pools do not survive a fork reliably.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_scene, spec, s, False) for s in scene_ids]
        for future in as_completed(futures):
            yield future.result()
