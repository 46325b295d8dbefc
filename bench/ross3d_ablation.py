"""The Ross3D paper's Table 4, re-tested in miniature: what do the two reconstruction losses buy?

    python bench/ross3d_ablation.py --data ROOT --out DIR [--preset cpu-tiny] [--steps N] [--seeds 0 1 2]
        [--arms baseline +view +bev both] [--limit N] [--eval-split val] [--recon-scenes 2] [--threads T]

Ross3D's claim is that reconstructing masked views from the other views (cross-view) and reconstructing
the scene's bird's-eye view (BEV) make the LLM's 3D understanding better. The paper shows it once, at 7B, on
real scans; here it is re-run on generated scenes, several seeds, so the spread is visible. Four arms, the
same preset (same architecture, data, schedule and number of optimizer steps), differing only in
`model.use_view_recon` / `model.use_bev_recon`:

- `baseline`: LM (+ grounding) loss only;  `+view`: + cross-view reconstruction;
- `+bev`: + BEV reconstruction;  `both`: the full Ross3D recipe.

Each arm and seed is a run folder `OUT/runs/<arm>-seed<s>/` (`+` left out of the folder name): the arm's
preset copy (`preset.json`, with the seed as `train.seed`) trained by `python -m core train ross3d` in a
subprocess (log in `train.log`; `--resume` from its last checkpoint when a previous invocation was cut off),
then scored on `--eval-split` with what `python -m core predict ross3d` and `python -m core eval` run
(`core.eval.predict_ross3d`, `core.eval.cli.evaluate`): SQA3D EM, ScanQA CIDEr, ScanRefer Acc@0.25 (the
ground-truth boxes as proposals, as the shipped default is evaluated), and the BEV PSNR of `python -m core
reconstruct` (`reconstruct_scene`: non-empty BEV pixels, DDIM, seed 0, so every run samples the same noise)
averaged over the first `--recon-scenes` scenes of the split. `--limit N` keeps the first N questions of
each benchmark (file order, so few scenes: a quick check, not a result); the ground-truth file is then cut
to the same questions in the run folder, so `core eval` scores exactly what was predicted. The four numbers
go to `result.json` (atomic): a finished run is never redone, so rerunning the command resumes. A run folder
made with other settings (preset, steps, limit, ...) is refused rather than mixed in.

The arms without a reconstruction loss still have both denoisers (untrained: only the losses are switched
off), so their BEV PSNR is what an untrained denoiser samples; `bev_mean_psnr` (the BEV's mean colour, a
blind baseline) is stored beside it. Equal steps means equal compute in optimizer steps, not in FLOPs: the
reconstruction arms spend extra time on their denoisers within the same steps, as in the paper. Prints a
markdown table, mean ± sample std over seeds (n shown), and writes `OUT/ablation.json` (per-run numbers,
means, stds, command, steps, preset, git commit, date). The results are reported whatever they are.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import mean_pm_std, mean_std, runs_by_arm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARMS: dict[str, tuple[bool, bool]] = {  # arm -> (use_view_recon, use_bev_recon)
    "baseline": (False, False),
    "+view": (True, False),
    "+bev": (False, True),
    "both": (True, True),
}
# column -> (benchmark, metric group, metric name, scale for the table)
METRICS: dict[str, tuple[str, str, str, float]] = {
    "sqa3d_em": ("sqa3d", "all", "EM", 100.0),
    "scanqa_cider": ("scanqa", "all", "CIDEr", 100.0),
    "scanrefer_acc25": ("scanrefer", "overall", "Acc@0.25", 100.0),
}
COLUMNS = {
    "sqa3d_em": "SQA3D EM",
    "scanqa_cider": "ScanQA CIDEr",
    "scanrefer_acc25": "ScanRefer Acc@0.25",
    "bev_psnr": "BEV PSNR (dB)",
}


class AblationError(Exception):
    """A bad argument, dataset or run folder: printed as one `error:` line."""


def arm_name(text: str) -> str:
    """`view` and `+view` both name the `+view` arm (shells and folder names drop the `+`)."""
    for arm in ARMS:
        if text in (arm, arm.lstrip("+")):
            return arm
    raise argparse.ArgumentTypeError(f"unknown arm {text!r} (choose from {', '.join(ARMS)})")


def run_folder(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / f"{arm.lstrip('+')}-seed{seed}"


def arm_preset(base: dict, arm: str, seed: int, steps: int | None, cache_dir: Path) -> dict:
    """The preset of one run: the base preset with the arm's two switches, the seed and the steps."""
    preset = json.loads(json.dumps(base))
    preset.pop("source", None)
    view, bev = ARMS[arm]
    preset["model"]["use_view_recon"] = view
    preset["model"]["use_bev_recon"] = bev
    preset["data"]["cache_dir"] = str(cache_dir)  # targets depend on the scene and the VAE only: shared
    train = preset["train"]
    train["seed"] = seed
    if steps is not None:
        train["steps"] = steps
        train["warmup_steps"] = min(train.get("warmup_steps", 0), max(steps // 10, 0))
        train["checkpoint_every"] = min(train.get("checkpoint_every", steps), steps)
    preset["notes"] = (
        f"Table-4 ablation arm {arm!r}, seed {seed} (bench/ross3d_ablation.py; from {base['source']})"
    )
    return preset


def check_data(data: Path, split: str) -> None:
    """Everything the runs read, checked before the first one starts: one clear error, not a late crash."""
    from core.data.datasets.ross3d_samples import gt_file

    if not data.is_dir():
        raise AblationError(
            f"{data}: dataset root not found (a folder with scans/, annotations/ and split files)"
        )
    needed = [data / "scans", data / "scannetv2_train.txt", data / f"scannetv2_{split}.txt"]
    needed += [gt_file(data, task, "train") for task in ("sqa3d", "scanqa", "scanrefer")]
    needed += [gt_file(data, spec[0], split) for spec in METRICS.values()]
    for path in needed:
        if not path.exists():
            raise AblationError(
                f"{path}: missing (is --data a dataset root written by `python -m core synth`?)"
            )


def train_command(preset_path: Path, data: Path, folder: Path, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "core", "train", "ross3d", "--config", str(preset_path)]
    return [*command, "--data", str(data), "--out", str(folder), *(["--resume"] if resume else [])]


def train_run(preset_path: Path, data: Path, folder: Path, threads: int | None, label: str) -> float:
    """`python -m core train ross3d` in a subprocess (its own memory and threads), output in train.log;
    resumes from the folder's last checkpoint when an earlier invocation was cut off. Returns seconds."""
    from core.train.loop import latest_checkpoint

    command = train_command(preset_path, data, folder, latest_checkpoint(folder) is not None)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log = folder / "train.log"
    print(f"[{label}] training: {shlex.join(command)} (log: {log})", flush=True)
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not (folder / "model" / "config.json").is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip()[-300:] if lines else "no output"
        raise AblationError(f"{label}: training failed (exit status {done.returncode}): {last} (log: {log})")
    return seconds


def limited_gt(task: str, gt: Path, keys: set[str], path: Path) -> Path:
    """The benchmark file cut to the predicted questions (`--limit`), in a form `core eval` reads."""
    if task == "sqa3d":
        from core.data.sqa3d import read_sqa3d, write_sqa3d

        return write_sqa3d(path, [r for r in read_sqa3d(gt) if r.question_id in keys])
    if task == "scanqa":
        from core.data.scanqa import read_scanqa, write_scanqa

        return write_scanqa(path, [r for r in read_scanqa(gt) if r.question_id in keys])
    from core.data.scanrefer import read_scanrefer, write_scanrefer

    return write_scanrefer(path, [r for r in read_scanrefer(gt) if r.key in keys])


def score_benchmarks(model_dir: Path, data: Path, split: str, limit: int | None, folder: Path) -> dict:
    """Predict and score SQA3D, ScanQA and ScanRefer as `predict ross3d` + `core eval` do."""
    from core.data.datasets.ross3d_samples import build_records, gt_file
    from core.eval.cli import evaluate
    from core.eval.predict_ross3d import Ross3DPredictor, write_predictions
    from core.models.ross3d.reconstruct_cli import load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(model_dir)
    predictor = Ross3DPredictor(model, data)
    out: dict[str, Any] = {"values": {}, "counts": {}, "seconds": {}}
    for column, (task, group, name, _) in METRICS.items():
        records = build_records(data, split, (task,), limit, predict=True)
        if not records:
            raise AblationError(f"{data}: split {split!r} has no {task} question to score")
        run = predictor.run(records, task, progress=False)
        pred = write_predictions(folder / f"{task}-pred.json", run)
        gt = gt_file(data, task, split)
        if limit:
            gt = limited_gt(task, gt, {str(r.metadata["key"]) for r in records}, folder / f"{task}-gt.json")
        args = argparse.Namespace(
            task=task, gt=gt, pred=pred, scans=data, labels=None, lookup=None, no_meteor=True
        )
        report = evaluate(args)
        report.inputs = {"gt": str(gt), "pred": str(pred), "scans": str(data)}
        report.write(folder / f"{task}-eval.json")
        out["values"][column] = float(report.metrics[group][name])
        out["counts"][task] = len(report.samples)
        out["seconds"][task] = run.seconds
    return out


def score_reconstruction(model_dir: Path, data: Path, scenes: list[str], steps: int, folder: Path) -> dict:
    """`python -m core reconstruct` on each scene; BEV PSNR (and the blind mean-colour PSNR) averaged."""
    from core.models.ross3d.reconstruct_cli import reconstruct_scene

    rows = [reconstruct_scene(model_dir, data, s, folder / s, steps=steps, seed=0) for s in scenes]

    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return statistics.mean(values) if values else None

    return {
        "scenes": scenes,
        "steps": steps,
        "bev_psnr": mean("bev_psnr"),
        "bev_psnr_per_scene": [r["bev_psnr"] for r in rows],
        "bev_mean_psnr": mean("bev_mean_psnr"),
        "bev_latent_mse": mean("bev_latent_mse"),
        "view_psnr": mean("view_psnr"),
        "seconds": sum(r["seconds"] for r in rows),
    }


def settings(args: argparse.Namespace) -> dict:
    """What makes two runs comparable besides the preset: a run folder made otherwise is refused."""
    return {
        "data": str(args.data.resolve()),
        "eval_split": args.eval_split,
        "limit": args.limit,
        "recon_scenes": args.recon_scenes,
        "recon_steps": args.recon_steps,
    }


def _comparable(preset: dict) -> dict:
    """A run's preset without what cannot change its numbers (where the target cache lives, the notes that
    name the checkout it was started from)."""
    data = {k: v for k, v in preset.get("data", {}).items() if k != "cache_dir"}
    return {**{k: v for k, v in preset.items() if k != "notes"}, "data": data}


def one_run(args: argparse.Namespace, base: dict, arm: str, seed: int, scenes: list[str]) -> dict:
    from core.atomic import atomic_write_json

    folder = run_folder(args.out, arm, seed)
    label = f"{arm} seed {seed}"
    preset = arm_preset(base, arm, seed, args.steps, args.cache_dir or args.out / "target_cache")
    preset_path = folder / "preset.json"
    done = folder / "result.json"
    if preset_path.is_file() and _comparable(json.loads(preset_path.read_text())) != _comparable(preset):
        raise AblationError(
            f"{preset_path}: this run was made from another preset or --steps; use another --out"
        )
    if done.is_file():
        result = json.loads(done.read_text())
        if result.get("settings") != settings(args):
            raise AblationError(
                f"{done}: made with other settings {result.get('settings')}; use another --out"
            )
        print(f"[{label}] done before: {done}", flush=True)
        return result
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(preset_path, preset, indent=1)
    model_dir = folder / "model"
    train_seconds = None
    if not (model_dir / "config.json").is_file():
        train_seconds = train_run(preset_path, args.data, folder, args.threads, label)
    print(f"[{label}] scoring on {args.eval_split}", flush=True)
    benchmarks = score_benchmarks(model_dir, args.data, args.eval_split, args.limit, folder / "eval")
    recon = score_reconstruction(model_dir, args.data, scenes, args.recon_steps, folder / "reconstruct")
    values = {**benchmarks["values"], "bev_psnr": recon["bev_psnr"]}
    bad = [k for k, v in values.items() if v is None or not math.isfinite(v)]
    if bad:
        raise AblationError(f"{folder}: no finite {', '.join(bad)} (see eval/ and reconstruct/)")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result = {
        "arm": arm,
        "seed": seed,
        "use_view_recon": ARMS[arm][0],
        "use_bev_recon": ARMS[arm][1],
        "steps": preset["train"]["steps"],
        "settings": settings(args),
        "values": values,
        "counts": benchmarks["counts"],
        "reconstruction": recon,
        "final_losses": rows[-1] if rows else None,
        "seconds": {
            "train": train_seconds,
            "predict": benchmarks["seconds"],
            "reconstruct": recon["seconds"],
        },
        "model": str(model_dir),
    }
    atomic_write_json(done, result, indent=1)
    print(f"[{label}] " + ", ".join(f"{COLUMNS[k]} {v:.4g}" for k, v in values.items()), flush=True)
    return result


def summary(results: list[dict], arms: list[str]) -> dict:
    """Per arm: the seeds, n, and each column's mean and sample std over seeds (std None for one seed)."""
    out: dict[str, dict] = {}
    for arm, runs in runs_by_arm(results, arms).items():
        row: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "n": len(runs)}
        for column in COLUMNS:
            values = [r["values"][column] for r in runs]
            mean, std = mean_std(values)
            row[column] = {"mean": mean, "std": std, "values": values}
        out[arm] = row
    return out


def format_table(table: dict) -> str:
    """Markdown: arm | n | each column as mean ± std (EM, CIDEr, Acc x100; PSNR in dB)."""
    scale = {column: spec[3] for column, spec in METRICS.items()}
    header = ["arm", "n", *COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for arm, row in table.items():
        cells = [arm, str(row["n"])]
        for column in COLUMNS:
            cells.append(mean_pm_std(row[column]["mean"], row[column]["std"], scale.get(column, 1.0)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def eval_scenes(data: Path, split: str, count: int) -> list[str]:
    path = data / f"scannetv2_{split}.txt"
    scenes = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not scenes:
        raise AblationError(f"{path}: no scene in the split file")
    return scenes[:count]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="dataset root (python -m core synth layout)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (runs/, ablation.json)")
    parser.add_argument("--preset", default="cpu-tiny", help="ross3d preset name or .json (default cpu-tiny)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--arms", type=arm_name, nargs="+", default=list(ARMS), help=f"subset of {', '.join(ARMS)}"
    )
    parser.add_argument("--limit", type=int, help="first N questions per benchmark (default: all)")
    parser.add_argument("--eval-split", default="val", help="split the runs are scored on (default val)")
    parser.add_argument(
        "--recon-scenes", type=int, default=2, help="scenes reconstructed per run (default 2)"
    )
    parser.add_argument(
        "--recon-steps", type=int, default=50, help="DDIM steps per reconstruction (default 50)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="VAE target cache shared by the runs (default OUT/target_cache)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (here and in the training processes)")
    args = parser.parse_args(argv)
    for name in ("steps", "limit", "recon_scenes", "recon_steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    args.arms = list(dict.fromkeys(args.arms))
    args.seeds = list(dict.fromkeys(args.seeds))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "bench/ross3d_ablation.py", *(sys.argv[1:] if argv is None else argv)])

    import torch

    from core.data.errors import DataError
    from core.models.errors import ModelError
    from core.scene.errors import SceneError
    from core.train.cli import load_preset
    from core.train.loop import git_commit

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        base = load_preset("ross3d", args.preset)
        check_data(args.data, args.eval_split)
        scenes = eval_scenes(args.data, args.eval_split, args.recon_scenes)
        results = [one_run(args, base, arm, seed, scenes) for seed in args.seeds for arm in args.arms]
    except (AblationError, ModelError, DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = summary(results, args.arms)
    steps = results[0]["steps"]
    print()
    print(
        f"Ross3D Table 4 in miniature: {steps} steps per run, split {args.eval_split}"
        f"{f' (first {args.limit} questions per benchmark)' if args.limit else ''}; "
        f"EM, CIDEr, Acc x100; mean ± sample std over seeds"
    )
    print(format_table(table))
    from core.atomic import atomic_write_json

    document = {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(REPO),
        "preset": base["source"],
        "steps": steps,
        "seeds": args.seeds,
        "arms": args.arms,
        **settings(args),
        "recon_scene_ids": scenes,
        "columns": COLUMNS,
        "scale_in_table": {c: spec[3] for c, spec in METRICS.items()},
        "summary": table,
        "runs": results,
    }
    path = atomic_write_json(args.out / "ablation.json", document, indent=1)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
