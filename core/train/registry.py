"""The model registry: every trained checkpoint under the model folders, what it was trained on, its scores.

A checkpoint is a folder `save_pretrained` wrote (a `config.json` naming an `architecture`); a training run
also leaves `training.json` in it (the recipe: data, init, sample counts, reviewed records, git commit).
Scores come from the `python -m core eval` reports saved beside it: JSON files with `task` and `metrics`
in `<checkpoint>/eval/`, or in `<run>/eval/` when the checkpoint is a run's `model/` folder. The
Dashboard shows one row per checkpoint, so fine-tuning on reviewed records shows up as a new version
with its own numbers next to the one it started from.

Folders searched by default: `models/`, `runs/` and `assets/` of the checkout and of the working
directory, and any folders in `$DENSESCAN_MODELS` (separated like `$PATH`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ROOT_NAMES = ("models", "runs", "assets")
MODELS_ENV = "DENSESCAN_MODELS"
SKIP_DIRS = {"checkpoints", "scene_cache", "eval", "backbone", "__pycache__", ".git"}  # never checkpoints
MAX_DEPTH = 5
OVERALL = "overall"
COLUMNS = (  # the Dashboard table's columns, in order (`ModelVersion.row`)
    "model",
    "architecture",
    "created",
    "samples",
    "reviewed records",
    "steps",
    "scores",
    "fine-tuned from",
    "git commit",
)


@dataclass
class ModelVersion:
    """One checkpoint and what is known about it."""

    path: Path
    name: str  # the path relative to the folder it was found under
    architecture: str
    created: datetime
    git_commit: str | None = None
    init: str | None = None  # the checkpoint it was fine-tuned from (its path)
    init_name: str | None = None  # ... and its name here, when it is listed too
    data: str | None = None
    samples: int | None = None  # samples trained on (all kinds)
    reviewed_records: int | None = None  # of which reviewed DenseScan records
    steps: int | None = None
    scores: dict[str, dict[str, float | int]] = field(default_factory=dict)  # report name -> overall metrics

    def row(self) -> dict[str, Any]:
        """The Dashboard's table row: plain strings and numbers."""
        return {
            "model": self.name,
            "architecture": self.architecture,
            "created": self.created.strftime("%Y-%m-%d %H:%M"),
            "samples": self.samples if self.samples is not None else "-",
            "reviewed records": self.reviewed_records if self.reviewed_records is not None else "-",
            "steps": self.steps if self.steps is not None else "-",
            "scores": format_scores(self.scores),
            "fine-tuned from": self.init_name or self.init or "-",
            "git commit": short_commit(self.git_commit),
        }


def short_commit(commit: str | None) -> str:
    """The first 12 hex digits, keeping the "+dirty" mark (files differed from the commit)."""
    if not commit:
        return "-"
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def default_roots(cwd: Path | None = None) -> list[Path]:
    """The folders searched when none are given (module docstring)."""
    bases = [REPO, (cwd or Path.cwd()).resolve()]
    roots = [base / name for base in dict.fromkeys(bases) for name in ROOT_NAMES]
    extra = os.environ.get(MODELS_ENV, "")
    roots += [Path(p) for p in extra.split(os.pathsep) if p]
    return roots


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # a half-written or foreign file is not a registry entry; the table simply lacks it


def _checkpoint_dirs(root: Path) -> list[Path]:
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if (folder / "config.json").is_file():
            found.append(folder)
        if depth >= MAX_DEPTH:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError:
            return
        for child in children:
            if child.name not in SKIP_DIRS and not child.name.startswith("."):
                walk(child, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def eval_reports(checkpoint: Path) -> dict[str, dict[str, float | int]]:
    """Overall metrics of each eval report saved beside `checkpoint`, keyed by the report's file stem."""
    folders = [checkpoint / "eval"]
    if checkpoint.name == "model":
        folders.append(checkpoint.parent / "eval")
    scores: dict[str, dict[str, float | int]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            report = _read_json(path)
            if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
                continue
            metrics = report["metrics"]
            group = metrics.get(OVERALL) or next(iter(metrics.values()), {})
            numbers = {k: v for k, v in (group or {}).items() if _number(v)}
            task = str(report.get("task", ""))
            name = path.stem if task in path.stem else f"{task}:{path.stem}"
            scores[name] = numbers
    return scores


def format_scores(scores: dict[str, dict[str, float | int]]) -> str:
    """`report: metric value, ...` per report; fractions x100, counts as they are (as `core eval` prints)."""
    parts = []
    for name, numbers in scores.items():
        shown = [f"{k} {v}" if isinstance(v, int) else f"{k} {100 * v:.1f}" for k, v in numbers.items()]
        parts.append(f"{name}: {', '.join(shown) or '-'}")
    return "; ".join(parts) or "-"


def model_version(folder: Path, root: Path | None = None) -> ModelVersion | None:
    """The registry entry of one checkpoint folder, or None when it is not a project checkpoint."""
    config = _read_json(folder / "config.json")
    if not isinstance(config, dict) or "architecture" not in config:
        return None  # e.g. the shipped VAE (a diffusers folder): not a model the project trains
    recipe = _read_json(folder / "training.json")
    recipe = recipe if isinstance(recipe, dict) else config.get("recipe") or {}
    stamp = folder / ("training.json" if (folder / "training.json").is_file() else "config.json")
    created = datetime.fromtimestamp(stamp.stat().st_mtime, tz=UTC)
    samples = recipe.get("samples")
    if isinstance(samples, dict):
        count = sum(int(v.get("samples", 0)) for v in samples.values() if isinstance(v, dict))
    elif isinstance(samples, int):
        count = samples
    else:
        count = len(recipe["scenes"]) if isinstance(recipe.get("scenes"), list) else None
    name = folder.name
    if root is not None and folder.is_relative_to(root):
        name = root.name if folder == root else f"{root.name}/{folder.relative_to(root)}"
    reviewed = recipe.get("reviewed_records")
    return ModelVersion(
        path=folder,
        name=name,
        architecture=str(config["architecture"]),
        created=created,
        git_commit=recipe.get("git_commit"),
        init=recipe.get("init"),
        data=recipe.get("data"),
        samples=count,
        reviewed_records=int(reviewed) if isinstance(reviewed, int) else None,
        steps=recipe.get("steps_done"),
        scores=eval_reports(folder),
    )


def list_models(roots: list[Path] | None = None) -> list[ModelVersion]:
    """Every checkpoint under `roots` (default `default_roots()`), newest first, each listed once."""
    seen: set[Path] = set()
    out: list[ModelVersion] = []
    for root in roots if roots is not None else default_roots():
        root = Path(root)
        for folder in _checkpoint_dirs(root):
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            version = model_version(folder, root)
            if version is not None:
                out.append(version)
    names = {v.path.resolve(): v.name for v in out}
    for v in out:
        if v.init:
            v.init_name = names.get(Path(v.init).resolve())
    return sorted(out, key=lambda v: (v.created, v.name), reverse=True)


def model_table(roots: list[Path] | None = None) -> list[dict[str, Any]]:
    """The rows of the Dashboard's "model versions" table."""
    return [v.row() for v in list_models(roots)]
