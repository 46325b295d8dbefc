"""The DenseScan paper's data claim, re-tested: do dense captions help short-query referring segmentation?

    python bench/dense3d_data_ablation.py --data ROOT --out DIR [--densescan FILE] [--preset cpu-tiny]
        [--steps N] [--pretrain-steps N | --backbone DIR] [--seeds 0 1 2] [--levels object] [--eval-split val]

Two arms, trained for the same number of optimizer steps from the same preset, once per seed:

- `short`: ScanRefer-style samples of the train split only;
- `short+dense`: the same samples plus the DenseScan records (`python -m core annotate` output over the
  same train scenes; object captions by default, `--levels object scenario` adds scenario questions).
  Without `--densescan`, the annotate command is run here over the train scenes (grounded captioner,
  resumable) into `OUT/annotate/`.

Per seed the U-Net is pretrained once (stage 1 of `python -m core train dense3d`) and both arms start from
it, so the arms differ only in their referring data; `--backbone DIR` shares one trained stage-1 U-Net
across every seed and arm instead (stage 1 never sees referring data, so the seeds then vary stage 2 only).
Each trained model predicts the ScanRefer queries of `--eval-split` (`core.eval.predict_dense3d`, what
`python -m core predict` runs) and is scored by
`core.eval.grounding.evaluate_refseg` (what `python -m core eval refseg` runs). Prints mIoU mean ± std
(sample std over seeds) per arm and writes `OUT/ablation.json`. Finished runs (`OUT/runs/<arm>-seed<s>/
result.json`) are kept: rerun the command to resume.

Equal steps means equal compute: the dense arm sees fewer short queries per step. That is the paper's
comparison; the numbers say what they say, whichever way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import mean_pm_std, mean_std, runs_by_arm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARMS = ("short", "short+dense")


def arm_preset(
    base: dict, arm: str, seed: int, steps: int | None, densescan: Path | None, levels, cache: Path
):
    """The preset of one run: ScanRefer samples (+ DenseScan records for the dense arm), the seed, steps."""
    preset = json.loads(json.dumps(base))
    data = {k: v for k, v in preset["data"].items() if k not in ("densescan", "levels", "max_samples")}
    data.update(sources=["scanrefer"], cache_dir=str(cache))
    if arm == "short+dense":
        data.update(densescan=[str(densescan)], levels=list(levels))
    preset["data"] = data
    preset["train"]["seed"] = seed
    if steps is not None:
        preset["train"]["steps"] = steps
        preset["train"]["warmup_steps"] = min(preset["train"].get("warmup_steps", 0), max(steps // 10, 0))
        preset["train"]["checkpoint_every"] = steps
    return preset


def annotate(data: Path, out: Path, scenes: list[str]) -> Path:
    """The DenseScan pipeline over the train scenes (resumable), as a user would run it."""
    command = [sys.executable, "-m", "core", "annotate", "--scans", str(data), "--out", str(out)]
    done = subprocess.run([*command, "--scenes", *scenes, "--no-progress"], cwd=REPO)
    found = out / "densescan.json"
    if not found.is_file():
        raise SystemExit(f"error: annotate wrote no {found} (exit status {done.returncode})")
    return found


def backbone(preset: dict, data: Path, folder: Path) -> Path | None:
    """Stage 1 (U-Net on instance / semantic labels) once per seed, shared by both arms."""
    from core.train.dense3d import backbone_job
    from core.train.loop import latest_checkpoint, train

    if not preset.get("pretrain"):
        return None
    model = folder / "model"
    if not (model / "config.json").is_file():
        train(backbone_job(preset, data, folder), resume=latest_checkpoint(folder) is not None)
    return model


def score(model: Path, data: Path, gt: Path, folder: Path, batch_size: int) -> dict:
    """Predict the eval queries with the trained model and score them as `core eval refseg` does."""
    from core.eval.grounding import evaluate_refseg
    from core.eval.predict_dense3d import predict_file
    from core.eval.scenes import ScanTruth

    pred = folder / "refseg.json"
    run, _, _ = predict_file(
        model,
        data,
        gt,
        pred,
        task="refseg",
        batch_size=batch_size,
        progress=False,
        cache_dir=folder.parent.parent / "predict_cache",
        details=folder / "details.json",
    )
    report = evaluate_refseg(gt, pred, ScanTruth(data), None)
    report.write(folder / "refseg-eval.json")
    return {"metrics": report.metrics, "infer_s_per_query": run.per_query}


def one_run(args, base: dict, arm: str, seed: int, densescan: Path | None, gt: Path) -> dict:
    from core.data.datasets.refseg import summarize
    from core.train.dense3d import refseg_job
    from core.train.loop import latest_checkpoint, train

    folder = args.out / "runs" / f"{arm.replace('+', '_')}-seed{seed}"
    done = folder / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    preset = arm_preset(base, arm, seed, args.steps, densescan, args.levels, args.out / "scene_cache")
    if args.pretrain_steps is not None and preset.get("pretrain"):
        preset["pretrain"]["steps"] = args.pretrain_steps
        preset["pretrain"]["warmup_steps"] = min(
            preset["pretrain"].get("warmup_steps", 0), args.pretrain_steps
        )
    import torch

    torch.manual_seed(seed)
    stage1 = args.backbone or backbone(preset, args.data, args.out / "backbones" / f"seed{seed}")
    started = time.perf_counter()
    job = refseg_job(preset, args.data, folder, None, stage1)
    model = train(job, resume=latest_checkpoint(folder) is not None)
    seconds = time.perf_counter() - started
    samples = job.training_set or []
    result = {
        "arm": arm,
        "seed": seed,
        "steps": preset["train"]["steps"],
        "train_seconds": seconds,
        "train_samples": summarize([_Sample(s) for s in samples]),
        **score(model, args.data, gt, folder, args.batch_size),
    }
    from core.atomic import atomic_write_json

    atomic_write_json(done, result, indent=1)
    return result


class _Sample:
    """The two fields `summarize` reads, from a training-set row."""

    def __init__(self, row: dict):
        self.kind, self.subset, self.target_ids = row["kind"], row["subset"], row["target_ids"]


def summary(results: list[dict]) -> dict:
    """Per arm: the seeds, each group's mIoU mean and sample std over seeds (0 for one seed), the samples."""
    out = {}
    for arm, runs in runs_by_arm(results, ARMS).items():
        out[arm] = {"seeds": [r["seed"] for r in runs]}
        for group in ("overall", "unique", "multiple"):
            values = [r["metrics"][group]["mIoU"] for r in runs if group in r["metrics"]]
            if values:
                mean, std = mean_std(values, single=0.0)
                out[arm][group] = {"mIoU_mean": mean, "mIoU_std": std, "mIoU": values}
        out[arm]["train_samples"] = runs[0]["train_samples"]
    return out


