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

Splits: decided by `assign_splits` from the planned room types (a function of (seed, index) alone) and
the number of scenes, never by which scenes were already written: about `val_fraction` of the scenes go
to val, round-robin over room types (at least one val and one train scene whenever N >= 2). With
`val_from_first=K` the splits are those of a K-scene dataset and scenes K.. all go to train: more training
rooms, the same val scenes and val benchmark files (stored in `synth/dataset.json`, so later rewrites keep
it).
`write_annotations` rewrites the split files and every benchmark file from the saved per-scene facts
without re-rendering (`python -m core.synth.dataset --out DIR --seed S`).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.atomic import atomic_write_json
from core.scene.colors import VisibleColors
from core.scene.geometry import aabb_of
from core.scene.labels import DEFAULT_TABLE
from core.scene.objects import ObjectInfo
from core.scene.render import MeshRenderer, RenderedView
from core.scene.superpoints import segment_mesh
from core.synth import sensor, writer
from core.synth.layout import ROOM_TYPES, SynthRoom, generate_room
from core.synth.trajectory import REFERENCE_FRAMES, handheld_trajectory

LABEL_TABLE = DEFAULT_TABLE  # the shipped synthetic label table


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
    # The RGB-D sensor model of `sensor.py` (depth noise, quantisation and dropouts; motion blur, exposure
    # and white-balance drift, JPEG quality 72-88). Off: exact ray-cast depth and colour, for tests.
    sensor: bool = True


def scene_id_of(index: int) -> str:
    return f"scene{index:04d}_00"


def room_type_of(index: int, rng: np.random.Generator) -> str:
    """Cycle through every room type first so that small datasets still have each of them."""
    return ROOM_TYPES[index % len(ROOM_TYPES)] if index < 2 * len(ROOM_TYPES) else str(rng.choice(ROOM_TYPES))


def planned_room_type(index: int, seed: int) -> str:
    """The room type `build_scene` draws for a scene (its rng's first use), known without building it."""
    return room_type_of(index, np.random.default_rng([seed, index]))


def assign_splits(room_types: Sequence[str], seed: int, val_fraction: float = 0.2) -> list[str]:
    """The split ("train" / "val") of each scene: stratified by room type, deterministic for (types, seed).

    ceil(val_fraction * N) scenes go to val, clamped to 1..N-1 when N >= 2 (one scene: train). They are
    taken round-robin over room types (one scene of each type, then a second of each, ...), picks that
    leave the type a train scene first; types with more scenes lead each round (ties in a seeded order),
    and which scene of a type goes is seeded too.
    """
    n = len(room_types)
    if n < 2:
        return ["train"] * n
    k = min(n - 1, max(1, math.ceil(val_fraction * n - 1e-9)))
    rng = np.random.default_rng([seed, n, 0x5B11])
    by_type: dict[str, list[int]] = {}
    for i, room_type in enumerate(room_types):
        by_type.setdefault(room_type, []).append(i)
    tie_break = {t: int(r) for t, r in zip(sorted(by_type), rng.permutation(len(by_type)))}
    rank = {t: j for j, t in enumerate(sorted(by_type, key=lambda t: (-len(by_type[t]), tie_break[t])))}
    picks = []
    for t, members in by_type.items():
        for r, j in enumerate(rng.permutation(len(members))):
            picks.append((r >= len(members) - 1, r, rank[t], members[int(j)]))
    order = [i for *_, i in sorted(picks)]
    val = set(order[:k])
    return ["val" if i in val else "train" for i in range(n)]


def dataset_splits(
    room_types: Sequence[str], seed: int, val_fraction: float = 0.2, val_from_first: int | None = None
) -> list[str]:
    """`assign_splits` over the first `val_from_first` scenes (all when None); the scenes after them are
    train, so a dataset grown this way keeps the val split of its first scenes."""
    if val_from_first is not None and val_from_first < 1:
        raise ValueError(f"val_from_first must be at least 1, got {val_from_first}")
    k = len(room_types) if val_from_first is None else min(val_from_first, len(room_types))
    return assign_splits(room_types[:k], seed, val_fraction) + ["train"] * (len(room_types) - k)


def stored_val_from_first(out: Path) -> int | None:
    """The `val_from_first` a dataset folder was written with (None: the plain split)."""
    path = out / "synth" / "dataset.json"
    return json.loads(path.read_text()).get("val_from_first") if path.is_file() else None


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


