"""A contact sheet of generated frames, so that a person can look at what the models will learn from.

One row per scene (labelled with its id and room type), a few frames spread over the trajectory, each as
its colour image beside its depth map (near = bright, missing depth = black). From each stretch of the
trajectory the frame that shows the most objects is taken (from the generator's facts and the poses), so
that a row shows the room rather than a bare wall. Written by
`python -m core synth --out DIR --preview [FILE]`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.atomic import atomic_write
from core.scene.scannet import list_scenes

DEPTH_RANGE_MM = (400, 5000)  # shown from near (white) to far (dark grey); 0 (no measurement) is black
LABEL_HEIGHT = 22


def depth_picture(depth_mm: np.ndarray) -> Image.Image:
    """A grey-scale picture of a depth map in millimetres: missing pixels black, so holes stand out."""
    near, far = DEPTH_RANGE_MM
    scaled = 1.0 - (np.clip(depth_mm.astype(np.float32), near, far) - near) / (far - near)
    grey = (60 + 195 * scaled).astype(np.uint8)
    grey[depth_mm == 0] = 0
    return Image.fromarray(grey).convert("RGB")


def sample_frames(color_dir: Path, count: int) -> list[str]:
    """`count` frame ids spread evenly over the trajectory (SensReader layout: ids are not zero-padded)."""
    ids = sorted(int(p.stem) for p in color_dir.glob("*.jpg"))
    if not ids:
        return []
    picks = np.linspace(0, len(ids) - 1, num=min(count, len(ids)) + 2)[1:-1].round().astype(int)
    return [str(ids[i]) for i in dict.fromkeys(picks.tolist())]


def objects_in_view(folder: Path, facts: dict, frame: str) -> int:
    """How many non-structural objects have their box centre in the colour frame, 0.5 to 4 m ahead."""
    pose = np.loadtxt(folder / "pose" / f"{frame}.txt")
    if not np.all(np.isfinite(pose)):
        return -1
    K = np.loadtxt(folder / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    align = np.asarray(facts.get("axis_alignment", np.eye(4)), dtype=np.float64)
    world_to_cam = np.linalg.inv(align @ pose)
    centres = np.array(
        [o["box"][:3] for o in facts["objects"] if o["label"] not in ("wall", "floor", "door", "window")]
    )
    if not len(centres):
        return 0
    cam = centres @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * cam[:, 0] / z + K[0, 2]
        v = K[1, 1] * cam[:, 1] / z + K[1, 2]
    w, h = 2 * K[0, 2], 2 * K[1, 2]
    return int(np.sum((z > 0.5) & (z < 4.0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)))


def pick_frames(root: Path, scene_id: str, count: int) -> list[str]:
    """`count` frames, one from the middle three fifths of each of `count` equal stretches of the trajectory
    (so that two picks are never neighbours): the one that shows the most objects (`objects_in_view`);
    evenly spread ones when the facts are missing."""
    folder = root / "scans" / scene_id
    facts_file = root / "synth" / f"{scene_id}.json"
    ids = sorted(int(p.stem) for p in (folder / "color").glob("*.jpg"))
    if not facts_file.is_file() or len(ids) < 2 * count:
        return sample_frames(folder / "color", count)
    with open(facts_file, encoding="utf-8") as f:
        facts = json.load(f)
    picks = []
    for stretch in np.array_split(np.array(ids), count):
        middle = stretch[len(stretch) // 5 : len(stretch) - len(stretch) // 5]
        scores = [objects_in_view(folder, facts, str(i)) for i in middle]
        picks.append(str(middle[int(np.argmax(scores))]))
    return picks


def room_type(root: Path, scene_id: str) -> str:
    facts = root / "synth" / f"{scene_id}.json"
    if not facts.is_file():
        return "?"
    with open(facts, encoding="utf-8") as f:
        return str(json.load(f).get("room_type", "?"))


def contact_sheet(root: Path, frames_per_scene: int = 3, width: int = 240) -> Image.Image:
    """The sheet for a dataset root written by `core synth` (scans/ and synth/ facts)."""
    scans = root / "scans"
    scene_ids = list_scenes(scans)
    if not scene_ids:
        raise FileNotFoundError(f"{scans}: no scenes to preview")
    height = width * 3 // 4
    columns = 2 * frames_per_scene
    sheet = Image.new("RGB", (columns * width, len(scene_ids) * (height + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, scene_id in enumerate(scene_ids):
        top = row * (height + LABEL_HEIGHT)
        folder = scans / scene_id
        frames = pick_frames(root, scene_id, frames_per_scene)
        label = f"{scene_id} · {room_type(root, scene_id)} · frames {', '.join(frames)}"
        draw.text((4, top + 4), label, "black")
        for i, frame in enumerate(frames):
            with Image.open(folder / "color" / f"{frame}.jpg") as color:
                sheet.paste(color.convert("RGB").resize((width, height)), (2 * i * width, top + LABEL_HEIGHT))
            with Image.open(folder / "depth" / f"{frame}.png") as depth:
                picture = depth_picture(np.asarray(depth)).resize((width, height), Image.NEAREST)
            sheet.paste(picture, ((2 * i + 1) * width, top + LABEL_HEIGHT))
    return sheet


def write_contact_sheet(root: Path, out: Path, frames_per_scene: int = 3, width: int = 240) -> Path:
    """Write the sheet as a JPEG (atomically) and return its path."""
    sheet = contact_sheet(root, frames_per_scene, width)
    return atomic_write(out, lambda f: sheet.save(f, "JPEG", quality=80))
