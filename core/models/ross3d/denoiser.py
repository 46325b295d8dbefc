"""Ross3D's denoiser: a small DiT with adaLN-Zero, conditioned per latent position on the LLM's states.

    hidden states of the visible frames' visual tokens [B,N,D_llm]
        -> LayerNorm (no affine) -> attention pooling with T learned queries -> conditions [B,T,W]
    noisy latent tokens [B,T,C] -> Linear + fixed 2D sin-cos position embedding
        -> depth x DiT block (adaLN-Zero, modulation from condition + timestep embedding, per position)
        -> final adaLN layer -> predicted noise [B,T,C]

T is the number of latent positions (the token grid `grid`, after the 2x2 unfolding of `targets`), so a
view denoiser and a BEV denoiser differ only in their config. `condition()` is split from `forward()`
so a sampler pools once and reuses the conditions for every step.

Initialisation follows DiT's `initialize_weights` (which Ross3D's release comments out because it loads a
2D-pretrained denoiser; here nothing is pretrained): Xavier-uniform linears with zero biases, normal(0.02)
timestep MLP and queries, fixed sin-cos position embeddings, and zero-initialised adaLN modulation and
final projection, so an untrained denoiser predicts exactly zero noise and every block starts as the
identity.

Save / load: the project's `PretrainedMixin` rather than diffusers' `ModelMixin`. The denoiser lives
inside the Ross3D model and is saved in its one state dict; a dataclass config nests in `Ross3DConfig`
through the same `config_from_dict`; errors are the project's `ModelError` naming the file; and the
module needs no diffusers import (a GPU machine may lack diffusers). The diffusers habits are kept: the
config is held by the model (`self.config`), `save_pretrained` writes config.json + safetensors, and the
noise schedule lives apart from the model (`reconstruction.make_scheduler`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.models.common.pretrained import PretrainedMixin
from core.models.errors import ModelError

# Parameter-name prefix of the reconstruction head inside the Ross3D model (`model.reconstruction`):
# `TrainConfig.lr_multipliers = {LR_PREFIX: 10.0}` gives the from-scratch denoisers ~10x the LLM's lr.
LR_PREFIX = "reconstruction."


@dataclass
class DenoiserConfig:
    in_channels: int = 32  # latent channels after the 2x2 unfolding (4 x the VAE's latent channels)
    grid: tuple[int, int] = (7, 7)  # latent positions (rows, cols): T = rows * cols learned queries
    cond_dim: int = 256  # width of the LLM hidden states it is conditioned on
    width: int = 256
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 4.0
    pool_heads: int = 4
    frequency_dim: int = 256  # sinusoidal timestep features before the timestep MLP

    def __post_init__(self) -> None:
        problems = []
        if self.width % self.heads or self.width % self.pool_heads:
            problems.append(f"width {self.width} not divisible by heads {self.heads} / {self.pool_heads}")
        if self.width % 4:
            problems.append(f"width {self.width} must be a multiple of 4 (2D sin-cos embedding)")
        if min(self.grid) < 1 or self.in_channels < 1 or self.depth < 1:
            problems.append(f"grid {self.grid}, in_channels {self.in_channels}, depth {self.depth}")
        if problems:
            raise ModelError(None, f"denoiser config: {'; '.join(problems)}")

    @property
    def num_positions(self) -> int:
        return self.grid[0] * self.grid[1]


def sincos_2d(width: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding [rows*cols, width], row-major (half the width per axis)."""
    rows, cols = grid
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.to(torch.float64)[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.cat([axis(yy.reshape(-1)), axis(xx.reshape(-1))], dim=1).to(torch.float32)


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [B,dim] of (possibly fractional) timesteps [B]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AttentionPool(nn.Module):
    """Hidden states [B,N,D] (+ valid mask [B,N]) -> one condition per latent position [B,T,W]."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.cond_dim, elementwise_affine=False, eps=1e-6)
        self.queries = nn.Parameter(torch.zeros(config.num_positions, config.width))
        self.attn = nn.MultiheadAttention(
            config.width, config.pool_heads, kdim=config.cond_dim, vdim=config.cond_dim, batch_first=True
        )

    def forward(self, hidden: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        kv = self.norm(hidden)
        queries = self.queries.to(kv.dtype).expand(hidden.shape[0], -1, -1)
        pad = None if valid is None else ~valid.to(device=hidden.device, dtype=torch.bool)
        if pad is not None and bool(pad.all(dim=1).any()):
            raise ModelError(None, "denoiser: a sample has no visible hidden states to condition on")
        out, _ = self.attn(queries, kv, kv, key_padding_mask=pad, need_weights=False)
        return out


class DiTBlock(nn.Module):
    """Self-attention + MLP, each with adaLN-Zero (shift, scale, gate) from the per-position condition."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, w))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate1 * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, out_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class Denoiser(nn.Module, PretrainedMixin):
    """Predicts the noise of latent tokens; see the module docstring."""

    config_class = DenoiserConfig

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.pool = AttentionPool(config)
        self.x_embed = nn.Linear(config.in_channels, w)
        self.t_embed = nn.Sequential(nn.Linear(config.frequency_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.register_buffer("pos_embed", sincos_2d(w, config.grid)[None], persistent=False)
        self.blocks = nn.ModuleList(DiTBlock(w, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.final = FinalLayer(w, config.in_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # nn.MultiheadAttention keeps its input projection as raw parameters, not an nn.Linear.
        attn = self.pool.attn
        for weight in (attn.q_proj_weight, attn.k_proj_weight, attn.v_proj_weight, attn.in_proj_weight):
            if weight is not None:
                nn.init.xavier_uniform_(weight)
        nn.init.zeros_(attn.in_proj_bias)
        nn.init.normal_(self.pool.queries, std=0.02)
        for layer in (self.t_embed[0], self.t_embed[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in [*self.blocks, self.final]:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def condition(self, hidden: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Visible hidden states [B,N,cond_dim] (valid [B,N] bool) -> per-position conditions [B,T,width]."""
        if hidden.ndim != 3 or hidden.shape[-1] != self.config.cond_dim:
            raise ModelError(
                None,
                f"denoiser: hidden states must be [B,N,{self.config.cond_dim}], got {tuple(hidden.shape)}",
            )
        return self.pool(hidden.to(self.x_embed.weight.dtype), valid)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Noisy tokens [B,T,C], timesteps [B] (or a scalar), conditions [B,T,W] -> noise [B,T,C]."""
        b, t, c = x.shape
        if (t, c) != (self.config.num_positions, self.config.in_channels):
            raise ModelError(
                None,
                f"denoiser: latents [B,{t},{c}] do not match the config's "
                f"[B,{self.config.num_positions},{self.config.in_channels}] (grid {self.config.grid})",
            )
        dtype = self.x_embed.weight.dtype
        timesteps = torch.as_tensor(timesteps, device=x.device).reshape(-1).expand(b)
        temb = self.t_embed(timestep_features(timesteps, self.config.frequency_dim).to(dtype))
        cond = conditions.to(dtype) + temb[:, None, :]
        h = self.x_embed(x.to(dtype)) + self.pos_embed.to(dtype)
        for block in self.blocks:
            h = block(h, cond)
        return self.final(h, cond)
