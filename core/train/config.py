"""The optimisation half of a training run: steps, batch, learning rates, schedule, checkpoints, precision.

A preset file holds three parts: `model` (the model's own config), `data` (what to train on) and `train`
(this dataclass). Keeping the loop's knobs in one typed place lets every model share `core.train.loop`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.models.errors import ModelError


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps (after gradient accumulation)
    batch_size: int = 2  # per process and micro-batch
    grad_accum: int = 1
    lr: float = 1e-4
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.05
    grad_clip: float = 1.0  # 0 disables clipping
    lr_multipliers: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr factor
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that has it, fp32 on CPU; or "no" / "bf16" / "fp16"
    num_workers: int = 0

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
            "warmup_steps": self.warmup_steps >= 0,
            "checkpoint_every": self.checkpoint_every >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "log_every": self.log_every >= 1,
            "mixed_precision": self.mixed_precision in ("auto", "no", "bf16", "fp16"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ModelError(
                None,
                f"train config: invalid value for {', '.join(bad)}: "
                + ", ".join(f"{b}={getattr(self, b)!r}" for b in bad),
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "train config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(
                None, f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
