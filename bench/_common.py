"""Helpers the bench scripts share, so that every benchmark measures, repeats and prints the same way.

- the per-preset benchmarks (`bench_dense3d.py`, `bench_ross3d.py`): one subprocess per preset row (its
  peak memory is its own), timing with device syncs, GPU MFU from `FlopCounterMode`, peak memory, the
  aligned table with the load average, and the `--json` file;
- the ablations (`ross3d_ablation.py`, `dense3d_data_ablation.py`): runs grouped by arm, mean and sample
  standard deviation over seeds, and the `mean ± std` table cell.

Scripts import it as `bench._common` after putting the repository root on `sys.path`; torch is imported
only inside the functions that need it, so the ablations' `--help` stays quick.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


# --- per-preset benchmarks -----------------------------------------------------------------------------


def uptime() -> str:
    """The machine's load, printed beside the numbers (the machine is shared)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()}"


def peak_memory_mb(device: str) -> float:
    """`torch.cuda.max_memory_allocated` on a GPU, else the process's maximum RSS."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def gpu_peak_tflops(given: float | None) -> float | None:
    """The GPU's dense bf16 peak: `given`, else known by the device name, else None."""
    import torch

    if given:
        return given
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    """Seconds `fn()` takes, queued GPU work included."""
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def train_step(model, optimizer, batch, device: str) -> None:
    """Forward + backward + optimizer step, bf16 autocast on a GPU as the training loop uses."""
    import torch

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = model(batch)["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def training_mfu(
    model, optimizer, batch, device: str, step_s: float, peak_tflops: float | None
) -> float | None:
    """FLOPs of one more training step (`FlopCounterMode`) over `step_s`, as a fraction of the GPU's peak;
    None on a CPU or a GPU of unknown peak."""
    if device != "cuda":
        return None
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, optimizer, batch, device)
    peak = gpu_peak_tflops(peak_tflops)
    return counter.get_total_flops() / step_s / (peak * 1e12) if peak else None


def time_training(
    model, optimizer, warmup: list, batches: list, device: str, peak_tflops: float | None
) -> tuple[list[float], float, float | None]:
    """The untimed `warmup` steps, then one timed training step per batch: the times, their median and the
    MFU of a step on the first timed batch (None on a CPU)."""
    for batch in warmup:
        train_step(model, optimizer, batch, device)
    times = [timed(lambda b=b: train_step(model, optimizer, b, device), device) for b in batches]
    step = statistics.median(times)
    return times, step, training_mfu(model, optimizer, batches[0], device, step, peak_tflops)


def mfu_cell(mfu: float | None) -> str:
    return "-" if mfu is None else f"{100 * mfu:.1f}%"


def aligned_table(title: str, cells: list[list[str]]) -> str:
    """`title`, then the rows (the first is the header, underlined) in columns: the first two left-aligned,
    the others right-aligned."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join([title, *lines])


def generate(folder: Path) -> Path:
    """2 small generated scenes (the default `--data`)."""
    from core.synth.dataset import SynthConfig, generate_dataset

    generate_dataset(folder, 2, seed=0, config=SynthConfig(num_frames=40), progress=False)
    return folder


def preset_bench_main(
    argv: list[str] | None,
    script: str,
    doc: str | None,
    measure_row: Callable[[str, Path, int, int, float | None], dict],
    format_table: Callable[[list[dict], str], str],
    *,
    steps: int,
    queries_help: str,
) -> int:
    """The command line of the per-preset benchmark `script` (`bench/bench_<name>.py`, described by the first
    line of `doc`). Each preset row is measured by `script --row NAME` in its own process (its JSON on the
    last line of stdout); a failed row is one stderr line and exit status 1."""
    import torch

    name = Path(script).stem.removeprefix("bench_")
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: 2 generated scenes in a temp dir)")
    parser.add_argument(
        "--steps", type=int, default=steps, help=f"timed training steps per row (default {steps})"
    )
    parser.add_argument("--queries", type=int, default=4, help=queries_help)
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
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-data-") as tmp:
        data = args.data or generate(Path(tmp) / "data")
        rows = []
        for preset in presets:
            command = [sys.executable, script, "--row", preset, "--data", str(data)]
            command += ["--steps", str(args.steps), "--queries", str(args.queries)]
            command += ["--threads", str(args.threads)] if args.threads else []
            command += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
                print(f"{preset}: failed ({tail[0]})", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load = uptime()
    print(format_table(rows, load))
    if args.json:
        from core.atomic import atomic_write_json

        atomic_write_json(args.json, {"uptime": load, "rows": rows}, indent=1)
    return 0 if len(rows) == len(presets) else 1


# --- ablations over seeds ------------------------------------------------------------------------------


def runs_by_arm(results: list[dict], arms: Sequence[str]) -> dict[str, list[dict]]:
    """The runs of each arm, in the order of `arms`; an arm without runs is left out."""
    grouped = {arm: [r for r in results if r["arm"] == arm] for arm in arms}
    return {arm: runs for arm, runs in grouped.items() if runs}


def mean_std(values: list[float], single: float | None = None) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1) over seeds; `single` is the std of one value."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else single


def mean_pm_std(mean: float, std: float | None, scale: float = 1.0, widths: tuple[int, int] = (0, 0)) -> str:
    """`mean ± std`, both scaled and with 2 decimals (`–` for no std), the two numbers padded to `widths`."""
    shown = f"{mean * scale:{widths[0]}.2f}"
    return f"{shown} ± {std * scale:{widths[1]}.2f}" if std is not None else f"{shown} ± –"
