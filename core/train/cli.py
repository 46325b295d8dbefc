"""`python -m core train MODEL --config PRESET|FILE --data DIR --out DIR`: train a model with the shared loop.

A preset is a JSON file with `model`, `data`, `train` (and optionally `pretrain`) parts
(`core/train/presets/<model>/<name>.json`); `--config` takes a preset name or a path to such a file. Each
model's task module turns the preset into `TrainJob`s (Dense3D has a backbone stage first, Ross3D a vision
stage); the loop is `core.train.loop.train` for all of them. Under `accelerate launch` the same command uses
many GPUs / nodes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from core.data.errors import DataError
from core.models.errors import ModelError
from core.scene.errors import SceneError

PRESETS = Path(__file__).resolve().parent / "presets"
# model name -> module with run(preset, data, out, init, resume, stop_after)
TASKS = {"dense3d": "core.train.dense3d", "ross3d": "core.train.ross3d"}


def available_presets(model: str) -> list[str]:
    return sorted(p.stem for p in (PRESETS / model).glob("*.json"))


def load_preset(model: str, name_or_path: str) -> dict[str, Any]:
    """A preset by name (shipped) or by path (the user's own), checked for its three parts."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PRESETS / model / f"{name_or_path}.json"
        if not path.is_file():
            names = ", ".join(available_presets(model)) or "none"
            raise ModelError(
                None, f"no preset {name_or_path!r} for {model} (shipped: {names}; or give a .json path)"
            )
    try:
        preset = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(path, f"cannot read the preset ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(preset, dict):
        raise ModelError(path, "a preset is a JSON object with 'model', 'data' and 'train' parts")
    unknown = sorted(set(preset) - {"model", "data", "train", "pretrain", "notes"})
    if unknown:
        known = "model, data, train, pretrain, notes"
        raise ModelError(path, f"unknown part(s) {', '.join(unknown)} (known: {known})")
    preset.setdefault("model", {})
    preset.setdefault("data", {})
    preset.setdefault("train", {})
    preset["source"] = str(path)
    return preset


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train Dense3D or Ross3D (CPU, one GPU, or many under `accelerate launch`)",
        description="Train a model from a preset. Writes checkpoints/, metrics.jsonl, loss_curve.png and, "
        "at the end, model/ (config, safetensors, tokenizer, training.json: recipe and data).",
    )
    p.add_argument("model", choices=sorted(TASKS), help="which model")
    p.add_argument("--config", required=True, help="preset name (e.g. cpu-tiny) or a preset .json path")
    p.add_argument("--data", required=True, type=Path, help="dataset root (scans/ + benchmark files)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--init", type=Path, help="start from this checkpoint folder (fine-tuning)")
    p.add_argument(
        "--densescan",
        type=Path,
        action="append",
        help="dense3d: also train on this DenseScan file (e.g. `python -m review export`'s; repeatable): "
        "review-rejected records are left out, corrected text is used",
    )
    p.add_argument(
        "--sources",
        help="dense3d: benchmark files to train on besides --densescan, comma-separated "
        "(scanrefer,multi3drefer; 'none' for the DenseScan files only); default: the preset's",
    )
    p.add_argument("--steps", type=int, help="override the preset's number of optimizer steps")
    p.add_argument("--stop-after", type=int, help="stop at this step with a checkpoint (resume later)")
    p.set_defaults(run=run)


def data_overrides(args: argparse.Namespace, preset: dict[str, Any]) -> None:
    """--densescan / --sources into the preset's data part (Dense3D's referring samples only)."""
    if not args.densescan and args.sources is None:
        return
    if args.model != "dense3d":
        raise ModelError(None, f"--densescan and --sources are for dense3d, not {args.model}")
    for path in args.densescan or []:
        if not path.is_file():
            raise ModelError(path, "--densescan: no such file (write it with `python -m review export`)")
    data = preset["data"]
    data["densescan"] = [*data.get("densescan", []), *map(str, args.densescan or [])]
    if args.sources is not None:
        names = [n.strip() for n in args.sources.split(",") if n.strip() and n.strip() != "none"]
        unknown = sorted(set(names) - {"scanrefer", "multi3drefer"})
        if unknown:
            known = "scanrefer, multi3drefer or none"
            raise ModelError(None, f"--sources: unknown {', '.join(unknown)} ({known})")
        data["sources"] = names
    if not data.get("sources") and not data["densescan"]:
        raise ModelError(None, "--sources none needs at least one --densescan file")


def run(args: argparse.Namespace) -> int:
    try:
        preset = load_preset(args.model, args.config)
        if args.steps is not None:
            preset["train"]["steps"] = args.steps
        data_overrides(args, preset)
        task = importlib.import_module(TASKS[args.model])
        final = task.run(preset, args.data, args.out, args.init, args.resume, args.stop_after)
    except (ModelError, DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under `accelerate launch`, one process reports
        return 0
    if final is None:
        print(
            f"stopped at step {args.stop_after}; continue with --resume "
            f"(checkpoints in {args.out / 'checkpoints'})"
        )
    else:
        print(f"model written to {final}")
    return 0
