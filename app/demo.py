"""The embedded demo: synthetic scenes, the DenseScan pipeline over them, and a review database.

`build_demo` is resumable and idempotent: each step is skipped when its output already exists, so the
first `python app.py` builds everything (with progress in the terminal) and later runs start at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    if scans is None:
        generate_scenes(root, num_scenes, seed, num_frames, progress)
    annotate(data_root, paths.annotations, progress)
    if not paths.db.exists():
        _say(progress, f"loading the annotations into the review database {paths.db}")
        partial = paths.db.with_name(paths.db.name + ".partial")  # renamed once complete
        for leftover in partial.parent.glob(partial.name + "*"):
            leftover.unlink()
        create_review_db(f"sqlite:///{partial}", paths.annotations, progress)
        partial.rename(paths.db)
    return DemoPaths(root=data_root, annotations=paths.annotations, db=paths.db)


def generate_scenes(root: Path, num_scenes: int, seed: int, num_frames: int, progress: bool) -> None:
    from core.scene.scannet import list_scenes
    from core.scene.synth.dataset import SynthConfig, generate_dataset

    scans = root / "scans"
    if scans.is_dir() and len(list_scenes(root)) >= num_scenes:
        return
    _say(progress, f"generating {num_scenes} synthetic scenes in {root} (once; later runs reuse them)")
    generate_dataset(
        root, num_scenes, seed=seed, config=SynthConfig(num_frames=num_frames), progress=progress
    )


def annotate(data_root: Path, out: Path, progress: bool) -> None:
    """Run the DenseScan pipeline with the offline `grounded` captioner (finished scenes are skipped)."""
    from core.annotate.batch import JobSpec, run_scenes
    from core.annotate.output import is_done, merge_records
    from core.scene.scannet import list_scenes

    scene_ids = list_scenes(data_root)
    if all(is_done(out, s) for s in scene_ids) and (out / "densescan.json").is_file():
        return
    _say(progress, f"annotating {len(scene_ids)} scenes into {out} (grounded captioner)")
    spec = JobSpec(data_root, out, "grounded", {"seed": 0, "cache_dir": out / "cache"})
    outcomes = run_scenes(spec, scene_ids, progress=progress)
    failed = [o for o in outcomes if not o.ok]
    count = merge_records(out)
    _say(progress, f"{count} records written; {len(failed)} scene(s) failed")


def create_review_db(db_url: str, annotations: Path, progress: bool) -> None:
    """A review database with the annotations imported and the demo users (password `DEMO_PASSWORD`)."""
    from review import ReviewService

    service = ReviewService(db_url)
    try:
        service.import_annotations(annotations, progress=progress)
        known = {u.username for u in service.list_users()}
        for username, role in DEMO_USERS.items():
            if username not in known:
                service.add_user(username, DEMO_PASSWORD, role)
    finally:
        service.close()


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)
