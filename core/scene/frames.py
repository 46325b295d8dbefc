"""Posed RGB-D frames of a scan, in both layouts people have on disk (REFERENCE §1).

- SensReader export: `color/<i>.jpg`, `depth/<i>.png` (uint16 mm), `pose/<i>.txt` (camera-to-world),
  `intrinsic/intrinsic_color.txt`, `intrinsic/intrinsic_depth.txt`.
- EmbodiedScan / Video-3D-LLM `posed_images/<scene>/`: `00000.jpg`, `00000.png`, `00000.txt`,
  `intrinsic.txt` (color), `depth_intrinsic.txt`.

Poses are read when the frame set is opened (they are tiny and needed to skip broken frames); images are
read only when asked for. Poses on disk are in the unaligned mesh frame; `Frame.pose` is composed with the
scene's axis alignment so that aligned points project onto the right pixels.

Validation (see `checks`): unusable intrinsics fail the whole frame set with a `SceneError` naming the
file (every frame depends on them); a bad pose only drops its frame, with a counted reason, because real
ScanNet scans contain frames whose tracking was lost (poses of -inf) among thousands of good ones. An
image that cannot be decoded (missing, truncated, not an image) is a `SceneError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.scene.checks import check_intrinsics, rigid_problem
from core.scene.errors import SceneError

SENSREADER = "sensreader"
POSED_IMAGES = "posed_images"

# What Pillow raises on a broken file: OSError for truncation and unknown formats, SyntaxError and
# ValueError from some format plugins, DecompressionBombError for absurd pixel counts.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_matrix(path: Path, rows: int = 4) -> np.ndarray:
    """A whitespace-separated matrix text file (4x4 pose or intrinsic)."""
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise SceneError(path, f"cannot read matrix ({exc})") from exc
    if values.size == rows * rows:
        return values.reshape(rows, rows)
    if values.size == 9:
        return values.reshape(3, 3)
    raise SceneError(path, f"expected {rows * rows} or 9 numbers, found {values.size}")


@dataclass
class Frame:
    """One posed RGB-D frame; images load on demand."""

    frame_id: str
    color_path: Path
    depth_path: Path
    pose: np.ndarray  # camera-to-world in the axis-aligned frame
    pose_raw: np.ndarray  # camera-to-world as on disk (unaligned mesh frame)

    def color(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the color camera's resolution."""
        try:
            with Image.open(self.color_path) as im:
                return np.asarray(im.convert("RGB"))
        except IMAGE_ERRORS as exc:
            raise SceneError(self.color_path, f"cannot read color image ({exc})") from exc

    def depth(self) -> np.ndarray:
        """(H, W) float32 depth in metres at the depth camera's resolution; 0 = no measurement."""
        return self.depth_mm().astype(np.float32) / 1000.0

    def depth_mm(self) -> np.ndarray:
        """The depth image as stored: (H, W) integer millimetres (cheaper when only a few pixels are read)."""
        try:
            with Image.open(self.depth_path) as im:
                raw = np.asarray(im)
        except IMAGE_ERRORS as exc:
            raise SceneError(self.depth_path, f"cannot read depth image ({exc})") from exc
        if raw.ndim != 2:
            raise SceneError(self.depth_path, f"depth must be a single-channel image, got shape {raw.shape}")
        return raw


@dataclass
class FrameSet:
    """The valid frames of a scan, plus what was skipped and why."""

    layout: str
    root: Path
    color_intrinsics: np.ndarray  # 3x3, at color resolution
    depth_intrinsics: np.ndarray  # 3x3, at depth resolution
    frames: list[Frame]
    skipped: dict[str, str] = field(default_factory=dict)  # frame id -> reason

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def color_size(self) -> tuple[int, int]:
        """(width, height) of the color images, from the first frame's header."""
        return _image_size(self.frames[0].color_path) if self.frames else (0, 0)

    @property
    def depth_size(self) -> tuple[int, int]:
        return _image_size(self.frames[0].depth_path) if self.frames else (0, 0)

    def skipped_reasons(self) -> dict[str, int]:
        """How many frames were skipped for each reason."""
        counts: dict[str, int] = {}
        for reason in self.skipped.values():
            counts[reason] = counts.get(reason, 0) + 1
        return counts


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except IMAGE_ERRORS as exc:
        raise SceneError(path, f"cannot read image header ({exc})") from exc