def format_table(table: dict, steps: int, eval_count: int) -> str:
    lines = [
        f"short-query {eval_count} eval queries, {steps} steps per run; mIoU x100, mean ± std over seeds"
    ]
    lines.append(
        f"{'arm':<12}  {'seeds':>5}  {'overall':>14}  {'unique':>14}  {'multiple':>14}  train samples"
    )
    for arm, row in table.items():
        cells = []
        for group in ("overall", "unique", "multiple"):
            g = row.get(group)
            cells.append(mean_pm_std(g["mIoU_mean"], g["mIoU_std"], 100, widths=(6, 5)) if g else "-")
        kinds = ", ".join(f"{k} {v['samples']}" for k, v in row["train_samples"].items())
        lines.append(
            f"{arm:<12}  {len(row['seeds']):>5}  {cells[0]:>14}  {cells[1]:>14}  {cells[2]:>14}  {kinds}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="dataset root (python -m core synth layout)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (runs, ablation.json)")
    parser.add_argument(
        "--densescan", type=Path, help="densescan.json of the train scenes (default: annotate)"
    )
    parser.add_argument(
        "--preset", default="cpu-tiny", help="dense3d preset name or .json (default cpu-tiny)"
    )
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: the preset's)")
    parser.add_argument("--pretrain-steps", type=int, help="U-Net pretraining steps (default: the preset's)")
    parser.add_argument(
        "--backbone",
        type=Path,
        help="a trained stage-1 U-Net folder (OUT/backbone/model of `python -m core train dense3d`) "
        "shared by every seed and arm, instead of pretraining one per seed",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--levels", nargs="+", default=["object"], help="DenseScan levels (default: object)")
    parser.add_argument("--eval-split", default="val", help="split whose ScanRefer queries are scored")
    parser.add_argument("--batch-size", type=int, default=4, help="prediction batch size")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from core.data.datasets.refseg import read_split
    from core.data.errors import DataError
    from core.models.errors import ModelError
    from core.scene.errors import SceneError
    from core.train.cli import load_preset

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        base = load_preset("dense3d", args.preset)
        gt = args.data / "annotations" / f"ScanRefer_filtered_{args.eval_split}.json"
        if not gt.is_file():
            raise DataError(gt, f"no ScanRefer file for --eval-split {args.eval_split}")
        densescan = args.densescan
        if densescan is None:
            densescan = annotate(args.data, args.out / "annotate", read_split(args.data, "train"))
        elif not densescan.is_file():
            raise DataError(densescan, "DenseScan file not found")
        results = [one_run(args, base, arm, seed, densescan, gt) for seed in args.seeds for arm in ARMS]
    except (ModelError, DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = summary(results)
    steps = results[0]["steps"]
    count = results[0]["metrics"]["overall"]["count"]
    print(format_table(table, steps, count))
    from core.atomic import atomic_write_json

    document = {
        "data": str(args.data),
        "densescan": str(densescan),
        "preset": base["source"],
        "steps": steps,
        "eval_split": args.eval_split,
        "levels": args.levels,
        "summary": table,
        "runs": results,
    }
    path = atomic_write_json(args.out / "ablation.json", document, indent=1)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
