"""The failure tab's "Run a checkpoint" row: which checkpoints, tasks and splits it offers, where a run's
folder goes, and the run itself (`core.eval.run_split`, the path of `python -m core predict` + `eval`).

Checkpoints offered: the app's own models (`--dense3d` / `--ross3d`, `ctx.models`), then the checkpoint
folders found under the folders reports are listed from and the model registry's folders (`models/`,
`runs/`, `assets/`). A run's folder is written under the dataset root's `runs/app/` when that root is one of
the report folders, else under `./runs/app/`: either way the tab's report list shows it. With logins on,
only a listed checkpoint may be run (as only a report under the app's folders may be opened).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import gradio as gr

from app.context import AppContext
from core.data.errors import DataError
from core.eval.run_split import (
    SplitRun,
    checkpoint_kind,
    dataset_root,
    dataset_splits,
    find_checkpoints,
    run_split,
)
from core.models.errors import ModelError
from core.scene.errors import SceneError
from core.train.registry import default_roots

DEFAULT_SAMPLES = 50
RUNS = Path("runs") / "app"
TITLES = {"dense3d": "Dense3D", "ross3d": "Ross3D"}


def app_checkpoints(ctx: AppContext, roots: list[Path]) -> list[Path]:
    """The app's models first, then the checkpoints found under `roots` and the registry's folders."""
    given = []
    if ctx.models is not None:
        given = [Path(p).resolve() for p in (ctx.models.dense3d_dir, ctx.models.ross3d_dir) if p is not None]
    found = find_checkpoints([*roots, *(r for r in default_roots() if r.is_dir())])
    return list(dict.fromkeys([*given, *(p.resolve() for p in found)]))


def checkpoint_choices(ctx: AppContext, roots: list[Path]) -> list[tuple[str, str]]:
    """(label, path) per checkpoint that can be run: "Dense3D · <folder>", with the folder's parent path
    when two would read the same."""
    out = []
    for path in app_checkpoints(ctx, roots):
        try:
            model, _ = checkpoint_kind(path)
        except ModelError:
            continue
        shown = path.parent.name + "/" + path.name if path.name == "model" else path.name
        out.append((f"{TITLES[model]} · {shown}", path))
    labels = [label for label, _ in out]
    return [
        (label if labels.count(label) == 1 else f"{label} ({path.parent})", str(path)) for label, path in out
    ]


def task_choices(checkpoint: str | None) -> list[str]:
    """The tasks a checkpoint can be scored on ([] when the folder is not a checkpoint)."""
    if not checkpoint:
        return []
    try:
        return list(checkpoint_kind(Path(checkpoint).expanduser())[1])
    except ModelError:
        return []


def split_choices(ctx: AppContext) -> list[str]:
    return dataset_splits(dataset_root(ctx.scans))


def runs_folder(ctx: AppContext, roots: list[Path]) -> Path:
    """Where a run's folder goes (module docstring)."""
    root = dataset_root(ctx.scans)
    if root is not None and any(root.resolve().is_relative_to(r) for r in roots):
        return root.resolve() / RUNS
    return Path.cwd() / RUNS


def run_from_app(
    ctx: AppContext,
    roots: list[Path],
    checkpoint: str | None,
    task: str | None,
    split: str | None,
    limit: float | None,
    progress=None,  # gr.Progress, or any (share, desc=...) callable
) -> SplitRun:
    """Check the row's inputs, run, and return the run; every refusal is a one-line `gr.Error`."""
    if not checkpoint or not str(checkpoint).strip():
        raise gr.Error("choose a checkpoint to run")
    path = Path(str(checkpoint).strip()).expanduser()
    if ctx.auth and path.resolve() not in app_checkpoints(ctx, roots):
        raise gr.Error(f"{escape(str(checkpoint))}: only the checkpoints listed can be run")
    if not task:
        raise gr.Error("choose a task")
    if not split:
        raise gr.Error("choose a split")
    if limit is None or int(limit) < 1:
        raise gr.Error("at most N samples: N must be a whole number >= 1")
    data = dataset_root(ctx.scans)
    if data is None:
        raise gr.Error("the app serves no dataset with benchmark files: start it with --data DATASET_ROOT")
    device = ctx.models.device if ctx.models is not None else None

    def say(share: float, what: str) -> None:
        if progress is not None:
            progress(share, desc=what)

    try:
        return run_split(path, data, task, split, int(limit), runs_folder(ctx, roots), say, device=device)
    except (DataError, ModelError, SceneError) as exc:
        raise gr.Error(escape(str(exc))) from None


def run_note(run: SplitRun) -> str:
    return (
        f'<p class="failure-run" data-samples="{run.samples}" data-folder="{escape(run.folder.name)}">'
        f"ran {escape(run.folder.name)}: {run.samples} samples, predicted in {run.seconds:.1f} s</p>"
    )
