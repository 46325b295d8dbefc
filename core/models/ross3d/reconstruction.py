"""Ross3D's reconstruction losses and sampler, with the noise schedule kept apart from the denoisers.

Training (REFERENCE §5): epsilon-prediction MSE under diffusers' `DDPMScheduler` (1000 steps,
squaredcos_cap_v2). The view loss repeats every masked frame's target `view_repeats` (4) times with
independent noise and timesteps; every masked frame of a sample shares that sample's conditions (pooled
from its visible frames' hidden states). The BEV loss averages only over latent positions whose BEV cell
is not empty. `clip_sample=False`: the latents are unit-variance, not images in [-1, 1], and clipping
the predicted x0 to [-1, 1] (diffusers' default) would flatten them.

Sampling: `sample_latents` is the short loop a diffusers pipeline's `__call__` is (set timesteps, predict
noise, `scheduler.step`), with DDPM (default) or DDIM built from the training scheduler's config;
`reconstruct` decodes the result through the frozen VAE into images in [-1, 1]. The predicted x0 is
clipped to +-`clip_x0` (4 standard deviations of the unit-variance latents) at every step: under the cosine
schedule the first steps have sqrt(alpha_bar) of 0.03 or less, so x0 = (x - sqrt(1 - alpha_bar) eps) /
sqrt(alpha_bar) multiplies any error of the predicted noise by 30 or more, and an undertrained denoiser
otherwise throws the whole trajectory off (measured on the overfitting test: latent MSE 7.6 unclipped
vs 0.8 clipped with DDIM, 0.48 vs 0.14 with DDPM, 50 steps each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from core.models.errors import ModelError
from core.models.ross3d.denoiser import Denoiser, DenoiserConfig
from core.models.ross3d.targets import tokens_to_latent
from core.models.ross3d.vae import FrozenVAE


def make_scheduler(num_train_timesteps: int = 1000):
    """The training noise schedule (diffusers' DDPMScheduler, cosine, epsilon)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
    )


@dataclass
class ReconstructionConfig:
    view: DenoiserConfig = field(default_factory=DenoiserConfig)
    bev: DenoiserConfig = field(default_factory=lambda: DenoiserConfig(grid=(14, 14)))
    view_weight: float = 1.0
    bev_weight: float = 1.0
    view_repeats: int = 4
    num_train_timesteps: int = 1000


class ReconstructionHead(nn.Module):
    """The two denoisers; the Ross3D model holds this as `self.reconstruction` (see `denoiser.LR_PREFIX`)."""

    def __init__(self, config: ReconstructionConfig):
        super().__init__()
        self.config = config
        self.view = Denoiser(config.view)
        self.bev = Denoiser(config.bev)


