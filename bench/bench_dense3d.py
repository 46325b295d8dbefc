"""Dense3D benchmark: training step time, samples per second, inference latency, peak memory, size, MFU.

    python bench/bench_dense3d.py [--data DIR] [--steps 5] [--threads N] [--queries 4] [--json]

One row per preset: `cpu-tiny` always; on a CUDA machine also `gpu-small` and `cluster-like` (the
cluster-7b preset's U-Net, decoder and LoRA with a Qwen2-0.5B-shaped LLM and a SigLIP-base-shaped vision
tower built from configs, since no 7B weights are here). Each row runs in its own process, so that its
peak memory is its own, and measures on the referring samples of `--data` (default: 2 small scenes
generated with `core.synth` into a temporary folder):

- train step: forward + backward + AdamW step at the preset's batch size (batches collated beforehand,
  one warm-up step not timed; bf16 autocast on a GPU, as the training loop uses), median over `--steps`;
- samples/s: batch size / step time;
- infer/query: `Dense3DPredictor` (what `python -m core predict` runs) at batch 1 on one scene, per query,
  after one warm-up query (generation included);
- peak memory: the process's maximum RSS on CPU (Python + torch included), or
  `torch.cuda.max_memory_allocated` on a GPU;
- params and the size of the `save_pretrained` folder;
- MFU (GPU only): FLOPs of one training step counted by `torch.utils.flop_counter.FlopCounterMode`
  (matmuls, convolutions, attention; spconv's own kernels are not seen, the pure-torch sparse backend's
  matmuls are) over step time, divided by the GPU's dense bf16 peak (`--peak-tflops`, known for
  H100 / H200 / A100).

The machine is shared: the load average (`uptime`) is printed with the numbers; quote it beside them.
"""

from __future__ import annotations

import argparse
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
CLUSTER_LIKE = {  # cluster-7b with Qwen2-0.5B / SigLIP-base shapes built from configs (no local weights)
    "llm": {"path": None, "hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864},
    "image": {
        "vision": {
            "path": None,
            "image_size": 224,
            "patch_size": 16,
            "hidden": 768,
            "layers": 12,
            "heads": 12,
        },
        "out_dim": 896,
        "num_frames": 20,
    },
}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def preset_for(name: str) -> dict:
    from core.train.cli import load_preset

    if name != "cluster-like":
        return load_preset("dense3d", name)
    preset = load_preset("dense3d", "cluster-7b")
    model = preset["model"]
    model["llm"] = {**model["llm"], **CLUSTER_LIKE["llm"]}
    model["llm"].pop("dtype", None)  # bf16 autocast as the other GPU rows
    vision = {k: v for k, v in model["image"]["vision"].items() if k != "path"}
    model["image"] = {
        **model["image"],
        **CLUSTER_LIKE["image"],
        "vision": {**vision, **CLUSTER_LIKE["image"]["vision"]},
    }
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


def measure_row(name: str, data: Path, steps: int, queries: int, peak_tflops: float | None) -> dict:
    """Every number of one preset's row, in this process."""
    from core.eval.predict_dense3d import Dense3DPredictor
    from core.train.config import TrainConfig
    from core.train.dense3d import refseg_job

    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = preset_for(name)
    train_config = TrainConfig.from_dict(preset["train"], "train")
    work = Path(tempfile.mkdtemp(prefix=f"bench-dense3d-{name}-"))
    torch.manual_seed(0)
    job = refseg_job(preset, data, work, None, None)
    model = job.model.to(device).train()
    size = train_config.batch_size
    batches = []
    for start in range(0, (steps + 1) * size, size):
        items = [job.dataset[i % len(job.dataset)] for i in range(start, start + size)]
        batches.append(job.collate(items).to(device))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_config.lr)
    train_step(model, optimizer, batches[0], device)  # warm-up: allocator, kernels, lazy state
    times = []
    for batch in batches[1:]:
        sync(device)
        started = time.perf_counter()
        train_step(model, optimizer, batch, device)
        sync(device)
        times.append(time.perf_counter() - started)
    step = statistics.median(times)
    mfu = None
    if device == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            train_step(model, optimizer, batches[1], device)
        peak = gpu_peak_tflops(peak_tflops)
        mfu = counter.get_total_flops() / step / (peak * 1e12) if peak else None

    model.eval()
    samples = job.dataset.items.samples if hasattr(job.dataset, "items") else job.dataset.samples
    demo = samples[0].scene_id
    chosen = [s for s in samples if s.scene_id == demo][: queries + 1]
    predictor = Dense3DPredictor(model, data, work / "scene_cache", batch_size=1)
    predictor.run(chosen[:1], progress=False)  # warm-up: scene cache, frames, first generation
    sync(device)
    run = predictor.run(chosen[1:] or chosen, progress=False)
    checkpoint = model.save_pretrained(work / "model")
    return {
        "preset": name,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()}",
        "batch": size,
        "step_s": step,
        "samples_per_s": size / step,
        "infer_s_per_query": run.per_query,
        "peak_mem_mb": peak_memory_mb(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in trainable) / 1e6,
        "checkpoint_mb": folder_bytes(checkpoint) / 2**20,
        "mfu": mfu,
        "steps": len(times),
        "queries": len(run.outputs),
    }


def format_table(rows: list[dict], load: str) -> str:
    head = ["preset", "device", "batch", "step s", "samples/s", "infer s/query", "peak MB", "params M"]
    head += ["ckpt MB", "MFU"]
    cells = [head]
    for r in rows:
        mfu = "-" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
        cells.append(
            [
                r["preset"],
                r["device"],
                str(r["batch"]),
                f"{r['step_s']:.3f}",
                f"{r['samples_per_s']:.2f}",
                f"{r['infer_s_per_query']:.3f}",
                f"{r['peak_mem_mb']:.0f}",
                f"{r['params_m']:.2f}",
                f"{r['checkpoint_mb']:.1f}",
                mfu,
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join([f"dense3d bench; {load}", *lines])


def generate(folder: Path) -> Path:
    from core.synth.dataset import SynthConfig, generate_dataset

    generate_dataset(folder, 2, seed=0, config=SynthConfig(num_frames=40), progress=False)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: 2 generated scenes in a temp dir)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per row (default 5)")
    parser.add_argument("--queries", type=int, default=4, help="timed inference queries per row (default 4)")
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
    with tempfile.TemporaryDirectory(prefix="bench-dense3d-data-") as tmp:
        data = args.data or generate(Path(tmp) / "data")
        rows = []
        for name in presets:
            command = [
                sys.executable,
                __file__,
                "--row",
                name,
                "--data",
                str(data),
                "--steps",
                str(args.steps),
            ]
            command += ["--queries", str(args.queries)]
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
