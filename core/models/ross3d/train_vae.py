"""Train the small VAE that Ross3D ships as its default target encoder (no VAE weights can be downloaded).

    python -m core.models.ross3d.train_vae --data DIR [DIR ...] --out assets/ross3d_vae [--steps N]
        [--init VAE_DIR]   # continue from an earlier folder (the shipped one was trained in two stages)

Data: every `--every`-th frame of each generated scene under each DIR, resized (whole frame, bicubic, as
the vision encoder's preprocessing does) to the VAE's sample size, plus the scene's BEV renders at one and
two times that size, because those are the two kinds of image the VAE will encode. The last scene is held
out to measure PSNR. Training sees random square crops (the VAE is convolutional, so crops are as good as
whole images and much cheaper on a CPU) with flips, and BEV crops also with 90-degree turns.

Loss: L1 + `--edge-weight` x L1 of the image gradients (a cheap sharpness term in place of a perceptual
loss, which would need pretrained weights) + `--kl-weight` x KL. After training, `scaling_factor` is set to
1 / std of the posterior means so the diffusion targets have unit variance. The folder is written
atomically with diffusers' `save_pretrained`, with `recipe.json` (arguments, data, commit, measured PSNR)
and `preview.png` (held-out originals above their reconstructions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from core.atomic import atomic_dir
from core.models.errors import ModelError
from core.models.ross3d.reconstruction import psnr
from core.models.ross3d.vae import FrozenVAE, small_vae_config, to_uint8, to_unit_range
from core.scene.errors import SceneError


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def collect_images(
    roots: list[Path], size: int, every: int
) -> list[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """(scene label, frames, BEVs) per scene under every root: uint8 HxWx3 arrays, frames resized to
    `size`, BEVs rendered at `size` and 2 x `size`."""
    from core.models.ross3d.targets import render_scene_bev
    from core.scene.scannet import Scene, list_scenes, scene_folder

    scenes = []
    for root in roots:
        ids = list_scenes(root)
        if not ids:
            raise ModelError(root, "no scenes found (expected generated ScanNet scene folders)")
        for scene_id in tqdm(ids, desc=f"read {root.name}", unit="scene"):
            scene = Scene.load(scene_folder(root, scene_id))
            frames = [] if scene.frames is None else scene.frames.frames[::every]
            bevs = [render_scene_bev(scene, s).color for s in (size, 2 * size)]
            scenes.append((f"{root.name}/{scene_id}", [_resize(f.color(), size) for f in frames], bevs))
    return scenes


def _plain(value):
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _crop(image: np.ndarray, crop: int, rng: np.random.Generator, turn: bool) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    out = image[y : y + crop, x : x + crop]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if turn:
        out = np.rot90(out, int(rng.integers(0, 4)))
    return np.ascontiguousarray(out)


def _edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def vae_loss(vae, batch: torch.Tensor, kl_weight: float, edge_weight: float) -> tuple[torch.Tensor, float]:
    """(loss, L1) of one batch in [-1, 1]: a posterior sample is decoded, as VAE training does."""
    posterior = vae.encode(batch).latent_dist
    recon = vae.decode(posterior.sample()).sample
    l1 = (recon - batch).abs().mean()
    (ry, rx), (ty, tx) = _edges(recon), _edges(batch)
    edge = (ry - ty).abs().mean() + (rx - tx).abs().mean()
    kl = posterior.kl().mean() / batch[0].numel()
    return l1 + edge_weight * edge + kl_weight * kl, l1.item()


def save_preview(originals: torch.Tensor, recons: torch.Tensor, path: Path) -> None:
    """Originals (top row) above reconstructions (bottom row) as one PNG."""
    top = np.concatenate(list(to_uint8(originals).numpy()), axis=1)
    bottom = np.concatenate(list(to_uint8(recons).numpy()), axis=1)
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(path)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "config.json").is_file())):
        raise ModelError(out, "exists and is not a VAE folder (no config.json): not replacing it")


def _write_folder(
    vae: FrozenVAE, out: Path, recipe: dict, preview: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Build the folder beside `out`, then rename it into place (an old VAE folder is replaced)."""
    _check_out(out)
    with atomic_dir(out) as tmp:
        vae.save(tmp)
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
        save_preview(*preview, tmp / "preview.png")
        for file in tmp.iterdir():
            file.chmod(0o644)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.models.ross3d.train_vae", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="generated scene roots (python -m core synth --out DIR)",
    )
    p.add_argument("--out", type=Path, required=True, help="output VAE folder (e.g. assets/ross3d_vae)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--size", type=int, default=112, help="VAE sample size: frames are resized to it")
    p.add_argument("--latent-channels", type=int, default=8)
    p.add_argument("--channels", type=str, default="16,32,64,64")
    p.add_argument(
        "--norm-groups", type=int, default=4, help="GroupNorm groups (few: see vae.small_vae_config)"
    )
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--edge-weight", type=float, default=0.5)
    p.add_argument("--bev-fraction", type=float, default=0.25, help="share of each batch drawn from BEVs")
    p.add_argument("--every", type=int, default=1, help="use every n-th frame")
    p.add_argument(
        "--init", type=Path, default=None, help="continue from this VAE folder (its recipe is kept)"
    )
    p.add_argument("--data-command", default=None, help="how DIR was made (recorded in recipe.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    from diffusers import AutoencoderKL

    from core.train.loop import git_commit

    try:
        _check_out(args.out)  # before minutes of training, not after
        channels = tuple(int(c) for c in args.channels.split(","))
        scenes = collect_images(args.data, args.size, args.every)
        # Hold out the last scene (frames and BEVs) to measure PSNR on a room the VAE never saw.
        held = scenes[-1] if len(scenes) > 1 else None
        train_frames = [f for _, frames, _ in scenes[: len(scenes) - (held is not None)] for f in frames]
        train_bevs = [b for _, _, bevs in scenes[: len(scenes) - (held is not None)] for b in bevs]
        val_frames, val_bevs = (held[1], held[2]) if held is not None else ([], [])
        ids = [label for label, _, _ in scenes]
        if not train_frames:
            raise ModelError(args.data[0], "no RGB frames found in the training scenes")
        if args.init is not None:  # keep training a VAE folder (e.g. in stages on a shared CPU)
            vae = FrozenVAE.load(args.init).vae.requires_grad_(True).train()
            init_recipe = json.loads((args.init / "recipe.json").read_text(encoding="utf-8"))
        else:
            vae, init_recipe = (
                AutoencoderKL(
                    **small_vae_config(args.latent_channels, channels, args.size, args.norm_groups)
                ),
                None,
            )
    except (ModelError, SceneError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.05)
    n_bev = round(args.batch * args.bev_fraction) if train_bevs else 0
    start, l1_avg = time.time(), None
    bar = tqdm(range(args.steps), desc="train vae", unit="step")
    for _ in bar:
        picks = [
            _crop(train_frames[i], args.crop, rng, False)
            for i in rng.integers(0, len(train_frames), args.batch - n_bev)
        ]
        picks += [_crop(train_bevs[i], args.crop, rng, True) for i in rng.integers(0, len(train_bevs), n_bev)]
        batch = to_unit_range(torch.from_numpy(np.stack(picks)))
        loss, l1 = vae_loss(vae, batch, args.kl_weight, args.edge_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        l1_avg = l1 if l1_avg is None else 0.98 * l1_avg + 0.02 * l1
        bar.set_postfix(l1=f"{l1_avg:.4f}")

    vae.eval()
    with torch.no_grad():  # latents of unit variance for the diffusion targets
        sample = [train_frames[i] for i in rng.integers(0, len(train_frames), 64)] + train_bevs[:4]
        means = [
            vae.encode(to_unit_range(torch.from_numpy(im[None].copy()))).latent_dist.mean for im in sample
        ]
        std = float(torch.cat([m.flatten() for m in means]).std())
    vae.register_to_config(scaling_factor=1.0 / std)
    frozen = FrozenVAE(vae)
    val_imgs = val_frames[:: max(1, len(val_frames) // 6)][:6] or train_frames[:6]
    x = to_unit_range(torch.from_numpy(np.stack(val_imgs)))
    recon = frozen.decode(frozen.encode_targets(x))
    scores = {"val_frames_psnr": psnr(recon, x)}
    for bev in val_bevs or train_bevs[:1]:
        b = to_unit_range(torch.from_numpy(bev[None].copy()))
        scores[f"val_bev{bev.shape[0]}_psnr_nonempty"] = psnr(
            frozen.decode(frozen.encode_targets(b)), b, b.mean(1) > -1
        )
    recipe = {
        "command": "python -m core.models.ross3d.train_vae "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": {k: _plain(v) for k, v in vars(args).items()},
        "data_command": args.data_command,
        "scenes": ids,
        "held_out_scene": held[0] if held is not None else None,
        "train_images": {"frames": len(train_frames), "bevs": len(train_bevs)},
        "parameters": sum(p.numel() for p in vae.parameters()),
        "scaling_factor": 1.0 / std,
        "final_l1_ema": l1_avg,
        "seconds": round(time.time() - start, 1),
        "commit": git_commit(),
        "init_recipe": init_recipe,
        **{k: round(v, 2) for k, v in scores.items()},
    }
    _write_folder(frozen, args.out, recipe, (x, recon))
    print(json.dumps({k: recipe[k] for k in ("parameters", "scaling_factor", *scores)}, indent=None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