def render_color(
    renderer: MeshRenderer,
    pose: np.ndarray,
    K: np.ndarray,
    scale: float,
    tally: VisibleColors | None = None,
    frame: int = 0,
    post: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """A full-size color frame, ray-cast at `scale` of the size and resized up. With a `tally`, the
    ray-cast pixels (at about half size, the annotation pipeline's work resolution) vote for the color of
    the objects they show: an object's color is what the camera sees of it, hidden faces excluded.
    `post` (the sensor model) transforms the ray-cast image before it is resized up."""
    full_w, full_h = writer.COLOR_SIZE
    if scale >= 1.0:
        rendered = renderer.render(pose, K, full_w, full_h, instance=tally is not None)
        if tally is not None:
            tally.add(frame, rendered.color[::2, ::2], rendered.instance[::2, ::2])
        return rendered.color if post is None else post(rendered.color)
    w, h = round(full_w * scale), round(full_h * scale)
    # Intrinsics of the smaller image so that pixel centres (whole numbers) stay on the same rays.
    Ks = np.array(K, dtype=np.float64)
    Ks[0] *= w / full_w
    Ks[1] *= h / full_h
    Ks[0, 2] = (K[0, 2] + 0.5) * w / full_w - 0.5
    Ks[1, 2] = (K[1, 2] + 0.5) * h / full_h - 0.5
    rendered = renderer.render(pose, Ks, w, h, instance=tally is not None)
    small = rendered.color
    if tally is not None:
        step = max(1, round(0.5 / scale))
        tally.add(frame, small[::step, ::step], rendered.instance[::step, ::step])
    if post is not None:
        small = post(small)
    return np.asarray(Image.fromarray(small).resize((full_w, full_h), Image.BICUBIC))


def render_frames(
    folder: Path,
    room: SynthRoom,
    poses: np.ndarray,
    alignment: np.ndarray,
    camera: writer.Camera,
    rng: np.random.Generator,
    config: SynthConfig,
    tally: VisibleColors | None = None,
    sensor_key: Sequence[int] = (0,),
) -> dict[str, float]:
    """Render and write every frame (tallying visible colors into `tally`); returns seconds spent
    rendering and encoding. With `config.sensor`, frames pass through the sensor model, its random numbers
    seeded by (*sensor_key, frame) so that the output does not depend on thread timing."""
    renderer = MeshRenderer(room.mesh, room.vertex_object)
    inverse = np.linalg.inv(alignment)
    invalid = rng.random(len(poses)) < config.invalid_pose_rate
    timing = {"render": 0.0, "encode": 0.0}

    gains = None
    if config.sensor:
        gains = sensor.color_drift(len(poses), np.random.default_rng([*sensor_key, 0xC0]))

    labels = [o.label for o in room.objects]

    def encode(i: int, color: np.ndarray, view: RenderedView) -> None:
        pose_raw = np.full((4, 4), -np.inf) if invalid[i] else inverse @ poses[i]
        quality, depth = config.jpeg_quality, view.depth
        if config.sensor:  # the surface's own brightness and label decide dark / shiny dropouts
            frame_rng = np.random.default_rng([*sensor_key, i, 0xDE])
            brightness = view.color.max(axis=2).astype(np.float32) / 255.0
            shiny = sensor.shiny_probability(view.instance, labels)
            depth = sensor.sensor_depth(depth, camera.depth, frame_rng, brightness, shiny)
            quality = sensor.jpeg_quality(frame_rng, config.jpeg_quality)
        writer.write_frame(
            folder,
            i,
            writer.encode_jpeg(color, quality),
            writer.encode_depth_png(depth),
            pose_raw,
        )

    # Encoding (PIL releases the GIL) overlaps with the next frame's ray casting.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = []
        for i, pose in enumerate(poses):
            t0 = time.perf_counter()
            post = None
            if gains is not None:
                lo, hi = max(i - 1, 0), min(i + 1, len(poses) - 1)
                flow = sensor.image_motion(poses[lo], poses[hi], pose, camera.color, span=max(hi - lo, 1))
                flow = flow * (
                    len(poses) / REFERENCE_FRAMES
                )  # blur follows the walk's speed, not the frame rate
                scale = min(1.0, config.color_render_scale)
                blur, gain = sensor.blur_vector(flow, scale), gains[i]
                post = lambda image, blur=blur, gain=gain: sensor.sensor_color(image, blur, gain)  # noqa: E731
            color = render_color(renderer, pose, camera.color, config.color_render_scale, tally, i, post)
            on = config.sensor
            view = renderer.render(pose, camera.depth, *writer.DEPTH_SIZE, color=on, instance=on)
            timing["render"] += time.perf_counter() - t0
            pending.append(pool.submit(encode, i, color, view))
            if len(pending) > 4:
                pending.pop(0).result()
        t0 = time.perf_counter()
        for job in pending:
            job.result()
        timing["encode"] += time.perf_counter() - t0
    return timing


def build_scene(
    out: Path, index: int, seed: int, config: SynthConfig, label_map, split: str = "train"
) -> dict:
    """Generate, segment, render and write one scene (`split` goes into its facts); returns its facts
    and timings."""
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
    tally = VisibleColors()
    timing.update(render_frames(tmp, room, poses, alignment, camera, rng, config, tally, (seed, index)))
    for info in infos:  # the color a camera sees; an object no frame shows keeps its surface color
        info.color_name = tally.color(info.object_id) or info.color_name

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
    from core.synth.annotations import SceneFacts

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
    out: str | Path,
    num_scenes: int,
    seed: int = 0,
    config: SynthConfig | None = None,
    progress: bool = True,
    val_from_first: int | None = None,
) -> list[dict]:
    """Write `num_scenes` scenes and their benchmark annotations under `out` (skipping finished scenes);
    `val_from_first` as in `dataset_splits` (None: what the folder was written with, else the plain split)."""
    from core.scene.labels import LabelMap

    out = Path(out)
    config = config or SynthConfig()
    label_map = LabelMap.from_tsv(LABEL_TABLE)
    if val_from_first is None:
        val_from_first = stored_val_from_first(out)
    types = [planned_room_type(i, seed) for i in range(num_scenes)]
    splits = dataset_splits(types, seed, config.val_fraction, val_from_first)
    reports = []
    bar = tqdm(range(num_scenes), desc="synth scenes", unit="scene", disable=not progress)
    for index in bar:
        scene_id = scene_id_of(index)
        bar.set_postfix_str(scene_id)
        if (out / "scans" / scene_id).is_dir() and (out / "synth" / f"{scene_id}.json").is_file():
            reports.append({"scene_id": scene_id, "skipped": True})
            continue
        report = build_scene(out, index, seed, config, label_map, splits[index])
        reports.append({"scene_id": scene_id, "skipped": False, "timing": report["timing"]})

    write_annotations(out, num_scenes, seed, config.val_fraction, val_from_first)
    return reports


