"""The contact sheet: one labelled row per scene, colour beside depth, holes black, near brighter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.synth.preview import (
    LABEL_HEIGHT,
    depth_picture,
    objects_in_view,
    pick_frames,
    sample_frames,
    write_contact_sheet,
)


def test_depth_picture_shows_holes_black_and_near_brighter_than_far() -> None:
    depth = np.array([[0, 500, 1000, 3000, 9000]], dtype=np.uint16)
    grey = np.asarray(depth_picture(depth))[0, :, 0]
    assert grey[0] == 0
    assert grey[1] > grey[2] > grey[3] >= grey[4] > 0


def test_frames_are_spread_over_the_trajectory(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"{i}.jpg").touch()
    picks = [int(f) for f in sample_frames(tmp_path, 3)]
    assert picks == sorted(picks) and len(picks) == 3
    assert picks[0] > 0 and picks[-1] < 39 and min(np.diff(picks)) >= 8


def test_contact_sheet_has_a_row_per_scene_with_colour_and_depth(synth_root: Path, tmp_path: Path) -> None:
    out = write_contact_sheet(synth_root, tmp_path / "sheet.jpg", frames_per_scene=2, width=160)
    with Image.open(out) as sheet:
        pixels = np.asarray(sheet.convert("RGB")).astype(int)
    scenes = sorted(p.name for p in (synth_root / "scans").iterdir() if p.is_dir())
    assert pixels.shape == (len(scenes) * (120 + LABEL_HEIGHT), 4 * 160, 3)
    first = pixels[LABEL_HEIGHT : LABEL_HEIGHT + 120]
    colour, depth = first[:, :160], first[:, 160:320]
    assert colour.std() > 10  # a rendered room, not a blank tile
    inner = depth[8:-8, 8:-8]  # JPEG bleeds colour across the tile border
    assert np.abs(inner[..., 0] - inner[..., 2]).max() <= 12  # depth is drawn in grey


def test_contact_sheet_of_an_empty_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    with pytest.raises(FileNotFoundError, match="no scenes"):
        write_contact_sheet(tmp_path, tmp_path / "sheet.jpg")


def test_each_stretch_shows_its_most_furnished_frame(synth_root: Path) -> None:
    """From each stretch of the trajectory the sheet takes the frame with the most objects in view, so a
    row shows the room rather than a bare wall; the picks stay spread over the trajectory."""
    scene = sorted(p.name for p in (synth_root / "scans").iterdir() if p.is_dir())[0]
    folder = synth_root / "scans" / scene
    facts = json.loads((synth_root / "synth" / f"{scene}.json").read_text())
    ids = sorted(int(p.stem) for p in (folder / "color").glob("*.jpg"))
    picks = pick_frames(synth_root, scene, 3)
    assert len(picks) == 3 and [int(p) for p in picks] == sorted(int(p) for p in picks)
    for pick, stretch in zip(picks, np.array_split(np.array(ids), 3)):
        middle = stretch[len(stretch) // 5 : len(stretch) - len(stretch) // 5]
        assert int(pick) in middle
        best = max(objects_in_view(folder, facts, str(i)) for i in middle)
        assert objects_in_view(folder, facts, pick) == best > 0
    assert min(np.diff([int(p) for p in picks])) >= 2 * (len(ids) // 3 // 5)  # never neighbours
