"""Learning-rate schedule and optimizer groups shared by every model."""

from __future__ import annotations

import math

import torch

from core.train.config import TrainConfig


def warmup_cosine(config: TrainConfig):
    """Linear warmup to 1, then a cosine down to `min_lr_ratio` at `steps` (a LambdaLR factor)."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _multiplier(name: str, multipliers: dict[str, float]) -> float:
    """The factor of the longest prefix of `name` in `multipliers` (1.0 when none matches)."""
    best = ""
    for prefix in multipliers:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return multipliers[best] if best else 1.0


def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters grouped by learning rate, with weight decay on matrices only (not on biases,
    norms or embeddings of one dimension), so a backbone can learn slower and a denoiser faster."""
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (_multiplier(name, config.lr_multipliers), param.ndim >= 2)
        groups.setdefault(key, []).append(param)
    return [
        {"params": params, "lr": config.lr * mult, "weight_decay": config.weight_decay if decay else 0.0}
        for (mult, decay), params in sorted(groups.items())
    ]