def write_annotations(
    out: str | Path,
    num_scenes: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    val_from_first: int | None = None,
) -> list[str]:
    """(Re)write the split files, the label table and every benchmark file of scenes 0..N-1 from their
    saved facts (no rendering); a scene whose stored split disagrees with `dataset_splits` (a dataset
    grown by a later run) gets its facts file updated. N defaults to the facts files present;
    `val_from_first` to the folder's stored one. Returns the splits."""
    from core.synth.annotations import generate_benchmarks, write_benchmarks

    out = Path(out)
    if num_scenes is None:
        num_scenes = len(list((out / "synth").glob("scene*_00.json")))
    missing = [
        scene_id_of(i) for i in range(num_scenes) if not (out / "synth" / f"{scene_id_of(i)}.json").is_file()
    ]
    if not num_scenes or missing:
        raise FileNotFoundError(f"{out / 'synth'}: no facts file for scene(s) {missing or ['scene0000_00']}")
    facts = [load_facts(out, scene_id_of(i)) for i in range(num_scenes)]
    if val_from_first is None:
        val_from_first = stored_val_from_first(out)
    splits = dataset_splits([f.room_type for f in facts], seed, val_fraction, val_from_first)
    atomic_write_json(
        out / "synth" / "dataset.json", {"seed": seed, "val_from_first": val_from_first}, indent=1
    )
    for f, split in zip(facts, splits):
        if f.split != split:
            path = out / "synth" / f"{f.scene_id}.json"
            data = json.loads(path.read_text())
            atomic_write_json(path, dict(data, split=split), indent=1)
            f.split = split
    write_benchmarks(out, generate_benchmarks(facts, seed))
    shutil.copyfile(LABEL_TABLE, out / "scannetv2-labels.combined.tsv")
    return splits


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m core.synth.dataset --out DIR [--seed S]`: rewrite annotations from saved facts."""
    parser = argparse.ArgumentParser(description=write_annotations.__doc__)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-from-first", type=int, metavar="K", help="see `python -m core synth --help`")
    args = parser.parse_args(argv)
    try:
        splits = write_annotations(args.out, seed=args.seed, val_from_first=args.val_from_first)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(f"wrote annotations of {len(splits)} scenes ({splits.count('val')} val) under {args.out}")


if __name__ == "__main__":
    main()
