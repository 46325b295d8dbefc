"""The embedded demo: synthetic scenes, the DenseScan pipeline over them, and a review database.

`build_demo` is resumable and idempotent: each step is skipped when its output already exists, so the
first `python app.py` builds everything (with progress in the terminal) and later runs start at once.
Each step is announced with what it builds and how many, and timed, so a first run is never silent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from review import ReviewService

DEMO_SCENES = 6  # one per room type
DEMO_SEED = 0
DEMO_FRAMES = 120
DEMO_PASSWORD = "densescan-demo"  # printed at start-up; only ever used for the local demo database
DEMO_USERS = {"annotator": "annotator", "reviewer": "reviewer", "admin": "admin"}  # username -> role


@dataclass(frozen=True)
class DemoPaths:
    root: Path  # a dataset root: scans/ plus the synthetic benchmark annotations
    annotations: Path  # the pipeline's output: densescan.json and scenes/<id>/annotation.json
    db: Path  # the SQLite review database

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db}"


def demo_paths(root: Path) -> DemoPaths:
    return DemoPaths(root=root, annotations=root / "densescan", db=root / "review.db")


def build_demo(
    root: Path,
    num_scenes: int = DEMO_SCENES,
    seed: int = DEMO_SEED,
    num_frames: int = DEMO_FRAMES,
    progress: bool = True,
    scans: Path | None = None,
) -> DemoPaths:
    """Build (or finish building) the demo under `root`; `scans` reuses an existing dataset root."""
    paths = demo_paths(root)
    data_root = scans or root
    started = time.monotonic()
    _say(progress, f"demo: checking {root} (scenes, annotations, review database; missing parts are built)")
    built = scans is None and generate_scenes(root, num_scenes, seed, num_frames, progress)
    built = annotate(data_root, paths.annotations, progress) or built
    if not paths.db.exists():
        built = True
        step = time.monotonic()
        _say(progress, f"demo step 3/3: loading the annotations into the review database {paths.db}")
        partial = paths.db.with_name(paths.db.name + ".partial")  # renamed once complete
        for leftover in partial.parent.glob(partial.name + "*"):
            leftover.unlink()
        create_review_db(f"sqlite:///{partial}", paths.annotations, progress)
        partial.rename(paths.db)
        _say(progress, f"demo step 3/3 done in {time.monotonic() - step:.0f} s")
    else:
        _say(progress, f"demo review database: {paths.db} (kept from an earlier run)")
    if built:
        _say(progress, f"demo built in {time.monotonic() - started:.0f} s under {root}")
    return DemoPaths(root=data_root, annotations=paths.annotations, db=paths.db)


def generate_scenes(root: Path, num_scenes: int, seed: int, num_frames: int, progress: bool) -> bool:
    """Write the synthetic scenes unless they exist; True when they were written now."""
    from core.scene.scannet import list_scenes
    from core.synth.dataset import SynthConfig, generate_dataset

    scans = root / "scans"
    if scans.is_dir() and len(list_scenes(root)) >= num_scenes:
        _say(progress, f"demo scenes: {num_scenes} synthetic scenes in {scans} (kept from an earlier run)")
        return False
    started = time.monotonic()
    _say(
        progress,
        f"demo step 1/3: generating {num_scenes} synthetic scenes ({num_frames} RGB-D frames each) in "
        f"{scans}; once, later runs reuse them",
    )
    generate_dataset(
        root, num_scenes, seed=seed, config=SynthConfig(num_frames=num_frames), progress=progress
    )
    _say(progress, f"demo step 1/3 done in {time.monotonic() - started:.0f} s")
    return True


def annotate(data_root: Path, out: Path, progress: bool) -> bool:
    """Run the DenseScan pipeline with the offline `grounded` captioner (finished scenes are skipped);
    True when it ran now."""
    from core.annotate.batch import JobSpec, run_scenes
    from core.annotate.output import is_done, merge_records
    from core.scene.scannet import list_scenes

    scene_ids = list_scenes(data_root)
    done = [s for s in scene_ids if is_done(out, s)]
    if len(done) == len(scene_ids) and (out / "densescan.json").is_file():
        _say(progress, f"demo annotations: {out / 'densescan.json'} (kept from an earlier run)")
        return False
    started = time.monotonic()
    resumed = f", {len(done)} finished earlier" if done else ""
    _say(
        progress,
        f"demo step 2/3: annotating {len(scene_ids)} scenes{resumed} with the DenseScan pipeline (offline "
        f"'grounded' captioner: views, crops, highlights, captions, verification) into {out}",
    )
    spec = JobSpec(data_root, out, "grounded", {"seed": 0, "cache_dir": out / "cache"})
    outcomes = run_scenes(spec, scene_ids, progress=progress)
    failed = [o for o in outcomes if not o.ok]
    count = merge_records(out)
    _say(
        progress,
        f"demo step 2/3 done in {time.monotonic() - started:.0f} s: {count} records written; "
        f"{len(failed)} scene(s) failed",
    )
    return True


def create_review_db(db_url: str, annotations: Path, progress: bool) -> None:
    """A review database with the annotations imported and the demo users (password `DEMO_PASSWORD`)."""
    from review import ReviewService

    service = ReviewService(db_url)
    try:
        report = service.import_annotations(annotations, progress=progress)
        _say(progress, f"imported {report.summary()}")
        add_demo_users(service)
    finally:
        service.close()


def add_demo_users(service: ReviewService) -> None:
    """The demo users (password `DEMO_PASSWORD`) that the database lacks."""
    known = {u.username for u in service.list_users()}
    for username, role in DEMO_USERS.items():
        if username not in known:
            service.add_user(username, DEMO_PASSWORD, role)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)
