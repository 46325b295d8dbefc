"""Run a checkpoint on the first N samples of a dataset split and score it: predict, then eval, in one call.

The app's failure analysis runs a model from the page with this; it is the same path as
`python -m core predict dense3d|ross3d` followed by `python -m core eval TASK` (the library functions those
commands call), on the split's benchmark file (`ross3d_samples.FILES`) cut to its first N samples:

- the truncated ground truth (the first N records of the split's scenes; Scan2Cap: every description of
  the first N described objects, its unit of evaluation) is written into the run folder under the
  benchmark's own file name, and that file is what the report is scored against;
- Dense3D predicts that file's queries (`predict_dense3d.predict_file`); Ross3D predicts the split's first
  N records (`predict_ross3d.predict_task(max_samples=N)`, built in the same file order), and the keys it
  predicted must be the truncated file's keys;
- the run folder `<runs>/<checkpoint>-<task>-<split>-n<N>-<UTC time>/` is built beside its place and renamed
  into it when complete (`atomic_dir`): a report listing never shows half a run.

Which tasks a checkpoint can run comes from its `config.json` "architecture". Bad input (no checkpoint, a
task the model cannot do, a split without a ground-truth file, no dataset) is a `DataError` / `ModelError`
with one line naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.atomic import atomic_dir
from core.data.datasets.ross3d_samples import FILES
from core.data.errors import DataError
from core.eval.predict_cli import ROSS3D_TASKS
from core.eval.predict_cli import TASKS as DENSE3D_TASKS
from core.models.errors import ModelError

# config.json "architecture" -> (model name of `python -m core predict`, the tasks it can be scored on)
ARCHITECTURES = {"Dense3DModel": ("dense3d", DENSE3D_TASKS), "Ross3DModel": ("ross3d", ROSS3D_TASKS)}
GT_FILES = {**FILES, "refseg": FILES["scanrefer"]}  # refseg is scored against ScanRefer's descriptions
SPLIT_FILE = re.compile(r"^scannetv2_(\w+)\.txt$")
SKIP_DIRS = {"scans", "scenes", "frames", "color", "depth", "pose", "scene_cache", "checkpoints", "eval",
             "__pycache__"}  # fmt: skip
MAX_DEPTH = 4
Progress = Callable[[float, str], None]


def checkpoint_kind(folder: str | Path) -> tuple[str, tuple[str, ...]]:
    """("dense3d" | "ross3d", the tasks it can run) of a `save_pretrained` folder; `ModelError` otherwise."""
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file() or not (folder / "model.safetensors").is_file():
        raise ModelError(folder, "not a checkpoint folder (config.json and model.safetensors expected)")
    try:
        architecture = json.loads(config.read_text(encoding="utf-8")).get("architecture")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ModelError(config, f"cannot read the model's configuration ({exc})") from None
    if architecture not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ModelError(config, f"architecture {architecture!r} cannot be run here (expected {known})")
    return ARCHITECTURES[architecture]


def find_checkpoints(roots: Sequence[Path], max_depth: int = MAX_DEPTH) -> list[Path]:
    """Checkpoint folders (config.json + model.safetensors naming a known architecture) under the roots,
    at most `max_depth` folders down, skipping scan, image and cache folders; sorted, no duplicates."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root).resolve()
        for folder, dirs, files in os.walk(root):
            depth = len(Path(folder).relative_to(root).parts)
            dirs[:] = [] if depth >= max_depth else [
                d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
            ]  # fmt: skip
            if "config.json" in files and "model.safetensors" in files:
                try:
                    checkpoint_kind(folder)
                except ModelError:
                    continue
                found.add(Path(folder))
    return sorted(found)


def dataset_root(path: str | Path | None) -> Path | None:
    """The dataset root (the folder holding annotations/) of a root or its scans/ folder; None if neither."""
    if path is None:
        return None
    path = Path(path)
    for candidate in (path, path.parent):
        if (candidate / "annotations").is_dir():
            return candidate
    return None


def dataset_splits(root: Path | None) -> list[str]:
    """The splits of a dataset root: those with a split file `scannetv2_<split>.txt`, val first."""
    if root is None or not root.is_dir():
        return []
    names = {m.group(1) for p in root.iterdir() if (m := SPLIT_FILE.match(p.name))}
    return sorted(names, key=lambda s: (s != "val", s))


def split_truth(root: Path, task: str, split: str) -> Path:
    """The benchmark file `task` is scored against for `split`; a `DataError` saying so when it is missing."""
    if task not in GT_FILES:
        raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(GT_FILES)})")
    path = root / "annotations" / GT_FILES[task].format(split=split)
    if not path.is_file():
        raise DataError(path, f"split {split!r} has no ground-truth file for {task}")
    return path


