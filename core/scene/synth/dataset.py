"""`python -m core synth`: a folder of synthetic scans in ScanNet format plus benchmark annotations.

Layout written under `--out`:

    scans/<scene>/...                      ScanNet scene folders (mesh, labels mesh, segs, aggregation,
                                           meta txt, SensReader frames)
    annotations/...                        ScanRefer, Multi3DRefer, ScanQA, SQA3D files
    scannetv2_{train,val}.txt              split files
    scannetv2-labels.combined.tsv          label table for the categories used
    synth/<scene>.json                     what the generator knows (room type, colors, supports)

Resumable: each scene is built in a hidden folder and renamed into place when complete, so a killed run
rerun with the same arguments skips finished scenes and produces the same output.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.atomic import atomic_write_json
from core.scene.geometry import aabb_of
from core.scene.objects import ObjectInfo
from core.scene.render import MeshRenderer
from core.scene.superpoints import segment_mesh
from core.scene.synth import writer
from core.scene.synth.layout import ROOM_TYPES, SynthRoom, generate_room
from core.scene.synth.trajectory import handheld_trajectory

LABEL_TABLE = Path(__file__).resolve().parents[3] / "assets" / "labels" / "scannetv2-labels.synthetic.tsv"


@dataclass
class SynthConfig:
    num_frames: int = 240
    # Color is ray-cast at this fraction of 1296x968 and upsampled (bicubic) to the full size: 4x fewer rays
    # at 0.5, the difference between a ~50 s and a ~100 s scene here; ScanNet's own color frames are soft
    # (motion blur) at full size anyway. 1.0 renders every pixel.
    color_render_scale: float = 0.5
    invalid_pose_rate: float = 0.01  # real scans carry a few frames with -inf poses; so do ours
    val_fraction: float = 0.2
    jpeg_quality: int = 90


def scene_id_of(index: int) -> str:
    return f"scene{index:04d}_00"


def room_type_of(index: int, rng: np.random.Generator) -> str:
    """Cycle through every room type first so that small datasets still have each of them."""
    return ROOM_TYPES[index % len(ROOM_TYPES)] if index < 2 * len(ROOM_TYPES) else str(rng.choice(ROOM_TYPES))


def object_infos(room: SynthRoom) -> list[ObjectInfo]:
    """The room's objects with boxes measured from their vertices (as GT boxes are measured on scans)."""
    infos = []
    for obj in room.objects:
        box = aabb_of(room.mesh.vertices[room.vertex_object == obj.object_id])
        attributes = dict(obj.attributes, mount=obj.mount)
        if obj.support_id is not None:
            attributes["support_id"] = str(obj.support_id)
        infos.append(ObjectInfo(obj.object_id, obj.label, box, obj.color_name, attributes))
    return infos


def render_color(renderer: MeshRenderer, pose: np.ndarray, K: np.ndarray, scale: float) -> np.ndarray:
    """A full-size color frame, ray-cast at `scale` of the size and resized up."""
    full_w, full_h = writer.COLOR_SIZE
    if scale >= 1.0:
        return renderer.render(pose, K, full_w, full_h, instance=False).color
    w, h = round(full_w * scale), round(full_h * scale)
    # Intrinsics of the smaller image so that pixel centres (whole numbers) stay on the same rays.
    Ks = np.array(K, dtype=np.float64)
    Ks[0] *= w / full_w
    Ks[1] *= h / full_h
    Ks[0, 2] = (K[0, 2] + 0.5) * w / full_w - 0.5
    Ks[1, 2] = (K[1, 2] + 0.5) * h / full_h - 0.5
    small = renderer.render(pose, Ks, w, h, instance=False).color
    return np.asarray(Image.fromarray(small).resize((full_w, full_h), Image.BICUBIC))


def render_frames(
    folder: Path,
    room: SynthRoom,
    poses: np.ndarray,
    alignment: np.ndarray,
    camera: writer.Camera,
    rng: np.random.Generator,
    config: SynthConfig,
) -> dict[str, float]:
    """Render and write every frame; returns seconds spent rendering and encoding."""
    renderer = MeshRenderer(room.mesh, room.vertex_object)
    inverse = np.linalg.inv(alignment)
    invalid = rng.random(len(poses)) < config.invalid_pose_rate
    timing = {"render": 0.0, "encode": 0.0}

    def encode(i: int, color: np.ndarray, depth: np.ndarray) -> None:
        pose_raw = np.full((4, 4), -np.inf) if invalid[i] else inverse @ poses[i]
        writer.write_frame(
            folder,
            i,
            writer.encode_jpeg(color, config.jpeg_quality),
            writer.encode_depth_png(depth),
            pose_raw,
        )

    # Encoding (PIL releases the GIL) overlaps with the next frame's ray casting.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = []
        for i, pose in enumerate(poses):
            t0 = time.perf_counter()
            color = render_color(renderer, pose, camera.color, config.color_render_scale)
            depth = renderer.render(pose, camera.depth, *writer.DEPTH_SIZE, color=False, instance=False).depth
            timing["render"] += time.perf_counter() - t0
            pending.append(pool.submit(encode, i, color, depth))
            if len(pending) > 4:
                pending.pop(0).result()
        t0 = time.perf_counter()
        for job in pending:
            job.result()
        timing["encode"] += time.perf_counter() - t0
    return timing


