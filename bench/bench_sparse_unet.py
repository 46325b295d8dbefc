"""Sparse U-Net benchmark: forward and forward+backward time and peak memory per backend, config and size.

    python bench/bench_sparse_unet.py [--sizes 50000 200000] [--threads N] [--repeat 2] [--device cpu|cuda]

Each row runs in its own process (so its peak RSS is its own) on a room-like scene voxelised at 2 cm
(floor, ceiling, walls and furniture boxes: thin shells like a scan). Rows: backend (spconv where it
imports, torch) x config ("default" = channels 32..160, 2 blocks; "small" = 16..80, 1 block) x size.
Peak memory: the process's maximum RSS on CPU (includes about 0.3-0.5 GB of Python + torch), or
`torch.cuda.max_memory_allocated` on CUDA. Quote the machine load beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.models.common.sparse import spconv_backend  # noqa: E402
from core.models.common.sparse_unet import SparseUNet, SparseUNetConfig  # noqa: E402
from core.models.common.voxelize import batch_voxels, point_features, voxelize  # noqa: E402

CONFIGS = {
    "default": {"channels": (32, 64, 96, 128, 160), "blocks_per_level": 2},
    "small": {"channels": (16, 32, 48, 64, 80), "blocks_per_level": 1},
}
VOXEL = 0.02


def room_points(target_voxels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a square room's surfaces (floor, ceiling, 4 walls, 15 % of the area in furniture boxes),
    about 4 points per 2 cm cell, so that voxelisation gives roughly `target_voxels`."""
    g = torch.Generator().manual_seed(seed)
    height, box_size = 2.5, torch.tensor([0.8, 0.6, 0.8])
    area = target_voxels * VOXEL**2
    box_area = 2 * float(box_size[0] * box_size[1] + box_size[1] * box_size[2] + box_size[0] * box_size[2])
    boxes = max(1, round(0.15 * area / box_area))
    room_area = area - boxes * box_area
    side = (-4 * height + math.sqrt(16 * height**2 + 8 * room_area)) / 4  # 2 s^2 + 4 s h = room_area
    faces = []  # (origin, edge u, edge v) of each rectangle
    for z in (0.0, height):
        faces.append(([0, 0, z], [side, 0, 0], [0, side, 0]))
    for axis, value in [(0, 0.0), (0, side), (1, 0.0), (1, side)]:
        origin = [0.0, 0.0, 0.0]
        origin[axis] = value
        along = [0.0, 0.0, 0.0]
        along[1 - axis] = side
        faces.append((origin, along, [0, 0, height]))
    centres = torch.rand(boxes, 3, generator=g) * torch.tensor([side - 1, side - 1, 0.0]) + 0.5
    a, b, c = box_size.tolist()
    for x, y, _ in centres.tolist():
        lo = [x - a / 2, y - b / 2, 0.0]
        for edge_u, edge_v, normal in [([a, 0, 0], [0, b, 0], [0, 0, c]), ([a, 0, 0], [0, 0, c], [0, b, 0]),
                                       ([0, b, 0], [0, 0, c], [a, 0, 0])]:
            faces.append((lo, edge_u, edge_v))
            faces.append(([p + q for p, q in zip(lo, normal)], edge_u, edge_v))
    chunks = []
    for origin, u, v in faces:
        u_t, v_t = torch.tensor(u, dtype=torch.float32), torch.tensor(v, dtype=torch.float32)
        n = max(1, int(4 * float(torch.linalg.cross(u_t, v_t).norm()) / VOXEL**2))
        ab = torch.rand(n, 2, generator=g)
        chunks.append(torch.tensor(origin, dtype=torch.float32) + ab[:, :1] * u_t + ab[:, 1:] * v_t)
    xyz = torch.cat(chunks)
    rgb = torch.randint(0, 256, (xyz.shape[0], 3), generator=g)
    return xyz, rgb


def run_row(backend: str, config: str, size: int, repeat: int, device: str) -> dict:
    xyz, rgb = room_points(size)
    batch = batch_voxels([voxelize(xyz, point_features(xyz, rgb), VOXEL)]).to(device)
    del xyz, rgb
    model = SparseUNet(SparseUNetConfig(**CONFIGS[config], backend=backend)).to(device)
    params = sum(p.numel() for p in model.parameters())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad():
            model(batch.coords, batch.feats, 1)
        sync()

    def train_step() -> None:
        out = model(batch.coords, batch.feats, 1)
        out.square().mean().backward()
        sync()

    def best(fn) -> float:
        fn()  # warm-up: spconv tuning, allocator, caches
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    fwd = best(forward)
    fwd_bwd = best(train_step)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"backend": backend, "config": config, "voxels": int(batch.coords.shape[0]),
            "params_m": params / 1e6, "fwd_s": fwd, "fwd_bwd_s": fwd_bwd, "peak_mb": peak,
            "rss_before_mb": rss_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--backends", nargs="+", default=None, choices=["spconv", "torch"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--row", nargs=3, metavar=("BACKEND", "CONFIG", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.row:
        print(json.dumps(run_row(args.row[0], args.row[1], int(args.row[2]), args.repeat, args.device)))
        return

    backends = args.backends or (["spconv", "torch"] if spconv_backend.available() else ["torch"])
    if args.device == "cuda" and "spconv" in backends and spconv_backend.cpu_only():
        backends.remove("spconv")  # the CPU-only wheel cannot take CUDA tensors
    print(f"device {args.device}, torch threads {args.threads or torch.get_num_threads()}, "
          f"torch {torch.__version__}, load average {Path('/proc/loadavg').read_text().split()[:3]}")
    mem = "peak CUDA MB" if args.device == "cuda" else "peak RSS MB"
    header = (f"{'backend':8} {'config':8} {'voxels':>8} {'params':>7} {'fwd s':>8} {'fwd+bwd s':>10} "
              f"{mem:>12}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        for config in args.configs:
            for backend in backends:
                cmd = [sys.executable, __file__, "--row", backend, config, str(size),
                       "--repeat", str(args.repeat), "--device", args.device]
                cmd += ["--threads", str(args.threads)] if args.threads else []
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"{backend:8} {config:8} {size:>8} failed: {done.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"{r['backend']:8} {r['config']:8} {r['voxels']:>8} {r['params_m']:>6.2f}M "
                      f"{r['fwd_s']:>8.3f} {r['fwd_bwd_s']:>10.3f} {r['peak_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
