"""Image operations of stages 1 and 2: isolated crops, highlighted frames, and how they are stored.

Everything works on frames already downscaled to the pipeline's work resolution, and only on the pixels
around the object where it can, so a scene's few hundred crops stay cheap.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from core.atomic import atomic_write_bytes
from core.scene.errors import SceneError
from core.scene.frames import IMAGE_ERRORS

HIGHLIGHT_RGB = np.array([255, 40, 40], dtype=np.float32)
BACKGROUND_GRAY = 128


def load_color(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 RGB of a color frame resized to `size` = (w, h); JPEG decodes at reduced scale.

    A frame that cannot be decoded (truncated, not an image) is a `SceneError` naming it, so the scene's
    entry in `failed/` says which file to fix."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", size)
            im = im.convert("RGB")
            if im.size != size:
                im = im.resize(size, Image.BILINEAR)
            return np.asarray(im)
    except IMAGE_ERRORS as exc:
        raise SceneError(path, f"cannot read color image ({type(exc).__name__}: {exc})") from exc


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end-exclusive, of the True pixels of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def expand_box(
    box: tuple[int, int, int, int], scale: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """A square-ish box grown by `scale` around the centre of `box`, clipped to the image."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0, 8) * scale / 2
    return (
        max(0, int(np.floor(cx - half))),
        max(0, int(np.floor(cy - half))),
        min(width, int(np.ceil(cx + half))),
        min(height, int(np.ceil(cy + half))),
    )


def isolated_crop(
    color: np.ndarray,
    mask: np.ndarray,
    box: tuple[int, int, int, int],
    scale: float,
    background: str,
    max_side: int,
) -> np.ndarray:
    """The object's pixels kept and the rest suppressed (flat gray, or blurred and dimmed), cropped."""
    x0, y0, x1, y1 = expand_box(box, scale, color.shape[1], color.shape[0])
    crop = color[y0:y1, x0:x1].astype(np.float32)
    keep = mask[y0:y1, x0:x1, None]
    if background == "blur":
        suppressed = ndimage.gaussian_filter(crop, sigma=(4, 4, 0)) * 0.5 + BACKGROUND_GRAY * 0.25
    else:
        suppressed = np.full_like(crop, BACKGROUND_GRAY)
    out = np.where(keep, crop, suppressed).astype(np.uint8)
    return downscale(out, max_side)


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so that the longest side is at most `max_side` (never enlarges)."""
    h, w = image.shape[:2]
    factor = max_side / max(h, w)
    if factor >= 1:
        return image
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def highlighted_frame(
    color: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], style: str
) -> np.ndarray:
    """The whole frame with the object marked by an outline, a tint or its 2D box."""
    out = color.copy()
    x0, y0, x1, y1 = box
    if style == "box":
        t = 3
        for xs, ys in (
            (slice(x0, x1), slice(y0, min(y0 + t, y1))),
            (slice(x0, x1), slice(max(y1 - t, y0), y1)),
            (slice(x0, min(x0 + t, x1)), slice(y0, y1)),
            (slice(max(x1 - t, x0), x1), slice(y0, y1)),
        ):
            out[ys, xs] = HIGHLIGHT_RGB.astype(np.uint8)
        return out
    # Work on the object's box plus a margin only.
    pad = 3
    ys = slice(max(0, y0 - pad), min(color.shape[0], y1 + pad))
    xs = slice(max(0, x0 - pad), min(color.shape[1], x1 + pad))
    local = mask[ys, xs]
    region = out[ys, xs].astype(np.float32)
    if style == "tint":
        region[local] = 0.5 * region[local] + 0.5 * HIGHLIGHT_RGB
    else:  # outline: a band just outside the object's silhouette
        ring = ndimage.binary_dilation(local, iterations=2) & ~local
        region[ring] = HIGHLIGHT_RGB
    out[ys, xs] = region.astype(np.uint8)
    return out


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def save_jpeg(path: Path, image: np.ndarray) -> None:
    """Atomic JPEG write: a killed run never leaves half an image."""
    atomic_write_bytes(path, encode_jpeg(image))
