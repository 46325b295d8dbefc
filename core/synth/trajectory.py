"""A handheld-style camera path through a room, like a person scanning it with an RGB-D sensor.

The camera walks a smooth closed loop through the free middle of the room at about head height, first
looking out at the walls and the furniture along them, then back across the room, with a slow pitch and a
little hand shake. Everything is in the axis-aligned frame (floor z = 0, room in [0, W] x [0, D]).
The walk is the same whatever the number of frames: fewer frames sample it more sparsely (the gaze sways
as often per loop), so a short test trajectory still looks at every wall.
"""

from __future__ import annotations

import numpy as np

from core.scene.geometry import look_at
from core.scene.objects import ObjectInfo

REFERENCE_FRAMES = 240  # the walk's sway and bob periods below are counted in frames of a 240-frame scan


def _free_loop(extent: np.ndarray, obstacles: list[ObjectInfo], eye_height: float, n: int) -> np.ndarray:
    """(n, 2) xy points on a closed loop inset from the walls, pushed out of tall furniture."""
    w, d = float(extent[0]), float(extent[1])
    inset_x, inset_y = min(0.9, 0.3 * w), min(0.9, 0.3 * d)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    # A rounded rectangle (superellipse) follows the walls better than an ellipse in long rooms.
    rx, ry = w / 2 - inset_x, d / 2 - inset_y
    c, s = np.cos(t), np.sin(t)
    xy = np.stack(
        [w / 2 + rx * np.sign(c) * np.abs(c) ** 0.6, d / 2 + ry * np.sign(s) * np.abs(s) ** 0.6], axis=1
    )
    centre = np.array([w / 2, d / 2])
    tall = [o for o in obstacles if o.top > eye_height - 0.3 and o.bottom < eye_height]
    for _ in range(20):  # pull points towards the centre until they clear every tall object
        moved = False
        for o in tall:
            lo = o.center[:2] - o.size[:2] / 2 - 0.35
            hi = o.center[:2] + o.size[:2] / 2 + 0.35
            inside = np.all((xy > lo) & (xy < hi), axis=1)
            if inside.any():
                xy[inside] = centre + (xy[inside] - centre) * 0.85
                moved = True
        if not moved:
            break
    return xy


def handheld_trajectory(
    extent: np.ndarray,
    obstacles: list[ObjectInfo],
    rng: np.random.Generator,
    num_frames: int = 240,
) -> np.ndarray:
    """(num_frames, 4, 4) camera-to-world poses (OpenCV axes) in the axis-aligned frame."""
    eye_height = rng.uniform(1.35, 1.6)
    path = _free_loop(np.asarray(extent), obstacles, eye_height, num_frames)
    # A slow walk: smooth the loop and start at a random place on it.
    path = np.roll(path, rng.integers(num_frames), axis=0)
    w, d = float(extent[0]), float(extent[1])
    centre = np.array([w / 2, d / 2])

    k = np.arange(num_frames)
    # Mostly look across the room (objects along the far walls and in the middle, at a useful distance);
    # a shorter stretch looks down at the furniture beside the path.
    outward_part = int(num_frames * 0.25)
    poses = np.empty((num_frames, 4, 4))
    sway = rng.uniform(0.5, 0.9)  # how far (rad) the gaze swings left and right of its main direction
    phase = rng.uniform(0, 2 * np.pi)
    clock = REFERENCE_FRAMES / num_frames  # reference frames per frame
    for i in k:
        t = i * clock
        eye = np.array([*path[i], eye_height + 0.03 * np.sin(t * 0.3 + phase)])
        radial = path[i] - centre
        radial = radial / (np.linalg.norm(radial) + 1e-9)
        base = np.arctan2(radial[1], radial[0])
        down = np.deg2rad(38) if i < outward_part else np.deg2rad(20)
        if i >= outward_part:  # look back across the room
            base += np.pi
        yaw = base + sway * np.sin(2 * np.pi * t / 55.0 + phase)
        pitch = -down + np.deg2rad(8) * np.sin(2 * np.pi * t / 37.0 + 2 * phase)
        gaze = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        jitter = rng.normal(0, 0.004, 3)  # hand shake
        poses[i] = look_at(eye + jitter, eye + gaze + rng.normal(0, 0.01, 3))
    return poses
