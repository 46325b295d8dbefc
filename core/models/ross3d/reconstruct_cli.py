"""`python -m core reconstruct --checkpoint DIR --scans DIR --scene ID --out DIR`: what Ross3D reconstructs.

Ross3D's release trains the two reconstruction losses but never runs the sampler, so nobody has seen a
reconstruction. This command does: the scene's frames are chosen as in training, `Ross3DModel.reconstruct`
samples the bird's-eye view (conditioned on every frame) and the masked views (`mask_ratio` of the frames,
chosen with `--seed`, conditioned on the others) with DDIM or DDPM, and the VAE decodes them. Written to
`--out`:

- `bev.png`: ground truth (the renderer's BEV) | the VAE's own decode of the target latents (the best
  the denoiser can do through this VAE) | the reconstruction, side by side;
- `view_<frame>.png`, one per masked frame: the frame | VAE decode of its target | reconstruction;
- `scores.json`: PSNR of the BEV on its non-empty pixels (and of the mean colour, a blind baseline), latent
  MSE over the non-empty BEV cells, the same for the views, the masked frame indices, steps, sampler, seed,
  seconds. PNG and JSON writes are atomic.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported when the command runs: `python -m core --help` stays fast
    import numpy as np
    import torch

SAMPLERS = ("ddim", "ddpm")
QUESTION = "What does the room look like?"  # any text: the visual tokens come before it (causal LM)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "reconstruct",
        help="Ross3D's BEV and masked-view reconstructions beside the ground truth (PNGs + scores)",
        description="Sample a trained Ross3D's bird's-eye-view and masked-view reconstructions of one scene "
        "and write them beside the ground truth as PNGs, with PSNR on the non-empty BEV pixels and latent "
        "MSE.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="Ross3D checkpoint folder")
    p.add_argument("--scans", required=True, type=Path, help="dataset root or scans/ folder")
    p.add_argument("--scene", required=True, help="scene id, e.g. scene0000_00")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=int, default=50, help="sampler steps (default 50)")
    p.add_argument("--sampler", default="ddim", choices=SAMPLERS, help="default ddim")
    p.add_argument("--seed", type=int, default=0, help="which frames are masked, and the noise (default 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    p.set_defaults(run=run)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _uint8(image: torch.Tensor, size: int) -> np.ndarray:
    """[3,H,W] in [-1, 1] -> uint8 [size,size,3] (nearest: pixels stay pixels)."""
    import torch.nn.functional as F

    from core.models.ross3d.vae import to_uint8

    if image.shape[-1] != size:
        image = F.interpolate(image[None].float(), size=(size, size), mode="nearest")[0]
    return to_uint8(image[None])[0].numpy()


def _panel(images: list[torch.Tensor]) -> np.ndarray:
    """Images side by side at the largest one's size, a 4-pixel white gap between them."""
    import numpy as np

    size = max(int(i.shape[-1]) for i in images)
    parts = [_uint8(i, size) for i in images]
    gap = np.full((size, 4, 3), 255, dtype=np.uint8)
    row = [parts[0]]
    for p in parts[1:]:
        row += [gap, p]
    return np.concatenate(row, axis=1)