def diffusion_loss(
    denoiser: Denoiser,
    scheduler,
    targets: torch.Tensor,
    conditions: torch.Tensor,
    mask: torch.Tensor | None = None,
    repeats: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Epsilon MSE of targets [B,T,C] under conditions [B,T,W]; mask [B,T] bool keeps positions in the mean;
    each target is repeated `repeats` times with its own noise and timestep."""
    if targets.shape[0] != conditions.shape[0]:
        raise ModelError(None, f"{targets.shape[0]} targets but {conditions.shape[0]} conditions")
    if repeats > 1:
        targets = targets.repeat_interleave(repeats, dim=0)
        conditions = conditions.repeat_interleave(repeats, dim=0)
        mask = mask.repeat_interleave(repeats, dim=0) if mask is not None else None
    device = conditions.device
    targets = targets.to(device, torch.float32)
    n = targets.shape[0]
    noise = torch.randn(targets.shape, generator=generator, device=device)
    timesteps = torch.randint(
        0, scheduler.config.num_train_timesteps, (n,), generator=generator, device=device
    )
    noisy = scheduler.add_noise(targets, noise, timesteps)
    error = ((denoiser(noisy, timesteps, conditions).float() - noise) ** 2).mean(dim=-1)  # [B,T]
    if mask is None:
        return error.mean()
    mask = mask.to(device=device, dtype=error.dtype)
    return (error * mask).sum() / mask.sum().clamp(min=1.0)


def view_loss(
    denoiser: Denoiser,
    scheduler,
    targets: torch.Tensor,
    hidden: torch.Tensor,
    visible: torch.Tensor,
    sample_index: torch.Tensor,
    repeats: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Masked-view loss: targets [M,T,C] of M masked frames, hidden states [B,N,D] with visible [B,N] bool
    (the visible frames' visual tokens), and sample_index [M] (which sample each masked frame came from)."""
    conditions = denoiser.condition(hidden, visible)[sample_index.to(hidden.device)]
    return diffusion_loss(denoiser, scheduler, targets, conditions, repeats=repeats, generator=generator)


def bev_loss(
    denoiser: Denoiser,
    scheduler,
    targets: torch.Tensor,
    mask: torch.Tensor,
    hidden: torch.Tensor,
    visible: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """BEV loss: targets [B,T,C], mask [B,T] (non-empty cells), hidden [B,N,D], visible [B,N]."""
    conditions = denoiser.condition(hidden, visible)
    return diffusion_loss(denoiser, scheduler, targets, conditions, mask=mask, generator=generator)


def sampling_scheduler(train_scheduler, kind: str = "ddpm", clip_x0: float | None = 4.0):
    """A fresh DDPM or DDIM scheduler with the training schedule's config (steps set per call), clipping
    the predicted x0 to +-clip_x0 (None: no clipping)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    if kind not in ("ddim", "ddpm"):
        raise ModelError(None, f"sampler must be 'ddim' or 'ddpm', got {kind!r}")
    cls = DDIMScheduler if kind == "ddim" else DDPMScheduler
    clip = {"clip_sample": clip_x0 is not None, "clip_sample_range": float(clip_x0 or 1.0)}
    return cls.from_config(train_scheduler.config, **clip)


@torch.no_grad()
def sample_latents(
    denoiser: Denoiser,
    scheduler,
    conditions: torch.Tensor,
    steps: int = 50,
    kind: str = "ddpm",
    generator: torch.Generator | None = None,
    clip_x0: float | None = 4.0,
) -> torch.Tensor:
    """Conditions [B,T,W] -> sampled latent tokens [B,T,C] (starting from Gaussian noise)."""
    sched = sampling_scheduler(scheduler, kind, clip_x0)
    sched.set_timesteps(steps, device=conditions.device)
    cfg = denoiser.config
    shape = (conditions.shape[0], cfg.num_positions, cfg.in_channels)
    x = torch.randn(shape, generator=generator, device=conditions.device) * sched.init_noise_sigma
    for t in sched.timesteps:
        eps = denoiser(x, t, conditions).float()
        x = sched.step(eps, t, x, generator=generator).prev_sample
    return x


@dataclass
class Reconstruction:
    latents: torch.Tensor  # [B,T,C] sampled tokens
    images: torch.Tensor  # [B,3,H,W] in [-1, 1]


@torch.no_grad()
def reconstruct(
    denoiser: Denoiser,
    scheduler,
    conditions: torch.Tensor,
    vae: FrozenVAE,
    steps: int = 50,
    kind: str = "ddpm",
    generator: torch.Generator | None = None,
    clip_x0: float | None = 4.0,
) -> Reconstruction:
    """Sample latents for conditions [B,T,W] and decode them: tokens -> 2x2 folded latents -> VAE."""
    latents = sample_latents(denoiser, scheduler, conditions, steps, kind, generator, clip_x0)
    images = vae.decode(tokens_to_latent(latents, denoiser.config.grid))
    return Reconstruction(latents, images)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images [N,3,H,W] in [-1, 1] (peak-to-peak 2), over the `mask` [N,H,W] pixels when given
    (the BEV's non-empty pixels for the reconstruction score)."""
    err = (a.float() - b.float().to(a.device)) ** 2
    if mask is not None:
        keep = mask.to(a.device, torch.bool)[:, None].expand_as(err)
        if not keep.any():
            raise ModelError(None, "psnr: the mask keeps no pixel")
        err = err[keep]
    mse = float(err.mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)