def _frame_sort_key(stem: str) -> tuple[int, str]:
    return (int(stem), stem) if stem.isdigit() else (1 << 62, stem)


def find_frames(scene_dir: Path, scene_id: str, frames_dir: Path | None = None) -> tuple[str, Path] | None:
    """Locate a scan's frames: `(layout, folder)`, or None when the scan has none.

    Looked for, in order: `frames_dir` (a `posed_images`-style root holding `<scene>/`, or one scene's
    folder in either layout); a SensReader export in the scene folder or one of its direct subfolders;
    `posed_images/<scene>/` beside the `scans/` folder that holds the scene.
    """
    candidates: list[Path] = []
    if frames_dir is not None:
        candidates += [frames_dir / scene_id, frames_dir]
    candidates.append(scene_dir)
    if scene_dir.is_dir():
        candidates += sorted(p for p in scene_dir.iterdir() if p.is_dir())
    candidates += [
        scene_dir.parent.parent / "posed_images" / scene_id,
        scene_dir.parent / "posed_images" / scene_id,
    ]
    for folder in candidates:
        if (folder / "pose").is_dir() and (folder / "intrinsic").is_dir():
            return SENSREADER, folder
        if (folder / "intrinsic.txt").is_file() and (folder / "depth_intrinsic.txt").is_file():
            return POSED_IMAGES, folder
    return None


def read_intrinsics(path: Path) -> np.ndarray:
    """A 3x3 (or 4x4 ScanNet) intrinsic file as a validated 3x3 matrix."""
    return check_intrinsics(read_matrix(path)[:3, :3], path)


def load_frames(layout: str, folder: Path, axis_alignment: np.ndarray) -> FrameSet:
    """Read the intrinsics and poses of every frame; skip (and count) frames that cannot be used."""
    if layout == SENSREADER:
        color_K = read_intrinsics(folder / "intrinsic" / "intrinsic_color.txt")
        depth_K = read_intrinsics(folder / "intrinsic" / "intrinsic_depth.txt")
        stems = [p.stem for p in (folder / "pose").glob("*.txt")]

        def paths(stem: str) -> tuple[Path, Path, Path]:
            return (
                folder / "color" / f"{stem}.jpg",
                folder / "depth" / f"{stem}.png",
                folder / "pose" / f"{stem}.txt",
            )

    elif layout == POSED_IMAGES:
        color_K = read_intrinsics(folder / "intrinsic.txt")
        depth_K = read_intrinsics(folder / "depth_intrinsic.txt")
        stems = [p.stem for p in folder.glob("*.txt") if p.stem.isdigit()]

        def paths(stem: str) -> tuple[Path, Path, Path]:
            return folder / f"{stem}.jpg", folder / f"{stem}.png", folder / f"{stem}.txt"

    else:
        raise ValueError(f"unknown frame layout {layout!r}")

    frames: list[Frame] = []
    skipped: dict[str, str] = {}
    for stem in sorted(stems, key=_frame_sort_key):
        color_path, depth_path, pose_path = paths(stem)
        try:
            pose_raw = read_matrix(pose_path)
        except SceneError:
            skipped[stem] = "unreadable pose"
            continue
        if pose_raw.shape != (4, 4):
            skipped[stem] = "pose is not 4x4"
        elif not np.isfinite(pose_raw).all():
            skipped[stem] = "non-finite pose"
        elif rigid_problem(pose_raw) is not None:  # singular, scaled, sheared or mirrored
            skipped[stem] = "non-rigid pose"
        elif not color_path.is_file():
            skipped[stem] = "color image missing"
        elif not depth_path.is_file():
            skipped[stem] = "depth image missing"
        else:
            frames.append(Frame(stem, color_path, depth_path, axis_alignment @ pose_raw, pose_raw))
    return FrameSet(layout, folder, color_K, depth_K, frames, skipped)