def load_checkpoint(checkpoint: str | Path, device: str | None = None):
    """A trained Ross3D folder, or one `ModelError` saying what is wrong with it (also `predict ross3d`)."""
    import torch

    from core.models.errors import ModelError
    from core.models.ross3d.modeling_ross3d import Ross3DModel

    folder = Path(checkpoint)
    if not folder.is_dir():
        raise ModelError(folder, "checkpoint folder not found (give the model/ folder a training run wrote)")
    if not (folder / "config.json").is_file():
        raise ModelError(
            folder / "config.json", "missing: not a checkpoint folder (save_pretrained writes it)"
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError(None, "--device cuda: no CUDA device is available here (use --device cpu)")
    return Ross3DModel.from_pretrained(folder, device=device)


def reconstruct_scene(
    checkpoint: str | Path,
    scans: str | Path,
    scene_id: str,
    out: str | Path,
    steps: int = 50,
    sampler: str = "ddim",
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """The whole command; returns what `scores.json` holds."""
    import numpy as np
    import torch

    from core.atomic import atomic_write_bytes, atomic_write_json
    from core.data.errors import DataError
    from core.models.ross3d.processor_ross3d import Ross3DSample
    from core.models.ross3d.targets import SceneTargetCache, render_scene_bev, tokens_to_latent
    from core.models.ross3d.vae import to_unit_range
    from core.scene.errors import SceneError
    from core.scene.scannet import load_scene

    if steps < 1:
        raise DataError(None, f"--steps must be >= 1, got {steps}")
    if sampler not in SAMPLERS:
        raise DataError(None, f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    try:
        scene = load_scene(scans, scene_id)
    except SceneError as exc:
        raise DataError(exc.path, f"scene {scene_id}: {exc.reason}") from None
    model = load_checkpoint(checkpoint, device)
    started = time.perf_counter()
    config = model.config
    frames = model.image.select_and_load(scene)
    targets = SceneTargetCache(None, model.vae, config.targets).get(scene, frames.frame_indices)
    bev = render_scene_bev(scene, config.targets.bev_size)
    bev_image = to_unit_range(torch.from_numpy(np.ascontiguousarray(bev.color))[None])[0]
    sample = Ross3DSample(
        scene_id, "scanqa", QUESTION, None, frames,
        view_targets=targets.views, bev_target=targets.bev, bev_mask=targets.bev_mask, bev_image=bev_image,
    )  # fmt: skip
    result = model.reconstruct([sample.to(model.device)], steps=steps, sampler=sampler, seed=seed)
    item = result.samples[0]
    seconds = time.perf_counter() - started

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vae_bev = model.vae.decode(tokens_to_latent(targets.bev[None], config.recon.bev.grid))[0].cpu()
    files = [atomic_write_bytes(out / "bev.png", _png(_panel([bev_image, vae_bev, item.bev])))]
    masked = [frames.frame_indices[i] for i in item.masked_frames]
    if item.views is not None:
        view_targets = targets.views[item.masked_frames]
        decoded = model.vae.decode(tokens_to_latent(view_targets, config.recon.view.grid)).cpu()
        for k, frame in enumerate(masked):
            panel = _panel([item.view_references[k], decoded[k], item.views[k]])
            files.append(atomic_write_bytes(out / f"view_{frame:05d}.png", _png(panel)))
    scores = {
        "scene_id": scene_id,
        "checkpoint": str(checkpoint),
        "steps": steps,
        "sampler": sampler,
        "seed": seed,
        "frames": list(frames.frame_indices),
        "masked_frames": masked,
        **{k: getattr(item, k) for k in ("bev_psnr", "bev_mean_psnr", "bev_latent_mse")},
        **{k: getattr(item, k) for k in ("view_psnr", "view_mean_psnr", "view_latent_mse")},
        "seconds": seconds,
        "panels": "ground truth | VAE decode of the target | reconstruction",
        "files": [p.name for p in files],
    }
    atomic_write_json(out / "scores.json", scores, indent=1)
    return scores


def run(args: argparse.Namespace) -> int:
    from core.data.errors import DataError
    from core.models.errors import ModelError
    from core.scene.errors import SceneError

    try:
        scores = reconstruct_scene(
            args.checkpoint, args.scans, args.scene, args.out, args.steps, args.sampler, args.seed,
            args.device,
        )  # fmt: skip
    except (ModelError, DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def fmt(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.3f}{unit}"

    print(
        f"{args.scene}: BEV PSNR {fmt(scores['bev_psnr'], ' dB')} "
        f"(mean colour {fmt(scores['bev_mean_psnr'], ' dB')}), "
        f"BEV latent MSE {fmt(scores['bev_latent_mse'])}; views {scores['masked_frames']}: PSNR "
        f"{fmt(scores['view_psnr'], ' dB')}, latent MSE {fmt(scores['view_latent_mse'])} "
        f"({scores['seconds']:.1f} s) -> {args.out}"
    )
    return 0
