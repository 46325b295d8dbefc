"""Scene foundation benchmark: synth, load, superpoints, visibility on one typical synthetic scene.

    python bench/bench_scene.py [--frames 240] [--room bedroom] [--out DIR]

Prints a table with the measured time and the target of each step (README quotes it), with the machine's
load average before and after: on a shared machine the wall time grows with the load, so each timed step
also shows the CPU time of this process (all its threads), which the load does not inflate as much.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.scene.scannet import load_scene  # noqa: E402
from core.scene.superpoints import segment_mesh  # noqa: E402
from core.scene.visibility import instance_visibility  # noqa: E402
from core.synth.dataset import SynthConfig, generate_dataset  # noqa: E402

CPU: dict[str, float] = {}  # step -> CPU seconds of its best run


def timed(fn, repeat: int = 1, name: str = ""):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, CPU[name] = wall, time.process_time() - c0
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--out", type=Path, help="keep the generated scene here (default: a temp folder)")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_scene_"))
    load_before = os.getloadavg()[0]
    segment_mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]]))  # compile numba outside the timings
    synth_s, reports = timed(
        lambda: generate_dataset(out, 1, seed=0, config=SynthConfig(args.frames), progress=False),
        name="synth",
    )
    steps = reports[0]["timing"]

    load_s, scene = timed(lambda: _load(out), repeat=3, name="load")
    sp_s, sp = timed(lambda: segment_mesh(scene.mesh.vertices, scene.mesh.faces), repeat=3, name="sp")
    vis_s, table = timed(lambda: instance_visibility(scene), repeat=2, name="vis")

    rows = [
        (
            "scene",
            f"{scene.scene_id}: {scene.mesh.num_vertices} vertices, {scene.mesh.num_faces} faces, "
            f"{len(scene.instances)} objects, {len(scene.frames)} frames",
            "",
        ),
        ("synth, whole scene", f"{synth_s:.1f} s (CPU {CPU['synth']:.1f} s)", "< 60 s"),
        ("  layout", f"{steps['layout']:.2f} s", ""),
        ("  superpoints", f"{steps['superpoints']:.2f} s", ""),
        ("  write geometry", f"{steps['write_geometry']:.2f} s", ""),
        ("  render frames", f"{steps['render']:.1f} s", ""),
        ("  encode tail", f"{steps['encode']:.2f} s", ""),
        ("load mesh + superpoints + instances", f"{load_s:.2f} s (CPU {CPU['load']:.2f} s)", "< 1 s"),
        ("superpoint computation (segmentator)", f"{sp_s:.2f} s ({sp.max() + 1} superpoints)", ""),
        (
            f"visibility, {len(table.object_ids)} instances x {len(table.frame_ids)} frames",
            f"{vis_s:.2f} s (CPU {CPU['vis']:.2f} s)",
            "< 2 s",
        ),
    ]
    rows.append(
        ("machine", f"{os.cpu_count()} CPUs, load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}", "")
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  {'measured':<40}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:<40}  {target}")


def _load(out: Path):
    scene = load_scene(out, "scene0000_00")
    _ = scene.vertex_instance, scene.superpoints
    return scene


if __name__ == "__main__":
    main()
