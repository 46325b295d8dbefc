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

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import _common as common  # noqa: E402

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


def measure_row(name: str, data: Path, steps: int, queries: int, peak_tflops: float | None) -> dict:
    """Every number of one preset's row, in this process."""
    from core.eval.predict_dense3d import Dense3DPredictor
    from core.train.config import TrainConfig
    from core.train.dense3d import refseg_job

    device = common.device_kind()
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
    # one warm-up step (allocator, kernels, lazy state), then the timed ones
    times, step, mfu = common.time_training(model, optimizer, batches[:1], batches[1:], device, peak_tflops)

    model.eval()
    samples = job.dataset.items.samples if hasattr(job.dataset, "items") else job.dataset.samples
    demo = samples[0].scene_id
    chosen = [s for s in samples if s.scene_id == demo][: queries + 1]
    predictor = Dense3DPredictor(model, data, work / "scene_cache", batch_size=1)
    predictor.run(chosen[:1], progress=False)  # warm-up: scene cache, frames, first generation
    common.sync(device)
    run = predictor.run(chosen[1:] or chosen, progress=False)
    checkpoint = model.save_pretrained(work / "model")
    return {
        "preset": name,
        "device": common.device_name(device),
        "batch": size,
        "step_s": step,
        "samples_per_s": size / step,
        "infer_s_per_query": run.per_query,
        "peak_mem_mb": common.peak_memory_mb(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in trainable) / 1e6,
        "checkpoint_mb": common.folder_bytes(checkpoint) / 2**20,
        "mfu": mfu,
        "steps": len(times),
        "queries": len(run.outputs),
    }


def format_table(rows: list[dict], load: str) -> str:
    head = ["preset", "device", "batch", "step s", "samples/s", "infer s/query", "peak MB", "params M"]
    head += ["ckpt MB", "MFU"]
    cells = [head]
    for r in rows:
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
                common.mfu_cell(r.get("mfu")),
            ]
        )
    return common.aligned_table(f"dense3d bench; {load}", cells)


def main(argv: list[str] | None = None) -> int:
    queries = "timed inference queries per row (default 4)"
    return common.preset_bench_main(
        argv, __file__, __doc__, measure_row, format_table, steps=5, queries_help=queries
    )


if __name__ == "__main__":
    sys.exit(main())
