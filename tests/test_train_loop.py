"""The shared training loop on a small real regression problem: it learns, logs, checkpoints, and a resumed
run ends with exactly the weights of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from line_model import Line
from safetensors.torch import load_file, save_file

from core.models.errors import ModelError
from core.train.config import TrainConfig
from core.train.loop import EpochSampler, TrainJob, latest_checkpoint, train
from core.train.schedule import warmup_cosine


class Regressor(torch.nn.Module):
    """y = W x + b with dropout, so RNG state matters for exact resume."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))

    def forward(self, batch):
        pred = self.net(batch["x"]).squeeze(-1)
        loss = torch.nn.functional.mse_loss(pred, batch["y"])
        return {"loss": loss, "loss_mse": loss.detach()}

    def save_pretrained(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(folder / "model.safetensors"))


def _data(n=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def _collate(items):
    return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items])}


def _job(out, steps, **kw):
    torch.manual_seed(0)
    config = TrainConfig(
        steps=steps, batch_size=8, lr=3e-2, warmup_steps=2, checkpoint_every=5, log_every=1, **kw
    )
    return TrainJob(
        Regressor(),
        _data(),
        _collate,
        config,
        out,
        recipe={"data": "synthetic regression"},
        training_set=[{"index": i} for i in range(64)],
    )


def test_training_learns_logs_and_saves(tmp_path):
    final = train(_job(tmp_path, steps=40))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert rows[-1]["loss"] < 0.2 * rows[0]["loss"]
    assert {"lr", "samples_per_s", "loss_mse", "epoch"} <= set(rows[0])
    assert rows[-1]["epoch"] >= 4  # 64 samples / batch 8 = 8 steps per epoch
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    recipe = json.loads((final / "training.json").read_text())
    assert recipe["data"] == "synthetic regression" and recipe["steps_done"] == 40 and recipe["git_commit"]
    assert len(list((tmp_path / "checkpoints").glob("step-*"))) == 2  # keep_checkpoints
    assert len((final / "training_set.jsonl").read_text().splitlines()) == 64


def test_resume_equals_uninterrupted(tmp_path):
    whole = train(_job(tmp_path / "whole", steps=20))
    assert train(_job(tmp_path / "split", steps=20), stop_after=13) is None  # a job slot that ended at 13
    assert latest_checkpoint(tmp_path / "split").name == "step-0000013"
    resumed = train(_job(tmp_path / "split", steps=20), resume=True)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 21))  # no step logged twice


def test_resume_without_checkpoint_and_bad_config_are_clear(tmp_path):
    with pytest.raises(ModelError, match="no checkpoint"):
        train(_job(tmp_path, steps=3), resume=True)
    with pytest.raises(ModelError, match="unknown key"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ModelError, match="grad_accum"):
        TrainConfig(grad_accum=0)


def test_schedule_warms_up_then_decays_to_the_floor():
    f = warmup_cosine(TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1))
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.55, abs=1e-6)
    assert f(100) == pytest.approx(0.1)


def test_grouped_order_keeps_each_group_together_and_is_a_permutation():
    from core.train.loop import EpochSampler

    groups = ["a", "b", "c", "a", "b", "c", "a", "c", "c"]
    sampler = EpochSampler(len(groups), seed=4, groups=groups)
    order = list(sampler)
    assert sorted(order) == list(range(len(groups)))
    runs = [groups[i] for i in order]
    assert sum(1 for x, y in zip(runs, runs[1:]) if x != y) == 2  # three groups, two boundaries
    assert list(EpochSampler(len(groups), seed=4, groups=groups)) == order  # seeded
    sampler.epoch = 1
    assert list(sampler) != order  # a new epoch, a new order


def test_batches_of_one_group_are_shuffled_across_groups():
    """With a batch size, every full batch holds one group, consecutive batches change group (not a run of
    one room after another), leftovers come last, and the order is seeded and a permutation."""
    from core.train.loop import EpochSampler

    groups = ["a"] * 9 + ["b"] * 8 + ["c"] * 7 + ["d"] * 8
    sampler = EpochSampler(len(groups), seed=1, groups=groups, batch_size=4)
    order = list(sampler)
    assert sorted(order) == list(range(len(groups)))
    batches = [[groups[i] for i in order[k : k + 4]] for k in range(0, len(order), 4)]
    full = batches[:7]  # 2 + 2 + 1 + 2 full batches; the 4 leftovers (1 a, 3 c) make the last one
    assert all(len(set(b)) == 1 for b in full)
    assert sorted(b[0] for b in full) == ["a", "a", "b", "b", "c", "d", "d"]
    assert sorted(batches[7]) == ["a", "c", "c", "c"]
    assert [b[0] for b in full] != sorted(b[0] for b in full)  # not group after group
    assert list(EpochSampler(len(groups), seed=1, groups=groups, batch_size=4)) == order
    sampler.epoch = 1
    assert list(sampler) != order


def test_groups_of_exactly_one_batch_keep_their_order():
    """Ross3D's task chunks (groups of exactly `batch_size`) come out as they did before batch shuffling."""
    from core.train.loop import EpochSampler

    groups = [k // 3 for k in range(18)]
    with_size = EpochSampler(len(groups), seed=2, groups=groups, batch_size=3)
    assert list(with_size) == list(EpochSampler(len(groups), seed=2, groups=groups))


def test_grouped_order_does_not_depend_on_how_a_step_batch_is_split(tmp_path):
    """Groups are cut at the optimizer step's batch (batch_size x processes x grad_accum): one process taking
    4 samples and one accumulating 2 x 2 see the same samples per step, so they end at the same weights (a
    cut at the per-process batch mixed the batches differently and moved the weights by about the lr)."""

    def run(out, batch_size, grad_accum):
        torch.manual_seed(0)
        config = TrainConfig(
            steps=6, batch_size=batch_size, grad_accum=grad_accum, lr=3e-2, warmup_steps=0, log_every=1
        )
        groups = [i % 3 for i in range(24)]  # 3 rooms of 8 queries: 2 step batches each
        job = TrainJob(Line(4), _data(24), _collate, config, out, groups=groups)
        return load_file(str(train(job) / "model.safetensors"))

    whole, accumulated = run(tmp_path / "whole", 4, 1), run(tmp_path / "accumulated", 2, 2)
    for key in whole:
        torch.testing.assert_close(whole[key], accumulated[key], rtol=0, atol=1e-6)
    per_process_cut = EpochSampler(24, seed=0, groups=[i % 3 for i in range(24)], batch_size=2)
    assert list(per_process_cut) != list(
        EpochSampler(24, seed=0, groups=[i % 3 for i in range(24)], batch_size=4)
    )
