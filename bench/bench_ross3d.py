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

import copy
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import _common as common  # noqa: E402

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


def measure_row(name: str, data: Path, steps: int, queries: int, peak_tflops: float | None) -> dict:
    """Every number of one preset's row, in this process."""
    from core.data.datasets.ross3d_samples import build_records, make_sample
    from core.models.ross3d.processor_ross3d import Ross3DBatch
    from core.train import ross3d as task

    device = common.device_kind()
    preset = preset_for(name)
    work = Path(tempfile.mkdtemp(prefix=f"bench-ross3d-{name}-"))
    torch.manual_seed(0)
    job = task.job(preset, data, work)
    model = job.model.to(device).train()
    batches = task_batches(job, steps, device)
    tasks = len(batches) - steps
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=job.config.lr)
    # warm-up, one step per task (allocator, kernels, lazy state), then the timed ones
    warmup, measured = batches[:tasks], batches[tasks:]
    times, step, mfu = common.time_training(model, optimizer, warmup, measured, device, peak_tflops)

    model.eval()
    store = job.dataset.store
    questions = build_records(data, "train", ("scanqa",), queries + 1, predict=True)
    samples = [make_sample(r, store.get(r.scene_id), False) for r in questions]
    model.answer(Ross3DBatch(samples[:1]).to(device))  # warm-up
    answers = [
        common.timed(lambda s=s: model.answer(Ross3DBatch([s]).to(device)), device)
        for s in samples[1:] or samples
    ]
    answer = statistics.median(answers)
    recon = common.timed(lambda: model.reconstruct([samples[0].to(device)], steps=50, sampler="ddim"), device)
    checkpoint = work / "model"
    model.save_pretrained(checkpoint)
    return {
        "preset": name,
        "device": common.device_name(device),
        "frames": model.config.image.num_frames,
        "batch": job.config.batch_size,
        "step_s": step,
        "samples_per_s": job.config.batch_size / step,
        "answer_s": answer,
        "recon_s": recon,
        "peak_mem_mb": common.peak_memory_mb(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in trainable) / 1e6,
        "checkpoint_mb": common.folder_bytes(checkpoint) / 2**20,
        "mfu": mfu,
        "steps": len(times),
    }


def format_table(rows: list[dict], load: str) -> str:
    head = ["preset", "device", "frames", "batch", "step s", "samples/s", "answer s", "recon s", "peak MB"]
    head += ["params M", "ckpt MB", "MFU"]
    cells = [head] + [
        [r["preset"], r["device"], str(r["frames"]), str(r["batch"]), f"{r['step_s']:.3f}",
         f"{r['samples_per_s']:.2f}", f"{r['answer_s']:.3f}", f"{r['recon_s']:.2f}",
         f"{r['peak_mem_mb']:.0f}", f"{r['params_m']:.2f}", f"{r['checkpoint_mb']:.1f}",
         common.mfu_cell(r.get("mfu"))]
        for r in rows
    ]  # fmt: skip
    return common.aligned_table(f"ross3d bench; {load}", cells)


def main(argv: list[str] | None = None) -> int:
    queries = "timed answers per row (default 4)"
    return common.preset_bench_main(
        argv, __file__, __doc__, measure_row, format_table, steps=8, queries_help=queries
    )


if __name__ == "__main__":
    sys.exit(main())
