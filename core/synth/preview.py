"""A contact sheet of generated frames, so that a person can look at what the models will learn from.

One row per scene (labelled with its id and room type), a few frames spread over the trajectory, each as
its colour image beside its depth map (near = bright, missing depth = black). Written by
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
        frames = sample_frames(folder / "color", frames_per_scene)
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
    return atomic_write(out, lambda f: sheet.save(f, "JPEG", quality=88))
