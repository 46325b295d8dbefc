"""The training loop every model uses: read top to bottom, one optimizer step per pass.

A model is any `nn.Module` whose `forward(batch)` returns a dict with a scalar `loss` (and, optionally,
more scalar terms to log) and that has `save_pretrained(dir)`. accelerate places it on the CPU, one GPU or
many processes (`accelerate launch`), handles bf16 and gradient accumulation, and saves the whole state
(model, optimizer, scheduler, RNG) so that `--resume` continues exactly where a run stopped.

Several processes: each gets whole batches in turn (global batch = batch_size x processes x grad_accum);
DDP averages gradients; BatchNorm keeps per-process statistics (no SyncBatchNorm: it refuses CPU tensors,
and a scene already gives it thousands of voxels); only the main process writes metrics, curves and the
model. tests/test_dense3d_distributed.py checks two gloo processes against one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from core.atomic import atomic_write_json, atomic_write_text
from core.models.errors import ModelError
from core.train.config import TrainConfig
from core.train.curves import append_metrics, plot_curves, truncate_metrics
from core.train.schedule import parameter_groups, warmup_cosine

STATE_FILE = "trainer_state.json"


class EpochSampler(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch): the data order is a function of the position in
    training, so a resumed run sees the same samples an uninterrupted one would. With `groups` (e.g. each
    sample's scene), a batch holds one group: queries about one room share its U-Net pass. With
    `batch_size` too, each group's members (shuffled) are cut into batches and the batches of all groups
    are shuffled together, so consecutive steps see different groups; the members left over when a group
    does not fill its last batch are pooled into mixed batches at the end of the epoch. (Without it the
    order is group after group: a dozen steps in a row on one room, each step's gradient about that room's
    objects only.) `batch_size` is the samples of one optimizer step over all processes and accumulation
    micro-batches: then the order, and so the training, is the same whether two processes take one sample
    each, one process takes two, or one process accumulates two batches of one (accelerate deals the
    per-process batches round-robin out of consecutive positions). The loop sets `epoch` and `skip`
    itself; there is deliberately no `set_epoch`, which accelerate's loader would call with its own
    iteration count."""

    def __init__(self, size: int, seed: int, groups: list | None = None, batch_size: int | None = None):
        self.size, self.seed, self.epoch = size, seed, 0
        self.groups, self.batch_size = groups, batch_size
        self.skip = 0  # samples of this epoch already seen before a resume (read once, when an epoch starts)

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.groups is None:
            return order
        members: dict = {}
        for index in order:  # members in shuffled order, groups in order of first appearance (shuffled)
            members.setdefault(self.groups[index], []).append(index)
        if not self.batch_size:
            return [index for group in members.values() for index in group]
        size, batches, rest = self.batch_size, [], []
        for group in members.values():
            full = len(group) - len(group) % size
            batches += [group[i : i + size] for i in range(0, full, size)]
            rest += group[full:]
        if len(batches) > len(members):  # some group fills several batches: mix them across groups
            batches = [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]
        # (groups of one batch each, as Ross3D's task chunks, are already in a random order: kept as before)
        return [index for batch in batches for index in batch] + rest

    def __iter__(self):
        order = self.order()[self.skip :]
        self.skip = 0
        return iter(order)

    def __len__(self) -> int:
        return self.size


@dataclass
class TrainJob:
    model: torch.nn.Module
    dataset: Dataset
    collate: Callable[[list], Any]
    config: TrainConfig
    out: Path
    recipe: dict[str, Any] = field(default_factory=dict)  # what was trained on, and how: saved with the model
    training_set: list[dict[str, Any]] | None = None  # the samples (with provenance), saved with the model
    groups: list | None = None  # per sample, a key to batch together (EpochSampler)


def git_commit(repo: Path | None = None) -> str:
    """The checkout's commit (with "+dirty" when files differ), or "unknown" outside a git checkout."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _precision(requested: str) -> str:
    if requested != "auto":
        return requested
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints under `out`, oldest first (a `step-N.tmp` left by a killed save is not one)."""
    return sorted(p for p in (out / "checkpoints").glob("step-*") if p.name[len("step-") :].isdigit())


def latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def _save_checkpoint(accelerator, out: Path, state: dict, keep: int) -> None:
    """accelerate's full state into a temporary folder, renamed into place when complete: a run killed
    mid-save leaves the previous checkpoint as the latest one."""
    final = out / "checkpoints" / f"step-{state['step']:07d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, state, indent=2)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in checkpoints(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def train(
    job: TrainJob, resume: bool = False, stop_after: int | None = None, accelerator=None
) -> Path | None:
    """Run `job` to `config.steps` optimizer steps; return the folder of the saved model (`out/model`).

    `stop_after` ends the run at that step with a checkpoint (a time-limited job slot on a cluster);
    `--resume` continues it later on the same schedule. It returns None then: no model is final yet.
    """
    from accelerate import Accelerator

    config, out = job.config, Path(job.out)
    if len(job.dataset) == 0:
        raise ModelError(None, "the training set is empty: check --data and the split")
    accelerator = accelerator or Accelerator(
        mixed_precision=_precision(config.mixed_precision), gradient_accumulation_steps=config.grad_accum
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)

    # groups are cut at the optimizer step's global batch, so its order does not depend on how the batch is
    # split over processes and accumulation steps
    step_batch = config.batch_size * accelerator.num_processes * config.grad_accum
    sampler = EpochSampler(len(job.dataset), config.seed, job.groups, step_batch)
    # the loader draws its workers' base seed from its own generator, not the global one: otherwise opening
    # an epoch's iterator at a different moment after a resume would shift every later dropout mask.
    # accelerate deals whole batches round-robin to the processes; with drop_last it drops an incomplete
    # round, so drop only when there is at least one full round (else every process would get nothing and
    # the loop would spin through empty epochs); without it the last round is filled from the epoch's start
    loader = DataLoader(
        job.dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=job.collate,
        num_workers=config.num_workers,
        drop_last=len(job.dataset) >= config.batch_size * accelerator.num_processes,
        generator=torch.Generator().manual_seed(config.seed),
    )
    optimizer = torch.optim.AdamW(parameter_groups(job.model, config), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(config))
    # the schedule counts optimizer steps whatever the number of processes, so it is stepped here by hand
    # (accelerate's wrapper would step it once per process) and registered to be saved with the state
    model, optimizer, loader = accelerator.prepare(job.model, optimizer, loader)
    accelerator.register_for_checkpointing(scheduler)

    # samples_in_epoch counts all processes' samples, so a run may resume on another number of processes
    state = {"step": 0, "epoch": 0, "samples_in_epoch": 0}
    metrics = out / "metrics.jsonl"
    if resume:
        checkpoint = latest_checkpoint(out)
        if checkpoint is None:
            raise ModelError(out, "--resume: no checkpoint under checkpoints/ (start without --resume)")
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        if "batches_in_epoch" in state:  # a checkpoint written before samples_in_epoch (one process)
            state["samples_in_epoch"] = state.pop("batches_in_epoch") * config.batch_size
        if accelerator.is_main_process:
            truncate_metrics(metrics, state["step"])
    elif accelerator.is_main_process and metrics.exists():
        metrics.unlink()  # a fresh run in an old folder starts a fresh curve

    bar = tqdm(
        total=config.steps,
        initial=state["step"],
        disable=not accelerator.is_local_main_process,
        desc="train",
        dynamic_ncols=True,
    )
    window: dict[str, list[float]] = {}
    samples, started = 0, time.perf_counter()
    model.train()
    stopping = False
    while state["step"] < config.steps and not stopping:
        sampler.epoch = state["epoch"]
        sampler.skip = state["samples_in_epoch"]  # what this epoch fed the model before a resume
        for batch in loader:
            with accelerator.accumulate(model):
                outputs = model(batch)
                loss = outputs["loss"]
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state["samples_in_epoch"] += config.batch_size * accelerator.num_processes
            samples += config.batch_size * accelerator.num_processes
            for name, value in outputs.items():  # every scalar the model reports is logged
                if torch.is_tensor(value) and value.dim() == 0:
                    window.setdefault(name, []).append(
                        float(accelerator.reduce(value.detach().float(), "mean"))
                    )
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            bar.update(1)
            if state["step"] % config.log_every == 0 or state["step"] == config.steps:
                elapsed = max(time.perf_counter() - started, 1e-9)
                row = {
                    "step": state["step"],
                    "epoch": state["epoch"],
                    "lr": max(scheduler.get_last_lr()),
                    "samples_per_s": samples / elapsed,
                    **{name: sum(v) / len(v) for name, v in window.items()},
                }
                bar.set_postfix(
                    loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", sps=f"{row['samples_per_s']:.1f}"
                )
                if accelerator.is_main_process:
                    append_metrics(metrics, row)
                window, samples, started = {}, 0, time.perf_counter()
            stopping = stop_after is not None and state["step"] >= stop_after
            if state["step"] % config.checkpoint_every == 0 or state["step"] == config.steps or stopping:
                _save_checkpoint(accelerator, out, state, config.keep_checkpoints)
                if accelerator.is_main_process:
                    plot_curves(metrics, out / "loss_curve.png")
            if state["step"] >= config.steps or stopping:
                break
        else:  # the epoch ran out before the step budget: next epoch, next permutation
            if state["samples_in_epoch"] == 0:  # never loop forever over epochs that feed nothing
                raise ModelError(None, f"epoch {state['epoch']} gave this process no batch")
            state["epoch"] += 1
            state["samples_in_epoch"] = 0
    bar.close()
    if state["step"] < config.steps:
        return None

    final = out / "model"
    if accelerator.is_main_process:
        recipe = {
            **job.recipe,
            "train": config.to_dict(),
            "steps_done": state["step"],
            "git_commit": git_commit(),
            "processes": accelerator.num_processes,
        }
        trained = accelerator.unwrap_model(model)
        if hasattr(getattr(trained, "config", None), "recipe"):
            trained.config.recipe = recipe  # the checkpoint's own config says how it was made
        trained.save_pretrained(final)
        atomic_write_json(final / "training.json", recipe, indent=2)
        if job.training_set is not None:  # what the model saw, one sample per line, with provenance
            atomic_write_text(
                final / "training_set.jsonl", "".join(json.dumps(r) + "\n" for r in job.training_set)
            )
    accelerator.wait_for_everyone()
    return final


def pretrain_stage(stage: Path, make_job: Callable[[], TrainJob], resume: bool) -> Path:
    """A model's first stage (Dense3D's U-Net, Ross3D's vision tower) trained into `stage/model` unless it is
    already there; `resume` continues an interrupted one. Returns the stage's model folder."""
    model = stage / "model"
    if not (model / "config.json").is_file():
        train(make_job(), resume=resume and latest_checkpoint(stage) is not None)
    return model
