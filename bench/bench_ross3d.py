"""Ross3D benchmark: training step time, samples per second, answer latency, reconstruction time, peak
memory, size and (on a GPU) model FLOPs utilisation.

    python bench/bench_ross3d.py [--data DIR] [--steps 8] [--threads N] [--queries 4] [--json FILE]

One row per preset: `cpu-tiny` always; on a CUDA machine also `gpu-small` and `cluster-like` (the
cluster-7b preset, 32 frames, 1024-wide denoisers, full fine-tune, with a Qwen2-0.5B-shaped LLM and a
SigLIP-base-shaped tower built from configs and the shipped VAE, since no 7B weights are here). Each row
runs in its own process, so that its peak memory is its own, on the records of `--data` (default: 2 small
scenes generated with `core.synth` into a temporary folder):

- train step: forward + backward + AdamW step at the preset's batch size through the model's own view
  schedule (every 4th step masks views), batches taken task by task in turn (QA, captioning and grounding
  steps differ: the median over `--steps` is reported), one warm-up step per task not timed; bf16
  autocast on a GPU, as the training loop uses;
- samples/s: batch size / step time;
- answer s: `Ross3DModel.answer` on one ScanQA question at batch 1 (frames encoded, answer generated), median
  over `--queries` after a warm-up; the shipped default must stay under 2 s on 2 CPU cores;
- recon s: `Ross3DModel.reconstruct` of one scene (BEV + masked views, 50 DDIM steps, decoded);
- peak memory: the process's maximum RSS on CPU (Python + torch included), or
  `torch.cuda.max_memory_allocated` on a GPU;
- params and the size of the `save_pretrained` folder (VAE included);
- MFU (GPU only): FLOPs of one training step counted by `torch.utils.flop_counter.FlopCounterMode` over
  step time, divided by the GPU's dense bf16 peak (`--peak-tflops`, known for H100 / H200 / A100).

The machine is shared: the load average (`uptime`) is printed with the numbers; quote it beside them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
DEN = {"in_channels": 32, "cond_dim": 896, "width": 1024, "depth": 3, "heads": 16, "pool_heads": 16}
CLUSTER_LIKE = {  # cluster-7b with Qwen2-0.5B / SigLIP-base shapes from configs and the shipped VAE
    "llm": {"path": None, "hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864,
            "dtype": "float32"},
    "image": {"vision": {"path": None, "image_size": 224, "patch_size": 16, "hidden": 768, "layers": 12,
                         "heads": 12, "pool": 2, "freeze": True}, "out_dim": 896},
    "vae_path": None,
    "recon": {"view": {**DEN, "grid": [7, 7]}, "bev": {**DEN, "grid": [27, 27]}},
    "targets": {"view_grid": [7, 7], "view_size": 112, "bev_size": 432, "bev_grid": [27, 27]},
}  # fmt: skip


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def preset_for(name: str) -> dict:
    from core.train.cli import load_preset

    if name != "cluster-like":
        return load_preset("ross3d", name)
    preset = load_preset("ross3d", "cluster-7b")
    model = preset["model"]
    model["llm"] = {**model["llm"], **CLUSTER_LIKE["llm"]}
    model["image"] = {
        **model["image"],
        **CLUSTER_LIKE["image"],
        "vision": {**model["image"]["vision"], **CLUSTER_LIKE["image"]["vision"]},
    }
    for key in ("vae_path", "recon", "targets"):
        model[key] = copy.deepcopy(CLUSTER_LIKE[key])
    preset["train"]["grad_accum"] = 1  # one micro-batch is one timed step here
    return preset


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def gpu_peak_tflops(given: float | None) -> float | None:
    if given:
        return given
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def train_step(model, optimizer, batch, device: str) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = model(batch)["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def task_batches(job, steps: int, device: str) -> list:
    """`steps + tasks` batches, one task after another in turn (each of the dataset's groups is one batch)."""
    size = job.config.batch_size
    firsts: dict[str, list[int]] = {}
    for start in range(0, len(job.groups), size):
        firsts.setdefault(job.groups[start].split("#")[0], []).append(start)
    tasks = sorted(firsts)
    out = []
    for k in range(steps + len(tasks)):
        task = tasks[k % len(tasks)]
        starts = firsts[task]
        start = starts[(k // len(tasks)) % len(starts)]
        out.append(job.collate([job.dataset[i] for i in range(start, start + size)]).to(device))
    return out


def timed(fn, device: str) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def measure_row(name: str, data: Path, steps: int, queries: int, peak_tflops: float | None) -> dict:
    """Every number of one preset's row, in this process."""
    from core.data.datasets.ross3d_samples import build_records, make_sample
    from core.models.ross3d.processor_ross3d import Ross3DBatch
    from core.train import ross3d as task

    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = preset_for(name)
    work = Path(tempfile.mkdtemp(prefix=f"bench-ross3d-{name}-"))
    torch.manual_seed(0)
    job = task.job(preset, data, work)
    model = job.model.to(device).train()
    batches = task_batches(job, steps, device)
    tasks = len(batches) - steps
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=job.config.lr)
    for batch in batches[:tasks]:  # warm-up, one step per task: allocator, kernels, lazy state
        train_step(model, optimizer, batch, device)
    times = [timed(lambda b=b: train_step(model, optimizer, b, device), device) for b in batches[tasks:]]
    step = statistics.median(times)
    mfu = None
    if device == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            train_step(model, optimizer, batches[tasks], device)
        peak = gpu_peak_tflops(peak_tflops)
        mfu = counter.get_total_flops() / step / (peak * 1e12) if peak else None

    model.eval()
    store = job.dataset.store
    questions = build_records(data, "train", ("scanqa",), queries + 1, predict=True)
    samples = [make_sample(r, store.get(r.scene_id), False) for r in questions]
    model.answer(Ross3DBatch(samples[:1]).to(device))  # warm-up
    answer = statistics.median(
        timed(lambda s=s: model.answer(Ross3DBatch([s]).to(device)), device) for s in samples[1:] or samples
    )
    recon = timed(lambda: model.reconstruct([samples[0].to(device)], steps=50, sampler="ddim"), device)
    checkpoint = work / "model"
    model.save_pretrained(checkpoint)
    return {
        "preset": name,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()}",
        "frames": model.config.image.num_frames,
        "batch": job.config.batch_size,
        "step_s": step,
        "samples_per_s": job.config.batch_size / step,
        "answer_s": answer,
        "recon_s": recon,
        "peak_mem_mb": peak_memory_mb(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in trainable) / 1e6,
        "checkpoint_mb": folder_bytes(checkpoint) / 2**20,
        "mfu": mfu,
        "steps": len(times),
    }


def format_table(rows: list[dict], load: str) -> str:
    head = ["preset", "device", "frames", "batch", "step s", "samples/s", "answer s", "recon s", "peak MB"]
    head += ["params M", "ckpt MB", "MFU"]
    cells = [head]
    for r in rows:
        mfu = "-" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
        cells.append(
            [r["preset"], r["device"], str(r["frames"]), str(r["batch"]), f"{r['step_s']:.3f}",
             f"{r['samples_per_s']:.2f}", f"{r['answer_s']:.3f}", f"{r['recon_s']:.2f}",
             f"{r['peak_mem_mb']:.0f}", f"{r['params_m']:.2f}", f"{r['checkpoint_mb']:.1f}", mfu]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join([f"ross3d bench; {load}", *lines])


def generate(folder: Path) -> Path:
    from core.synth.dataset import SynthConfig, generate_dataset

    generate_dataset(folder, 2, seed=0, config=SynthConfig(num_frames=40), progress=False)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: 2 generated scenes in a temp dir)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per row (default 8)")
    parser.add_argument("--queries", type=int, default=4, help="timed answers per row (default 4)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--presets", nargs="+", help="rows to run (default: cpu-tiny; + GPU rows on CUDA)")
    parser.add_argument("--peak-tflops", type=float, help="GPU dense bf16 peak for MFU (default: by name)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: measure one row, print its JSON
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.row:
        print(json.dumps(measure_row(args.row, args.data, args.steps, args.queries, args.peak_tflops)))
        return 0
    presets = args.presets or ["cpu-tiny"] + (
        ["gpu-small", "cluster-like"] if torch.cuda.is_available() else []
    )
    with tempfile.TemporaryDirectory(prefix="bench-ross3d-data-") as tmp:
        data = args.data or generate(Path(tmp) / "data")
        rows = []
        for name in presets:
            command = [sys.executable, __file__, "--row", name, "--data", str(data)]
            command += ["--steps", str(args.steps), "--queries", str(args.queries)]
            command += ["--threads", str(args.threads)] if args.threads else []
            command += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
                print(f"{name}: failed ({tail[0]})", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load = uptime()
    print(format_table(rows, load))
    if args.json:
        from core.atomic import atomic_write_json

        atomic_write_json(args.json, {"uptime": load, "rows": rows}, indent=1)
    return 0 if len(rows) == len(presets) else 1


if __name__ == "__main__":
    sys.exit(main())
