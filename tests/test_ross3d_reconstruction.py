"""Ross3D's reconstruction half: VAE targets on the token grid, the BEV loss mask, the DiT denoiser's
init, save/load and learning rate, an overfitting run through the sampler, and the shipped VAE."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.models.common.vision import VisionConfig, VisionEncoder, preprocess_images
from core.models.errors import ModelError
from core.models.ross3d.denoiser import LR_PREFIX, Denoiser, DenoiserConfig
from core.models.ross3d.reconstruction import (
    ReconstructionConfig,
    ReconstructionHead,
    bev_loss,
    diffusion_loss,
    make_scheduler,
    psnr,
    reconstruct,
    sample_latents,
    view_loss,
)
from core.models.ross3d.targets import (
    SceneTargetCache,
    TargetConfig,
    bev_empty_at,
    bev_targets,
    latent_to_tokens,
    render_scene_bev,
    tokens_to_latent,
    view_targets,
)
from core.models.ross3d.vae import DEFAULT_VAE_DIR, FrozenVAE, to_unit_range
from core.scene.scannet import Scene, list_scenes, load_scene

pytestmark = pytest.mark.usefixtures("one_thread")

# The shipped VAE's held-out frame PSNR is recorded in assets/ross3d_vae/recipe.json; a generated frame
# from a scene it never saw must come back at least this well (measured 23.5 dB on the fixture scene, whose
# frames score 12.9 dB against their own mean colour).
SHIPPED_VAE_MIN_PSNR = 20.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """One generated scene (4 frames) from a seed the shipped VAE was not trained on."""
    from core.synth.dataset import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("ross3d_synth")
    generate_dataset(root, 1, seed=23, config=SynthConfig(num_frames=4), progress=False)
    return load_scene(root, list_scenes(root)[0])


@pytest.fixture(scope="module")
def vae() -> FrozenVAE:
    return FrozenVAE.load()


def _tiny_denoiser(grid=(7, 7), channels=32, cond_dim=32, seed=0) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(
        DenoiserConfig(
            in_channels=channels,
            grid=grid,
            cond_dim=cond_dim,
            width=64,
            depth=2,
            heads=4,
            pool_heads=4,
            frequency_dim=64,
        )
    )


# ------------------------------------------------------------------------------------------ targets


@pytest.mark.parametrize("pool", [1, 2])
def test_view_targets_match_the_image_branch_token_grid(scene: Scene, vae: FrozenVAE, pool: int) -> None:
    encoder = VisionEncoder(VisionConfig(pool=pool))
    config = TargetConfig(view_grid=encoder.grid, view_size=112)
    frames = [f.color() for f in scene.frames.frames[:3]]
    pixels = preprocess_images(frames, encoder.image_size, encoder.image_mean, encoder.image_std)
    targets = view_targets(vae, pixels, encoder.image_mean, encoder.image_std, config)
    tokens = encoder(pixels)
    assert targets.shape == (3, tokens.shape[1], 4 * vae.latent_channels)
    assert targets.shape[1] == encoder.grid[0] * encoder.grid[1] == (49 if pool == 1 else 16)
    batched = view_targets(vae, pixels[None], encoder.image_mean, encoder.image_std, config)  # [B,F,...]
    assert batched.shape == (1, *targets.shape) and torch.allclose(batched[0], targets, atol=1e-5)
    # The unfolding is exactly invertible when no resize is needed (pool 1: latent 14x14 = 2 x grid).
    if pool == 1:
        latent = vae.encode_targets(
            F.interpolate(to_unit_range(torch.from_numpy(np.stack(frames))), size=112)
        )
        assert torch.equal(tokens_to_latent(latent_to_tokens(latent, encoder.grid), encoder.grid), latent)


def test_scene_targets_are_cached_per_scene_vae_and_config(
    scene: Scene, vae: FrozenVAE, tmp_path: Path
) -> None:
    config = TargetConfig(view_grid=(7, 7), view_size=112, bev_size=112, bev_grid=(7, 7))
    cache = SceneTargetCache(tmp_path, vae, config)
    first = cache.get(scene, [0, 2])
    assert first.views.shape == (2, 49, 4 * vae.latent_channels)
    assert first.bev.shape == (49, 4 * vae.latent_channels) and first.bev_mask.shape == (49,)
    path = cache.path(scene.scene_id, [0, 2])
    assert path is not None and path.is_file()
    again = SceneTargetCache(tmp_path, vae, config).get(scene, [0, 2])
    assert torch.equal(again.views, first.views) and torch.equal(again.bev_mask, first.bev_mask)
    other = TargetConfig(view_grid=(7, 7), view_size=112, bev_size=224, bev_grid=(14, 14))
    assert SceneTargetCache(tmp_path, vae, other).path(scene.scene_id, [0, 2]) != path
    assert cache.path(scene.scene_id, [0, 1]) != path
    # The cached frames and the on-the-fly path from normalised encoder pixels give nearly the same targets.
    pixels = preprocess_images([scene.frames.frames[i].color() for i in (0, 2)], 112)
    live = view_targets(vae, pixels, (0.5,) * 3, (0.5,) * 3, config)
    assert F.mse_loss(live, first.views) < 0.05 * first.views.var()
    path.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="target cache"):
        SceneTargetCache(tmp_path, vae, config).get(scene, [0, 2])


@pytest.mark.parametrize("size,grid", [(112, (14, 14)), (224, (28, 28)), (112, (7, 7))])
def test_bev_loss_mask_equals_the_renderers_empty_mask(scene: Scene, vae: FrozenVAE, size: int, grid) -> None:
    bev = render_scene_bev(scene, size)
    targets, mask = bev_targets(vae, bev, TargetConfig(bev_size=size, bev_grid=grid))
    assert targets.shape == (grid[0] * grid[1], 4 * vae.latent_channels)
    cell = size // grid[0]
    all_empty = bev.empty.reshape(grid[0], cell, grid[1], cell).all(axis=(1, 3))
    assert np.array_equal(mask.numpy().reshape(grid), ~all_empty)
    assert mask.any()
    if grid == (28, 28):  # 8 px cells: the 5% margin around the room leaves whole cells empty
        assert (~mask).any()
        # A render of another size is resized first; its holes stay holes.
        _, small = bev_targets(vae, bev, TargetConfig(bev_size=112, bev_grid=grid))
        empty = bev_empty_at(bev, 112).reshape(grid[0], 4, grid[1], 4).all(axis=(1, 3))
        assert np.array_equal(small.numpy().reshape(grid), ~empty)


# ----------------------------------------------------------------------------------------- denoiser


def test_untrained_denoiser_predicts_exactly_zero_and_still_learns() -> None:
    model = _tiny_denoiser()
    hidden, visible = torch.randn(2, 30, 32), torch.ones(2, 30, dtype=torch.bool)
    visible[1, 10:] = False
    conditions = model.condition(hidden, visible)
    assert conditions.shape == (2, 49, 64)
    x = torch.randn(2, 49, 32)
    out = model(x, torch.tensor([10, 900]), conditions)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0
    (out - torch.randn_like(out)).pow(2).mean().backward()
    assert model.final.linear.weight.grad.abs().sum() > 0  # the zero layer gets a gradient
    assert model.pos_embed.shape == (1, 49, 64) and not model.pos_embed.requires_grad
    # Padded (invisible) hidden states do not change the conditions.
    changed = hidden.clone()
    changed[1, 10:] = 100.0
    assert torch.allclose(model.condition(changed, visible)[1], conditions[1], atol=1e-6)
    with pytest.raises(ModelError, match="latents"):
        model(torch.randn(2, 48, 32), torch.tensor([1, 2]), conditions)


def test_denoiser_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = _tiny_denoiser(grid=(4, 6))
    with torch.no_grad():  # move off the zero init so the comparison means something
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path / "den")
    loaded = Denoiser.from_pretrained(tmp_path / "den")
    assert loaded.config == model.config
    hidden, x = torch.randn(1, 12, 32), torch.randn(1, 24, 32)
    a = model(x, torch.tensor([500]), model.condition(hidden))
    b = loaded(x, torch.tensor([500]), loaded.condition(hidden))
    assert torch.count_nonzero(a) > 0 and torch.equal(a, b)
    (tmp_path / "den" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors"):
        Denoiser.from_pretrained(tmp_path / "den")


def test_lr_prefix_gives_the_denoisers_their_own_learning_rate() -> None:
    from core.train.config import TrainConfig
    from core.train.schedule import parameter_groups

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = torch.nn.Linear(4, 4)
            small = DenoiserConfig(
                in_channels=8, grid=(2, 2), cond_dim=4, width=16, depth=1, heads=2, pool_heads=2
            )
            self.reconstruction = ReconstructionHead(ReconstructionConfig(view=small, bev=small))

    model = Wrapper()
    groups = parameter_groups(model, TrainConfig(lr=1e-5, lr_multipliers={LR_PREFIX: 10.0}))
    fast = {id(p) for g in groups if g["lr"] == pytest.approx(1e-4) for p in g["params"]}
    assert fast == {id(p) for p in model.reconstruction.parameters()}


# ----------------------------------------------------------------------------------- losses, sampler


def test_losses_mask_empty_bev_cells_and_repeat_views() -> None:
    torch.manual_seed(0)
    model, scheduler = _tiny_denoiser(grid=(2, 2), channels=8), make_scheduler()
    with torch.no_grad():
        model.final.linear.weight.normal_()
    hidden, visible = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool)
    targets = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, False, False, False], [False, False, False, False]])
    gen = torch.Generator().manual_seed(1)
    masked = bev_loss(model, scheduler, targets, mask, hidden, visible, generator=gen)
    # Changing the masked-out targets changes nothing.
    other = targets.clone()
    other[:, 1:] += 50.0
    other[1] += 50.0
    again = bev_loss(
        model, scheduler, other, mask, hidden, visible, generator=torch.Generator().manual_seed(1)
    )
    assert torch.allclose(masked, again)
    loss = view_loss(model, scheduler, targets[:1], hidden, visible, torch.tensor([1]), repeats=4)
    assert loss.ndim == 0 and torch.isfinite(loss)
    cond = model.condition(hidden, visible)
    with pytest.raises(ModelError, match="conditions"):
        diffusion_loss(model, scheduler, targets, cond[:1])


def test_overfitting_one_target_beats_the_mean_image(vae: FrozenVAE, scene: Scene) -> None:
    """A tiny denoiser on fixed random hidden states learns one frame's latents; sampling (DDPM, 50 steps)
    then lands closer to that frame than its mean colour does, in latent and in pixel space."""
    frame = scene.frames.frames[1].color()
    image = F.interpolate(
        to_unit_range(torch.from_numpy(frame[None].copy())), size=112, mode="bilinear", antialias=True
    )
    target = latent_to_tokens(vae.encode_targets(image), (7, 7))  # [1,49,32]
    model, scheduler = _tiny_denoiser(channels=target.shape[-1]), make_scheduler()
    hidden = torch.randn(1, 20, 32, generator=torch.Generator().manual_seed(3))
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(400):
        loss = diffusion_loss(model, scheduler, target, model.condition(hidden), repeats=8, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-30:]) < 0.5 * np.mean(losses[:30])
    model.eval()
    out = reconstruct(
        model, scheduler, model.condition(hidden), vae, steps=50, generator=torch.Generator().manual_seed(5)
    )
    mean_latent = target.mean(dim=(0, 1), keepdim=True).expand_as(target)
    assert F.mse_loss(out.latents, target) < F.mse_loss(mean_latent, target)
    mean_image = image.mean(dim=(2, 3), keepdim=True).expand_as(image)
    assert out.images.shape == image.shape
    assert F.mse_loss(out.images, image) < F.mse_loss(mean_image, image)
    # DDIM sampling runs through the same loop; the same seed gives the same sample.
    cond = model.condition(hidden)
    ddim = [
        sample_latents(
            model, scheduler, cond, steps=10, kind="ddim", generator=torch.Generator().manual_seed(1)
        )
        for _ in range(2)
    ]
    assert ddim[0].shape == target.shape and torch.equal(ddim[0], ddim[1])
    with pytest.raises(ModelError, match="sampler"):
        sample_latents(model, scheduler, model.condition(hidden), kind="euler")


# --------------------------------------------------------------------------------------- shipped VAE


def test_shipped_vae_reconstructs_an_unseen_generated_frame(vae: FrozenVAE, scene: Scene) -> None:
    assert vae.source is not None and Path(vae.source) == DEFAULT_VAE_DIR
    size_mib = sum(f.stat().st_size for f in DEFAULT_VAE_DIR.iterdir()) / 2**20
    assert size_mib < 6
    frames = np.stack([np.asarray(f.color()) for f in scene.frames.frames[:2]])
    x = F.interpolate(
        to_unit_range(torch.from_numpy(frames)), size=vae.image_size, mode="bilinear", antialias=True
    )
    latents = vae.encode_targets(x)
    assert latents.shape == (2, vae.latent_channels, vae.image_size // 8, vae.image_size // 8)
    assert 0.5 < float(latents.std()) < 2.0  # the scaling factor makes unit-variance targets
    score = psnr(vae.decode(latents), x)
    flat = psnr(x.mean(dim=(2, 3), keepdim=True).expand_as(x), x)  # each frame's mean colour everywhere
    assert math.isfinite(score) and score > SHIPPED_VAE_MIN_PSNR, f"shipped VAE PSNR {score:.1f} dB"
    assert score > flat + 5, f"shipped VAE {score:.1f} dB vs the mean colour's {flat:.1f} dB"


def test_vae_folder_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        FrozenVAE.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        FrozenVAE.load(tmp_path / "empty")


def test_train_vae_writes_a_loadable_folder_with_its_recipe(scene: Scene, tmp_path: Path) -> None:
    from core.models.ross3d.train_vae import main

    out = tmp_path / "vae"
    args = ["--data", str(scene.folder.parent), "--out", str(out), "--steps", "2", "--batch", "2"]
    args += ["--crop", "16", "--size", "32", "--channels", "8,16", "--latent-channels", "4", "--every", "2"]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "recipe.json",
        "preview.png",
    }
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["args"]["steps"] == 2 and recipe["scenes"] == [f"scans/{scene.scene_id}"]
    loaded = FrozenVAE.load(out)
    assert loaded.downsample == 2 and loaded.image_size == 32
    assert loaded.scaling_factor == pytest.approx(recipe["scaling_factor"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    assert main([*args[:2], "--out", str(tmp_path / "other"), *args[4:]]) == 2
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
