"""A cheap RGB-D sensor model for synthetic frames, so that models trained on the demo see real-looking data.

Real ScanNet frames come from a structured-light sensor and a rolling consumer camera: depth is noisy
(more so far away and at grazing angles), quantised in disparity, and missing on far, dark, shiny and
grazing surfaces and at object borders; colour frames are blurred by the hand's motion and drift in
exposure and white balance. A ray-cast render has none of that, so `dataset.render_frames` passes each
frame through the functions here (unless `SynthConfig.sensor` is off, for tests that need exact depth).

Depth noise follows Nguyen, Izadi and Lovell (2012) for a Kinect-style sensor:
    sigma(z, theta) = 0.0012 + 0.0019 (z - 0.4)^2 + 0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2   [m]
then depth is quantised in disparity (1/8 pixel at a focal-length x baseline of 43.5 px m, ~2.9 mm at 1 m,
~4.6 cm at 4 m) and finally to whole millimetres. Every function is vectorised numpy (a few ms per frame)
and takes its random numbers from a generator the caller seeds per (seed, scene, frame).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.scene.geometry import project, world_to_camera

MIN_RANGE_M = 0.4  # structured light sees nothing closer
# Far dropouts rise quadratically from FAR_START_M (0) to MAX_RANGE_M (1): a wall at 3 m is all there, at
# 4 m about one pixel in nine is missing, at 4.5 m almost half, and nothing comes back beyond 5 m, as with
# ScanNet's Structure sensor.
FAR_START_M = 3.5
MAX_RANGE_M = 5.0
GRAZING_START_DEG = 75.0  # dropout probability rises from here to 1 at GRAZING_END_DEG
GRAZING_END_DEG = 87.0
DISPARITY_FB = 43.5  # focal length (px) x baseline (m) of the disparity quantiser
DISPARITY_STEP = 1.0 / 8.0  # sub-pixel disparity resolution
BASE_DROPOUT = 0.002  # scattered missing pixels anywhere
# Dropout probability on shiny surfaces, by ScanNet label: glass, mirrors and screens reflect the pattern
# away; glossy enamel and metal lose part of it. The renderer has no materials, so the label stands in.
SHINY = {
    "window": 0.6,
    "mirror": 0.6,
    "monitor": 0.5,
    "tv": 0.5,
    "laptop": 0.4,
    "whiteboard": 0.25,
    "refrigerator": 0.25,
    "microwave": 0.25,
    "sink": 0.25,
    "toilet": 0.2,
    "bathtub": 0.2,
}
MAX_BLUR_PX = 14.0  # motion blur cap at the full colour resolution
EXPOSURE_FRACTION = 0.12  # share of the frame-to-frame motion the shutter is open for


def depth_sigma(z: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
    """Axial noise standard deviation (m) at depth `z` (m) and incidence angle `theta` (rad)."""
    z = np.asarray(z, dtype=np.float32)
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
    if theta is not None:
        t = np.minimum(np.asarray(theta, dtype=np.float32), np.float32(np.deg2rad(85.0)))
        sigma = sigma + 0.0001 / np.sqrt(np.maximum(z, 1e-3)) * t**2 / (np.pi / 2 - t) ** 2
    return sigma


def incidence_angle(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) angle (rad) between each pixel's viewing ray and the surface normal estimated from the depth
    map (central differences of back-projected points); pi/2 where depth is missing or the neighbourhood
    straddles a depth edge, which the dropout model then treats as grazing (edge dropouts)."""
    z = np.asarray(depth, dtype=np.float32)
    h, w = z.shape
    x = ((np.arange(w, dtype=np.float32) - np.float32(K[0, 2])) / np.float32(K[0, 0]))[None, :] * z
    y = ((np.arange(h, dtype=np.float32) - np.float32(K[1, 2])) / np.float32(K[1, 1]))[:, None] * z
    pts = (x, y, z)
    du = [np.gradient(p, axis=1) for p in pts]
    dv = [np.gradient(p, axis=0) for p in pts]
    n = (du[1] * dv[2] - du[2] * dv[1], du[2] * dv[0] - du[0] * dv[2], du[0] * dv[1] - du[1] * dv[0])
    dot = np.abs(n[0] * x + n[1] * y + n[2] * z)
    norm = np.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2) * np.sqrt(x**2 + y**2 + z**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, dot / norm, 0.0)
    theta = np.arccos(np.clip(cos, 0.0, 1.0)).astype(np.float32)
    # a neighbour with no depth, or one far behind, means no surface to measure an angle on
    padded = np.pad(z, 1, mode="edge")
    around = [z, padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    near, far = np.minimum.reduce(around), np.maximum.reduce(around)
    theta[(near <= 0) | (far - near > 0.05 * z + 0.02)] = np.float32(np.pi / 2)
    return theta


def shiny_probability(instance: np.ndarray, labels: list[str]) -> np.ndarray:
    """(H, W) dropout probability of shiny surfaces from an instance map (-1: none) and each instance's
    label (`SHINY`; 0 for matte ones)."""
    table = np.array([SHINY.get(label, 0.0) for label in labels] + [0.0], dtype=np.float32)
    inst = np.asarray(instance)
    return table[np.where((inst >= 0) & (inst < len(labels)), inst, len(labels))]


def dropout_probability(
    z: np.ndarray, theta: np.ndarray, brightness: np.ndarray | None, shiny: np.ndarray | None = None
) -> np.ndarray:
    """(H, W) probability that the sensor returns no depth: out of range, grazing angles and depth edges,
    very dark surfaces (too little reflected pattern) and shiny ones (`shiny`, from `shiny_probability`)."""
    far = np.clip((z - FAR_START_M) / (MAX_RANGE_M - FAR_START_M), 0, 1) ** 2
    deg = np.rad2deg(theta)
    grazing = np.clip((deg - GRAZING_START_DEG) / (GRAZING_END_DEG - GRAZING_START_DEG), 0, 1)
    p = np.maximum(far, grazing) + BASE_DROPOUT
    if brightness is not None:
        b = np.asarray(brightness, dtype=np.float32)
        p = p + 0.7 * np.clip((0.12 - b) / 0.12, 0, 1)
    if shiny is not None:
        p = p + shiny
    p[(z < MIN_RANGE_M) | (z > MAX_RANGE_M)] = 1.0
    return np.clip(p, 0, 1).astype(np.float32)


def _blobs(rng: np.random.Generator, shape: tuple[int, int], cell: int = 12) -> np.ndarray:
    """A smooth uniform-ish random field in [0, 1): holes on a surface come in patches, not salt."""
    h, w = shape
    coarse = (rng.random((h // cell + 2, w // cell + 2)) * 255).astype(np.uint8)
    up = Image.fromarray(coarse).resize((w + 2 * cell, h + 2 * cell), Image.BILINEAR)
    field = np.asarray(up, dtype=np.float32)[cell : cell + h, cell : cell + w] / 255.0
    # bilinear blending pulls values towards 0.5: stretch the field back to roughly uniform
    return np.clip((field - 0.5) * 1.6 + 0.5, 0, 0.999)


def sensor_depth(
    depth: np.ndarray,
    K: np.ndarray,
    rng: np.random.Generator,
    brightness: np.ndarray | None = None,
    shiny: np.ndarray | None = None,
) -> np.ndarray:
    """What a structured-light sensor reports for an exact (H, W) z-depth map (m, 0 = no hit): noisy,
    disparity-quantised, rounded to mm, 0 where the measurement drops out. `brightness` (H, W) in [0, 1]
    is the surface's rendered brightness at the depth pixels (None: no dark dropouts); `shiny` (H, W) the
    extra dropout probability of shiny surfaces (None: none)."""
    z = np.asarray(depth, dtype=np.float32)
    valid = z > 0
    theta = incidence_angle(z, K)
    noisy = z + rng.standard_normal(z.shape, dtype=np.float32) * depth_sigma(z, theta)
    safe = np.where(valid & (noisy > 0.05), noisy, np.float32(1.0))
    disparity = np.round(DISPARITY_FB / safe / DISPARITY_STEP) * DISPARITY_STEP
    quantised = DISPARITY_FB / np.maximum(disparity, DISPARITY_STEP)
    p = dropout_probability(z, theta, brightness, shiny)
    # surface-driven dropouts (dark, shiny) come in patches; range and angle ones pixel by pixel
    draw = rng.random(z.shape, dtype=np.float32)
    surface = np.zeros(z.shape, dtype=bool)
    if brightness is not None:
        surface |= brightness < 0.12
    if shiny is not None:
        surface |= shiny > 0
    if surface.any():
        draw = np.where(surface, _blobs(rng, z.shape), draw)
    keep = valid & (draw >= p)
    out = np.where(keep, np.round(quantised * 1000.0) / 1000.0, 0.0)
    return out.astype(np.float32)


def image_motion(
    pose_prev: np.ndarray,
    pose_next: np.ndarray,
    pose: np.ndarray,
    K: np.ndarray,
    span: int = 2,
    depth_m: float = 2.0,
) -> np.ndarray:
    """Image-space motion (px per frame, (dx, dy)) of the point `depth_m` ahead of the principal point of
    `pose`, seen from poses `span` frames apart around it: the camera's apparent speed, rotation and
    translation both."""
    point = pose[:3, :3] @ np.array([0.0, 0.0, depth_m]) + pose[:3, 3]

    def pixel(c2w: np.ndarray) -> np.ndarray:
        uv, z = project(world_to_camera(point[None], c2w), K)
        return uv[0] if z[0] > 1e-3 else np.array([np.nan, np.nan])

    flow = (pixel(pose_next) - pixel(pose_prev)) / max(span, 1)
    return np.nan_to_num(flow)


def blur_vector(flow_px: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Motion-blur streak (dx, dy) in pixels of an image at `scale` of full size, for a frame-to-frame
    image motion `flow_px` at full size: EXPOSURE_FRACTION of it, capped at MAX_BLUR_PX."""
    v = np.asarray(flow_px, dtype=np.float64) * EXPOSURE_FRACTION
    length = float(np.hypot(*v))
    if length > MAX_BLUR_PX:
        v *= MAX_BLUR_PX / length
    return v * scale


def color_drift(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(num_frames, 3) smooth per-channel RGB gains: auto-exposure wandering by ~+-15% and a white
    balance that drifts by a few percent, as a handheld camera does moving between light and shade."""
    k = np.arange(num_frames, dtype=np.float64)[:, None]
    periods = rng.uniform(40, 120, (1, 4))
    phases = rng.uniform(0, 2 * np.pi, (1, 4))
    waves = np.sin(2 * np.pi * k / periods + phases)
    exposure = np.exp(0.10 * waves[:, 0] + 0.05 * waves[:, 1])
    red = 1 + 0.035 * waves[:, 2]
    blue = 1 - 0.035 * waves[:, 3]
    return np.stack([exposure * red, exposure, exposure * blue], axis=1).astype(np.float32)


def sensor_color(image: np.ndarray, blur_px: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 frame with a directional box blur along `blur_px` (dx, dy; length in pixels of
    this image) and per-channel `gains` applied. Background (pure black, no hit) is treated like any
    pixel, as a camera would."""
    img = np.asarray(image)
    dx, dy = float(blur_px[0]), float(blur_px[1])
    n = int(round(np.hypot(dx, dy)))
    if n >= 2:
        offsets = np.linspace(-0.5, 0.5, n + 1)
        shifts = sorted({(int(round(t * dy)), int(round(t * dx))) for t in offsets})
        pad = max(max(abs(a), abs(b)) for a, b in shifts)
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        h, w = img.shape[:2]
        acc = np.zeros(img.shape, dtype=np.uint16)
        for sy, sx in shifts:
            acc += padded[pad + sy : pad + sy + h, pad + sx : pad + sx + w]
        out = acc.astype(np.float32) * (np.asarray(gains, dtype=np.float32) / len(shifts))
    else:
        out = img.astype(np.float32) * np.asarray(gains, dtype=np.float32)
    out += 0.5
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def jpeg_quality(rng: np.random.Generator, ceiling: int) -> int:
    """A per-frame JPEG quality between 72 and 88 (never above `ceiling`): mild compression artefacts."""
    return int(min(ceiling, rng.integers(72, 89)))