def _split_scenes(root: Path, split: str) -> set[str]:
    path = root / f"scannetv2_{split}.txt"
    if not path.is_file():
        raise DataError(path, f"split file not found (split {split!r})")
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def write_truncated_truth(root: Path, task: str, split: str, limit: int, out_dir: Path) -> tuple[Path, int]:
    """The split's ground truth cut to its first `limit` samples (module docstring), written under the
    benchmark's file name in `out_dir`; returns the file and its number of samples."""
    from core.data.multi3drefer import read_multi3drefer, write_multi3drefer
    from core.data.scan2cap import object_key
    from core.data.scanqa import read_scanqa, write_scanqa
    from core.data.scanrefer import read_scanrefer, write_scanrefer
    from core.data.sqa3d import read_sqa3d, write_sqa3d

    source = split_truth(root, task, split)
    scenes = _split_scenes(root, split)
    read, write = {
        "scanqa": (read_scanqa, write_scanqa),
        "sqa3d": (read_sqa3d, write_sqa3d),
        "multi3drefer": (read_multi3drefer, write_multi3drefer),
    }.get(task, (read_scanrefer, write_scanrefer))
    records = [r for r in read(source) if r.scene_id in scenes]
    if task == "scan2cap":
        objects = list(dict.fromkeys(object_key(r.scene_id, r.object_id) for r in records))[:limit]
        kept = [r for r in records if object_key(r.scene_id, r.object_id) in set(objects)]
        count = len(objects)
    else:
        kept = records[:limit]
        count = len(kept)
    if not kept:
        raise DataError(source, f"split {split!r} has no {task} sample in the scenes of its split file")
    return write(out_dir / source.name, kept), count


def truth_keys(path: Path, task: str) -> set[str]:
    """The prediction keys the evaluator expects for a ground-truth file (Scan2Cap: one per object)."""
    from core.data.multi3drefer import read_multi3drefer
    from core.data.scan2cap import object_key
    from core.data.scanqa import read_scanqa
    from core.data.scanrefer import read_scanrefer
    from core.data.sqa3d import read_sqa3d

    if task in ("scanqa", "sqa3d"):
        return {r.question_id for r in (read_scanqa(path) if task == "scanqa" else read_sqa3d(path))}
    if task == "multi3drefer":
        return {r.key for r in read_multi3drefer(path)}
    if task == "scan2cap":
        return {object_key(r.scene_id, r.object_id) for r in read_scanrefer(path)}
    return {r.key for r in read_scanrefer(path)}


def run_name(checkpoint: Path, task: str, split: str, limit: int, when: datetime) -> str:
    """`<checkpoint>-<task>-<split>-n<N>-<UTC time>`; a run's model/ folder is named by its run."""
    name = checkpoint.parent.name if checkpoint.name == "model" else checkpoint.name
    name = re.sub(r"[^\w.-]+", "_", name).strip("._") or "model"
    return f"{name}-{task}-{split}-n{limit}-{when.strftime('%Y%m%d-%H%M%S')}"


@dataclass
class SplitRun:
    """A finished run: its folder, the eval report in it, and how many samples were scored."""

    folder: Path
    report: Path
    samples: int
    seconds: float  # prediction time


def run_split(
    checkpoint: str | Path,
    data: str | Path,
    task: str,
    split: str,
    limit: int,
    runs_dir: str | Path,
    progress: Progress | None = None,
    meteor: bool = False,
    device: str | None = None,
) -> SplitRun:
    """Predict the first `limit` samples of `split` with `checkpoint` and score them (module docstring);
    the report `<run>.<task>-eval.json` is in the new folder under `runs_dir`."""
    from core.eval.cli import evaluate
    from core.eval.predict_dense3d import predict_file
    from core.eval.predict_ross3d import predict_task

    def say(share: float, what: str) -> None:
        if progress is not None:
            progress(share, what)

    checkpoint = Path(checkpoint)
    model, tasks = checkpoint_kind(checkpoint)
    if task not in tasks:
        raise DataError(None, f"a {model} checkpoint cannot run {task} (it runs {', '.join(tasks)})")
    if limit < 1:
        raise DataError(None, f"at most N samples: N must be >= 1, got {limit}")
    root = dataset_root(data)
    if root is None:
        raise DataError(data, "not a dataset root (no annotations/ folder beside the scans)")
    split_truth(root, task, split)  # refuse a split without ground truth before any work
    name = run_name(checkpoint, task, split, limit, datetime.now(UTC))
    final = Path(runs_dir) / name
    with atomic_dir(final) as tmp:
        say(0.05, f"cutting the {split} ground truth to {limit} samples")
        gt, count = write_truncated_truth(root, task, split, limit, tmp)
        pred = tmp / f"{name}.json"
        say(0.1, f"{model}: predicting {count} {task} samples")
        if model == "dense3d":
            run, _, _ = predict_file(checkpoint, root, gt, pred, task=task, device=device, progress=False)
            seconds = run.seconds
        else:
            run, _ = predict_task(checkpoint, root, task, pred, split, device=device, max_samples=limit,
                                  progress=False)  # fmt: skip
            seconds = run.seconds
            predicted = {p.key for p in run.predictions}
            if predicted != truth_keys(gt, task):
                raise DataError(gt, f"the {count} samples predicted are not those of the truncated file")
        say(0.8, f"scoring {task}")
        args = argparse.Namespace(
            task=task, gt=gt, pred=pred, scans=root, labels=None, lookup=None, no_meteor=not meteor
        )
        report = evaluate(args)
        report.notes.append(f"{model} checkpoint {checkpoint}: the first {count} samples of {split}")
        report.inputs = {"gt": str(final / gt.name), "pred": str(final / pred.name), "scans": str(root),
                         "checkpoint": str(checkpoint)}  # fmt: skip
        path = report.write(tmp / f"{name}.{task}-eval.json")
    say(1.0, "done")
    return SplitRun(final, final / path.name, len(report.samples), seconds)
