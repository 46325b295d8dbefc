"""The synthetic RGB-D sensor model (`core.synth.sensor`): its statistics on controlled planes, and
on a real generated room next to the exact render of the same poses."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.config import AnnotateConfig
from core.annotate.scene_runner import annotate_scene
from core.scene.render import MeshRenderer
from core.synth import sensor, writer
from core.synth.dataset import SynthConfig, generate_dataset, object_infos, render_color, render_frames
from core.synth.layout import generate_room
from core.synth.trajectory import handheld_trajectory

K = np.array([[575.0, 0, 319.5], [0, 575.0, 239.5], [0, 0, 1]])
FRAMES = 12


def _plane(z0: float, tilt_deg: float = 0.0) -> np.ndarray:
    """z-depth (480, 640) of a plane through (0, 0, z0) whose normal is tilted `tilt_deg` about the y axis:
    every pixel sees it at roughly that incidence angle near the centre column."""
    a = np.deg2rad(tilt_deg)
    x = (np.arange(640) - K[0, 2]) / K[0, 0]
    denom = np.sin(a) * x + np.cos(a)
    z = np.where(denom > 0.02, z0 * np.cos(a) / np.maximum(denom, 0.02), 0.0)
    return np.broadcast_to(z, (480, 640)).astype(np.float32).copy()


def _missing(measured: np.ndarray, exact: np.ndarray, mask: np.ndarray | None = None) -> float:
    m = exact > 0 if mask is None else (exact > 0) & mask
    return float(((measured == 0) & m).sum() / max(m.sum(), 1))


# ------------------------------------------------------------------------------------ controlled planes


def test_noise_on_a_plane_follows_the_model_and_stays_under_1cm_at_1m():
    rng = np.random.default_rng(0)
    err = {}
    for z0 in (1.0, 2.0, 3.0):
        exact = _plane(z0, 5.0)  # a slight tilt: depths sweep across many disparity steps
        measured = sensor.sensor_depth(exact, K, rng)
        ok = measured > 0
        err[z0] = measured[ok] - exact[ok]
    assert np.median(np.abs(err[1.0])) < 0.01
    assert 0.5 * sensor.depth_sigma(1.0) < err[1.0].std() < 2.5 * sensor.depth_sigma(1.0)
    assert abs(np.median(err[1.0])) < 0.002, "noise is unbiased"
    spread = [np.median(np.abs(err[z])) for z in (1.0, 2.0, 3.0)]
    assert spread[0] < spread[1] < spread[2] and spread[2] > 3 * spread[0], spread


def test_depth_is_quantised_to_mm_and_in_disparity_steps_far_away():
    rng = np.random.default_rng(1)
    near = sensor.sensor_depth(_plane(1.0), K, rng)
    assert np.allclose(near * 1000, np.round(near * 1000), atol=1e-3), "whole millimetres"
    far = sensor.sensor_depth(_plane(3.0), K, rng)
    values = np.unique(np.round(far[far > 0] * 1000))
    # noise of ~1.4 cm spreads over dozens of mm values; disparity steps of ~2.6 cm at 3 m leave a handful
    assert len(values) <= 12, values
    assert np.diff(values).min() >= 15


def test_dropouts_grow_at_grazing_angles_far_range_and_on_dark_and_shiny_surfaces():
    rng = np.random.default_rng(2)
    front = _plane(2.0)
    base = _missing(sensor.sensor_depth(front, K, rng), front)
    assert base < 0.01
    tilted = _plane(2.0, 82.0)
    centre = np.zeros_like(tilted, dtype=bool)
    centre[:, 300:340] = True  # where the incidence angle is close to 82 degrees
    assert _missing(sensor.sensor_depth(tilted, K, rng), tilted, centre) > 0.3
    # far range: a wall at 3 m is (almost) all there, at 4.2 m partly, at 4.7 m mostly gone, beyond 5 m gone
    assert _missing(sensor.sensor_depth(_plane(3.0), K, rng), _plane(3.0)) < 0.02
    assert 0.1 < _missing(sensor.sensor_depth(_plane(4.2), K, rng), _plane(4.2)) < 0.4
    assert _missing(sensor.sensor_depth(_plane(4.7), K, rng), _plane(4.7)) > 0.5
    assert _missing(sensor.sensor_depth(_plane(5.1), K, rng), _plane(5.1)) == 1.0
    assert _missing(sensor.sensor_depth(_plane(0.3), K, rng), _plane(0.3)) == 1.0
    dark = np.full(front.shape, 0.03, dtype=np.float32)
    assert _missing(sensor.sensor_depth(front, K, rng, brightness=dark), front) > 0.3
    instance = np.zeros(front.shape, dtype=np.int32)
    shiny = sensor.shiny_probability(instance, ["mirror"])
    assert _missing(sensor.sensor_depth(front, K, rng, shiny=shiny), front) > 0.3
    matte = sensor.shiny_probability(instance, ["sofa"])
    assert _missing(sensor.sensor_depth(front, K, rng, shiny=matte), front) < 0.01


def test_motion_blur_spreads_an_edge_along_the_motion_and_gains_apply():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:, 30:] = 200
    blurred = sensor.sensor_color(image, np.array([8.0, 0.0]), np.ones(3))
    row = blurred[20, :, 0].astype(int)
    ramp = np.flatnonzero((row > 5) & (row < 195))
    assert 6 <= len(ramp) <= 9, row
    assert np.array_equal(sensor.sensor_color(image, np.array([0.0, 8.0]), np.ones(3)), image), "vertical"
    assert np.array_equal(sensor.sensor_color(image, np.zeros(2), np.ones(3)), image)
    warm = sensor.sensor_color(image, np.zeros(2), np.array([1.1, 1.0, 0.9]))
    assert tuple(warm[0, 59]) == (220, 200, 180)
    gains = sensor.color_drift(240, np.random.default_rng(3))
    assert gains.shape == (240, 3) and gains.min() > 0.8 and gains.max() < 1.25
    assert np.abs(np.diff(gains, axis=0)).max() < 0.03, "drift is smooth from frame to frame"


# ---------------------------------------------------------------------------- a generated room, in-process


@pytest.fixture(scope="module")
def room_frames(tmp_path_factory: pytest.TempPathFactory):
    """One bedroom rendered three times from the same poses: sensor on (twice, for determinism) and off."""
    rng = np.random.default_rng([11, 0])
    room = generate_room(rng, "bedroom")
    poses = handheld_trajectory(room.extent, object_infos(room), rng, FRAMES)
    camera = writer.Camera.sample(rng)
    folders = {}
    for name, on in (("on", True), ("again", True), ("off", False)):
        folder = tmp_path_factory.mktemp(f"sensor_{name}")
        config = SynthConfig(num_frames=FRAMES, invalid_pose_rate=0.0, sensor=on)
        render_frames(folder, room, poses, np.eye(4), camera, np.random.default_rng(0), config, None, (11, 0))
        folders[name] = folder
    return room, poses, camera, folders


def _depth(folder: Path, i: int) -> np.ndarray:
    return np.asarray(Image.open(folder / "depth" / f"{i}.png")).astype(np.float64) / 1000.0


def _color(folder: Path, i: int) -> np.ndarray:
    return np.asarray(Image.open(folder / "color" / f"{i}.jpg")).astype(np.float64)


def test_sensor_off_writes_the_exact_render_bit_for_bit(room_frames):
    room, poses, camera, folders = room_frames
    renderer = MeshRenderer(room.mesh, room.vertex_object)
    for i in (0, FRAMES // 2):
        depth = renderer.render(poses[i], camera.depth, *writer.DEPTH_SIZE, color=False, instance=False).depth
        assert (folders["off"] / "depth" / f"{i}.png").read_bytes() == writer.encode_depth_png(depth)
        color = render_color(renderer, poses[i], camera.color, SynthConfig().color_render_scale)
        assert (folders["off"] / "color" / f"{i}.jpg").read_bytes() == writer.encode_jpeg(color, 90)


def test_sensor_is_deterministic_for_a_seed(room_frames):
    _, _, _, folders = room_frames
    for i in range(FRAMES):
        for kind, ext in (("depth", "png"), ("color", "jpg")):
            a = (folders["on"] / kind / f"{i}.{ext}").read_bytes()
            assert a == (folders["again"] / kind / f"{i}.{ext}").read_bytes(), (kind, i)
            assert a != (folders["off"] / kind / f"{i}.{ext}").read_bytes(), (kind, i)


def test_room_depth_error_and_holes_match_the_noise_model(room_frames):
    _, _, camera, folders = room_frames
    errors, exact_all, measured_all, theta_all = [], [], [], []
    for i in range(FRAMES):
        exact, measured = _depth(folders["off"], i), _depth(folders["on"], i)
        exact_all.append(exact)
        measured_all.append(measured)
        theta_all.append(np.rad2deg(sensor.incidence_angle(exact.astype(np.float32), camera.depth)))
        both = (exact > 0) & (measured > 0)
        errors.append(np.stack([exact[both], np.abs(measured - exact)[both]], axis=1))
    err = np.concatenate(errors)
    exact, measured, theta = np.stack(exact_all), np.stack(measured_all), np.stack(theta_all)

    def median_error(lo: float, hi: float) -> float:
        band = (err[:, 0] >= lo) & (err[:, 0] < hi)
        assert band.sum() > 1000, (lo, hi, band.sum())
        return float(np.median(err[band, 1]))

    at_1m = median_error(0.8, 1.2)
    assert at_1m < 0.01
    assert at_1m < median_error(1.8, 2.2) < median_error(2.6, 3.4)

    missing = _missing(measured, exact)
    assert 0.005 < missing < 0.15, missing
    assert _missing(measured, exact, theta > 80) > 3 * _missing(measured, exact, theta < 60)
    # what lies about 3 m away (the far walls of a bedroom) is mostly there (far range: the plane test)
    band = (exact > 2.6) & (exact < 3.4)
    assert band.sum() > 10_000 and _missing(measured, exact, band) < 0.1


def test_room_colour_differs_from_the_exact_render_but_stays_close(room_frames):
    _, _, _, folders = room_frames
    diffs = [np.abs(_color(folders["on"], i) - _color(folders["off"], i)).mean() for i in range(FRAMES)]
    assert all(0.5 < d < 25 for d in diffs), diffs
    means = [_color(folders["on"], i).mean() / _color(folders["off"], i).mean() for i in range(FRAMES)]
    assert 0.03 < max(means) - min(means) < 0.5, "exposure drifts across the trajectory"


@pytest.mark.slow  # default-suite time; run with `pytest -m slow`
def test_annotation_pipeline_still_captions_a_sensor_scene(tmp_path: Path):
    root = tmp_path / "data"
    generate_dataset(root, 1, seed=7, config=SynthConfig(num_frames=40), progress=False)
    jpeg = Image.open(io.BytesIO((root / "scans" / "scene0000_00" / "color" / "0.jpg").read_bytes()))
    assert jpeg.size == writer.COLOR_SIZE
    result = annotate_scene(
        root, "scene0000_00", tmp_path / "out", GroundedCaptioner(seed=3), AnnotateConfig(seed=3)
    )
    objects = result.doc["objects"]
    captioned = [o for o in objects if o.get("caption")]
    assert objects and len(captioned) >= 0.75 * len(objects), [(o["label"], o.get("reason")) for o in objects]


def test_cli_no_sensor_flag_turns_the_model_off(tmp_path: Path):
    from core.__main__ import main

    args = ["synth", "--scenes", "1", "--frames", "3", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    assert main([*args, "--out", str(tmp_path / "exact"), "--no-sensor"]) == 0
    config = SynthConfig(num_frames=3, sensor=False)
    generate_dataset(tmp_path / "api", 1, seed=4, config=config, progress=False)
    frame = Path("scans/scene0000_00/depth/1.png")
    exact = (tmp_path / "exact" / frame).read_bytes()
    assert exact == (tmp_path / "api" / frame).read_bytes()
    assert exact != (tmp_path / "default" / frame).read_bytes(), "the sensor model is on by default"
