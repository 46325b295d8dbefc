"""Dense3D trained by two processes for real: `accelerate launch --multi_gpu --num_processes 2` on the CPU
(gloo), through `python -m core train dense3d`, against one process with the same global batch.

How the CPU launch works (accelerate 1.15): `accelerate launch --cpu --num_processes 2` starts ONE process
(its simple launcher expects mpirun for several CPU processes). `--multi_gpu` starts torchrun's two
processes, and with `ACCELERATE_USE_CPU=true` and no visible CUDA device each process joins a
`MULTI_CPU` group on the gloo backend.

Why the two runs may be compared tightly here: DDP averages the two processes' gradients, which equals the
gradient of the mean loss over the 2-item batch *except* where items interact inside the model. In Dense3D
they interact in the U-Net's BatchNorm (per-process batch statistics vs statistics over both scenes) and
in the LM loss (a token mean over the batch vs per-process token means). Plain BatchNorm is kept under DDP
on purpose (the SPFormer family does the same; a scene gives the BN tens of thousands of voxels; torch's
SyncBatchNorm refuses CPU tensors). The generated train split holds one scene and every answer has the
same length, so here both interactions vanish and the runs agree up to float summation order (seen: 4e-5):
the tolerance is 5e-4 on weights after 2 + 4 Adam steps, where a missed all-reduce or a wrong data order
moves weights by about the learning rate (3e-3 .. 1e-2). With different scenes per process the same
comparison differed by up to 0.04 (stage-1 lr 1e-2): expected DDP semantics, not a bug.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dense3d_tiny import TINY
from line_model import Line
from safetensors.torch import load_file

from core.train import dense3d as task
from core.train.config import TrainConfig
from core.train.loop import TrainJob, latest_checkpoint, train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_FILES = {
    "model.safetensors",
    "optimizer.bin",
    "custom_checkpoint_0.pkl",  # the LR scheduler
    "random_states_0.pkl",
    "random_states_1.pkl",
    "trainer_state.json",
}


def _preset(batch_size: int, grad_accum: int = 1) -> dict:
    common = {
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "log_every": 1,
        "mixed_precision": "no",
        "seed": 3,
    }
    return {
        "model": TINY,
        # ScanRefer only: every answer is "It is [SEG]." (same length), so the LM loss averaged per process
        # and then over processes equals the average over the whole batch
        "data": {"split": "train", "max_samples": 8, "sources": ["scanrefer"]},
        "pretrain": {"steps": 2, "lr": 0.01, "warmup_steps": 0, **common},
        "train": {
            "steps": 4,
            "lr": 0.003,
            "warmup_steps": 1,
            "checkpoint_every": 2,
            "keep_checkpoints": 4,
            **common,
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(preset: Path, data: Path, out: Path, *extra: str) -> str:
    """`python -m core train dense3d` in two gloo processes; returns the output (fails with it)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           "-m", "core", "train", "dense3d", "--config", str(preset), "--data", str(data), "--out", str(out),
           *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def _steps(metrics: Path) -> list[int]:
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines()]


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_match_one_process_and_resume(synth_root, tmp_path):
    two_preset = tmp_path / "two.json"
    two_preset.write_text(json.dumps(_preset(batch_size=1)))
    one = task.run(
        {**_preset(batch_size=2), "source": "test"}, synth_root, tmp_path / "one", None, False, None
    )

    whole = tmp_path / "whole"
    assert "model written to" in _launch_two(two_preset, synth_root, whole)
    split = tmp_path / "split"
    assert "stopped at step 2" in _launch_two(two_preset, synth_root, split, "--stop-after", "2")
    assert not (split / "model").exists() and latest_checkpoint(split).name == "step-0000002"
    state = json.loads((split / "checkpoints/step-0000002/trainer_state.json").read_text())
    assert state == {"step": 2, "epoch": 0, "samples_in_epoch": 4}  # 2 steps x 1 sample x 2 processes
    # a cluster job may come back with fewer processes: the same global batch from one process and
    # gradient accumulation continues at the first unseen sample (the state counts samples, not batches)
    shutil.copytree(split, tmp_path / "fewer")
    _launch_two(two_preset, synth_root, split, "--resume")
    one_process_rest = {**_preset(batch_size=1, grad_accum=2), "source": "test"}
    fewer = task.run(one_process_rest, synth_root, tmp_path / "fewer", None, True, None)

    # both stages ran in both processes; the main process alone logged, once per step, across the resume
    for run in (whole, split):
        assert _steps(run / "backbone" / "metrics.jsonl") == [1, 2]
        assert _steps(run / "metrics.jsonl") == [1, 2, 3, 4]
        saved = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert saved == ["step-0000002", "step-0000004"]
        for checkpoint in saved:
            assert {p.name for p in (run / "checkpoints" / checkpoint).iterdir()} == CHECKPOINT_FILES
        recipe = json.loads((run / "model" / "training.json").read_text())
        assert recipe["processes"] == 2 and recipe["steps_done"] == 4

    a, b = (
        load_file(str(whole / "model/model.safetensors")),
        load_file(str(split / "model/model.safetensors")),
    )
    assert a.keys() == b.keys()
    for key in a:  # exact resume under two processes: order of data, RNG of each process, optimizer
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)

    reference = load_file(str(one / "model.safetensors"))
    assert reference.keys() == a.keys()
    c = load_file(str(fewer / "model.safetensors"))
    # see the module docstring for the tolerance; Adam's normalised steps turn float-rounding differences of
    # near-zero gradients into weight differences up to about a third of the lr (seen: 9e-4 at lr 3e-3), so
    # the per-step losses below (rel 1e-4) are what catches a wrong data order
    for key in a:
        torch.testing.assert_close(a[key], reference[key], rtol=1e-3, atol=1.5e-3, msg=key)
        if "running_" not in key and "num_batches_tracked" not in key:  # BN ran twice per step there
            torch.testing.assert_close(c[key], reference[key], rtol=1e-3, atol=1.5e-3, msg=key)
    assert _losses(whole) == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    # the tolerance is far below what training moved: the U-Net left its stage-1 weights by much more
    start = load_file(str(tmp_path / "one" / "backbone" / "model" / "model.safetensors"))
    moved = max((reference[k] - start[k]).abs().max().item() for k in start if k in reference)
    assert moved > 20 * 5e-4


def _line_job(out: Path) -> TrainJob:
    torch.manual_seed(0)
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(2))
    data = [{"x": x[i], "y": x[i].sum()} for i in range(12)]

    def collate(items):
        return {k: torch.stack([i[k] for i in items]) for k in ("x", "y")}

    config = TrainConfig(steps=6, batch_size=4, lr=0.05, warmup_steps=0, checkpoint_every=2, log_every=1)
    return TrainJob(Line(), data, collate, config, out)


def test_a_save_killed_midway_is_not_resumed_from(tmp_path):
    """A run killed while saving step 4 leaves `step-0000004.tmp`; --resume must take step 2, not it."""
    whole = train(_line_job(tmp_path / "whole"))
    out = tmp_path / "split"
    assert train(_line_job(out), stop_after=2) is None
    partial = out / "checkpoints" / "step-0000004.tmp"
    partial.mkdir()
    (partial / "optimizer.bin").write_bytes(b"\0" * 10)  # what a kill during save_state leaves
    assert latest_checkpoint(out).name == "step-0000002"
    resumed = train(_line_job(out), resume=True)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004", "step-0000006"]