def build_scene(out: Path, index: int, seed: int, config: SynthConfig, label_map) -> dict:
    """Generate, segment, render and write one scene; returns its facts and timings."""
    scene_id = scene_id_of(index)
    rng = np.random.default_rng([seed, index])
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    room = generate_room(rng, room_type_of(index, rng))
    timing["layout"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    superpoints = segment_mesh(room.mesh.vertices, room.mesh.faces)
    timing["superpoints"] = time.perf_counter() - t0

    tmp = out / "scans" / f".{scene_id}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    alignment = writer.random_alignment(rng, room.extent)
    camera = writer.Camera.sample(rng)
    t0 = time.perf_counter()
    labels = [o.label for o in room.objects]
    writer.write_geometry(
        tmp, scene_id, room.mesh, superpoints, room.vertex_object, labels, label_map.nyu40_id, alignment
    )
    infos = object_infos(room)
    poses = handheld_trajectory(room.extent, infos, rng, config.num_frames)
    writer.write_meta(tmp, scene_id, alignment, camera, room.room_type, len(poses))
    writer.write_intrinsics(tmp, camera)
    timing["write_geometry"] = time.perf_counter() - t0
    timing.update(render_frames(tmp, room, poses, alignment, camera, rng, config))

    split = "val" if rng.random() < config.val_fraction else "train"
    facts = {
        "scene_id": scene_id,
        "room_type": room.room_type,
        "extent": [float(x) for x in room.extent],
        "split": split,
        "axis_alignment": alignment.tolist(),
        "objects": [
            {
                "object_id": o.object_id,
                "label": o.label,
                "box": [float(x) for x in o.box],
                "color_name": o.color_name,
                "attributes": o.attributes,
            }
            for o in infos
        ],
    }
    atomic_write_json(out / "synth" / f"{scene_id}.json", facts, indent=1)
    final = out / "scans" / scene_id
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # the scene appears complete or not at all
    return {"facts": facts, "timing": timing}


def load_facts(out: Path, scene_id: str):
    from core.scene.synth.annotations import SceneFacts

    data = json.loads((out / "synth" / f"{scene_id}.json").read_text())
    objects = [
        ObjectInfo(o["object_id"], o["label"], np.array(o["box"]), o["color_name"], o["attributes"])
        for o in data["objects"]
    ]
    return SceneFacts(
        data["scene_id"],
        data["room_type"],
        np.array(data["extent"]),
        objects,
        data["split"],
        np.array(data["axis_alignment"]),
    )


def generate_dataset(
    out: str | Path, num_scenes: int, seed: int = 0, config: SynthConfig | None = None, progress: bool = True
) -> list[dict]:
    """Write `num_scenes` scenes and their benchmark annotations under `out` (skipping finished scenes)."""
    from core.scene.labels import LabelMap
    from core.scene.synth.annotations import generate_benchmarks, write_benchmarks

    out = Path(out)
    config = config or SynthConfig()
    label_map = LabelMap.from_tsv(LABEL_TABLE)
    reports = []
    bar = tqdm(range(num_scenes), desc="synth scenes", unit="scene", disable=not progress)
    for index in bar:
        scene_id = scene_id_of(index)
        bar.set_postfix_str(scene_id)
        if (out / "scans" / scene_id).is_dir() and (out / "synth" / f"{scene_id}.json").is_file():
            reports.append({"scene_id": scene_id, "skipped": True})
            continue
        report = build_scene(out, index, seed, config, label_map)
        reports.append({"scene_id": scene_id, "skipped": False, "timing": report["timing"]})

    facts = [load_facts(out, scene_id_of(i)) for i in range(num_scenes)]
    write_benchmarks(out, generate_benchmarks(facts, seed))
    shutil.copyfile(LABEL_TABLE, out / "scannetv2-labels.combined.tsv")
    return reports
