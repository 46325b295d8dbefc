"""The image branch shared by Dense3D and Ross3D: patch positions, 3D embedding, frame choice, encoder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.models.common.frame_select import covered_voxels, greedy_coverage, select_frames, uniform_indices
from core.models.common.image_tokens import ImageBranch, ImageBranchConfig, load_frames
from core.models.common.pos3d import patch_box_fraction, patch_xyz, sinusoidal_3d
from core.models.common.pretrained import config_from_dict, config_to_dict
from core.models.common.vision import (
    CLIP_MEAN,
    Projector,
    VisionConfig,
    VisionEncoder,
    preprocess_images,
    stack_depth,
)
from core.models.errors import ModelError
from core.scene.geometry import backproject_depth, look_at, project, world_to_camera
from core.scene.scannet import list_scenes, load_scene

H, W = 48, 64
K = np.array([[50.0, 0, 31.5], [0, 52.0, 23.5], [0, 0, 1]])
POSE = look_at(np.array([1.0, -2.0, 1.5]), np.array([2.5, 1.0, 0.8]))
TINY = VisionConfig(image_size=32, patch_size=8, hidden=32, layers=2, heads=4)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


def plane_depth(normal: np.ndarray, offset: float) -> np.ndarray:
    """Depth (z) of the camera-frame plane n . X = offset seen through each pixel centre of K."""
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    return offset / (rays @ normal)


def block_means(depth: np.ndarray, bh: int, bw: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: back-project with core.scene and average the measured points of each bh x bw block."""
    pts, idx = backproject_depth(depth, K, POSE)
    rows, cols = np.divmod(idx, depth.shape[1])
    gw = depth.shape[1] // bw
    cell = (rows // bh) * gw + cols // bw
    cells = (depth.shape[0] // bh) * gw
    sums = np.zeros((cells, 3))
    np.add.at(sums, cell, pts.astype(np.float64))
    counts = np.bincount(cell, minlength=cells)
    return sums / np.maximum(counts, 1)[:, None], counts > 0


# ------------------------------------------------------------------------------------------ patch_xyz


def test_patch_xyz_of_a_tilted_plane_equals_core_scene_backprojection() -> None:
    normal = np.array([0.3, -0.2, 1.0])
    depth = plane_depth(normal, 2.0)
    xyz, valid = patch_xyz(t(depth)[None], t(K)[None], t(POSE)[None], grid=(6, 8))
    ref, ref_valid = block_means(depth, 8, 8)
    assert xyz.shape == (1, 48, 3) and valid.shape == (1, 48) and xyz.dtype == torch.float32
    assert valid.all() and ref_valid.all()
    np.testing.assert_allclose(xyz[0].numpy(), ref, atol=1e-5)
    # The mean of points on a plane lies on the plane.
    cam = world_to_camera(xyz[0].numpy().astype(np.float64), POSE)
    np.testing.assert_allclose(cam @ normal, 2.0, atol=1e-5)


def test_patch_xyz_projects_back_to_the_patch_centre() -> None:
    depth = np.full((H, W), 2.5)
    xyz, _ = patch_xyz(t(depth)[None], t(K)[None], t(POSE)[None], grid=(6, 8))
    uv, z = project(world_to_camera(xyz[0].numpy().astype(np.float64), POSE), K)
    rows, cols = np.divmod(np.arange(48), 8)
    np.testing.assert_allclose(uv[:, 0], cols * 8 + 3.5, atol=1e-4)  # centre of pixels 8j..8j+7
    np.testing.assert_allclose(uv[:, 1], rows * 8 + 3.5, atol=1e-4)
    np.testing.assert_allclose(z, 2.5, atol=1e-5)


def test_zero_depth_pixels_are_excluded_and_empty_patches_invalid() -> None:
    depth = plane_depth(np.array([0.1, 0.2, 1.0]), 3.0)
    depth[0:8, 0:4] = 0.0  # left half of patch 0: only its right half counts
    depth[0:8, 8:16] = 0.0  # patch 1 entirely without depth
    depth[8:16, 0:8] = np.nan  # patch 8: no measurement either
    xyz, valid = patch_xyz(t(depth)[None], t(K)[None], t(POSE)[None], grid=(6, 8))
    right_half = np.zeros_like(depth)
    right_half[0:8, 4:8] = depth[0:8, 4:8]
    pts, _ = backproject_depth(right_half, K, POSE)
    assert len(pts) == 32
    np.testing.assert_allclose(xyz[0, 0].numpy(), pts.astype(np.float64).mean(axis=0), atol=1e-5)
    assert valid[0].tolist() == [i not in (1, 8) for i in range(48)]
    assert xyz[0, 1].abs().sum() == 0 and xyz[0, 8].abs().sum() == 0
    ref, _ = block_means(np.nan_to_num(depth), 8, 8)
    np.testing.assert_allclose(xyz[0, 2:8].numpy(), ref[2:8], atol=1e-5)


def test_patch_xyz_pooled_on_an_odd_grid_is_the_mean_of_all_pixels_under_the_token() -> None:
    depth = plane_depth(np.array([0.0, 0.4, 1.0]), 2.0)[:40, :56]  # 5x7 grid of 8x8 patches
    depth[0:8, 0:16] = 0.0  # the top row of pooled token 0 has no depth
    Kc = K.copy()
    pooled, valid = patch_xyz(t(depth)[None], t(Kc)[None], t(POSE)[None], grid=(5, 7), pool=2)
    assert pooled.shape == (1, 12, 3) and valid.all()  # ceil(5/2) x ceil(7/2)
    pts, idx = backproject_depth(depth, Kc, POSE)
    rows, cols = np.divmod(idx, depth.shape[1])
    token = (rows // 16) * 4 + cols // 16
    for k in range(12):
        np.testing.assert_allclose(
            pooled[0, k].numpy(), pts[token == k].astype(np.float64).mean(0), atol=1e-5
        )


def test_patch_xyz_on_a_rendered_frame_projects_inside_each_patch(synth_root: Path) -> None:
    scene = load_scene(synth_root, list_scenes(synth_root)[0])
    frame, Kd = scene.frames.frames[5], scene.frames.depth_intrinsics
    depth = frame.depth()
    gh = gw = 7  # 640x480 split in 7x7: patch borders fall between pixels at fractional positions
    xyz, valid = patch_xyz(t(depth)[None], t(Kd)[None], t(frame.pose)[None], grid=(gh, gw))
    pts, idx = backproject_depth(depth, Kd, frame.pose)
    rows, cols = np.divmod(idx, depth.shape[1])
    cell = ((rows + 0.5) * gh // depth.shape[0]).astype(int) * gw + (
        (cols + 0.5) * gw // depth.shape[1]
    ).astype(int)
    uv, _ = project(world_to_camera(xyz[0].numpy().astype(np.float64), frame.pose), Kd)
    assert valid[0].sum() > 40
    for k in np.flatnonzero(valid[0].numpy()):
        mine = pts[cell == k].astype(np.float64)
        np.testing.assert_allclose(xyz[0, k].numpy(), mine.mean(0), atol=2e-4)
        # Rays through one patch form a convex cone: the mean point projects inside the patch.
        assert cols[cell == k].min() - 1e-3 <= uv[k, 0] <= cols[cell == k].max() + 1e-3
        assert rows[cell == k].min() - 1e-3 <= uv[k, 1] <= rows[cell == k].max() + 1e-3


def test_patch_box_fraction_counts_measured_pixels_inside_each_box() -> None:
    depth = plane_depth(np.array([0.2, -0.1, 1.0]), 2.0)
    depth[:, 0:4] = 0.0  # the left half of the first patch column has no depth: not in the denominator
    pts, idx = backproject_depth(depth, K, POSE)
    rows, cols = np.divmod(idx, W)
    strip = pts[(rows < 8) & (cols >= 4) & (cols < 6)]  # 16 of patch 0's 32 measured pixels
    boxes = np.array(
        [
            np.concatenate([(strip.min(0) + strip.max(0)) / 2, strip.max(0) - strip.min(0) + 1e-4]),
            np.concatenate([(pts.min(0) + pts.max(0)) / 2, pts.max(0) - pts.min(0) + 0.01]),  # everything
            np.concatenate([pts.mean(0), [0.3, 0.4, 0.5]]),
            [50.0, 50.0, 50.0, 1.0, 1.0, 1.0],  # nothing
            np.concatenate([POSE[:3, 3], [4.4, 4.4, 4.4]]),  # around the camera: corners behind it
        ]
    )
    lo, hi = boxes[:, :3] - boxes[:, 3:] / 2, boxes[:, :3] + boxes[:, 3:] / 2
    for pool, block, stride in ((1, 8, 1), (2, 16, 1), (1, 8, 2)):
        frac = patch_box_fraction(
            t(depth)[None], t(K)[None], t(POSE)[None], (6, 8), t(boxes), pool=pool, pixel_stride=stride
        )
        on = (rows % stride == stride // 2) & (cols % stride == stride // 2)  # the sampled lattice
        cell = (rows[on] // block) * (W // block) + cols[on] // block
        hit = ((pts[on][:, None] >= lo) & (pts[on][:, None] <= hi)).all(-1)
        cells = (H // block) * (W // block)
        ref = np.stack([np.bincount(cell, weights=hit[:, b], minlength=cells) for b in range(5)], 1)
        ref /= np.bincount(cell, minlength=cells)[:, None]
        assert frac.shape == (1, cells, 5)
        np.testing.assert_allclose(frac[0].numpy(), ref, atol=1e-6)
    assert torch.all(frac[0, :, 1] == 1) and torch.all(frac[0, :, 3] == 0)
    assert 0 < frac[0, :, 4].mean() < 1  # the box round the camera reaches part of the plane
    first = patch_box_fraction(t(depth)[None], t(K)[None], t(POSE)[None], (6, 8), t(boxes))
    assert 0.5 <= first[0, 0, 0] < 1  # the strip's box holds at least its 16 of the 32 points


def test_grid_that_does_not_cover_the_input_leaves_the_dropped_pixels_out(tmp_path: Path) -> None:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    # 36 px input, 8 px patches: the convolution sees only the top-left 32x32 (so400m: 27 x 14 of 384).
    hf = SiglipVisionConfig(
        image_size=36, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=4
    )
    SiglipVisionModel(hf).save_pretrained(tmp_path / "odd")
    enc = VisionEncoder(VisionConfig(path=str(tmp_path / "odd")))
    assert enc.patch_grid == (4, 4) and enc.grid_extent == (32 / 36, 32 / 36)
    depth = plane_depth(np.array([0.3, 0.1, 1.0]), 2.0)[:36, :36]  # the depth map at the input's size
    xyz, valid = patch_xyz(t(depth)[None], t(K)[None], t(POSE)[None], enc.patch_grid, extent=enc.grid_extent)
    ref, _ = block_means(depth[:32, :32], 8, 8)
    assert valid.all()
    np.testing.assert_allclose(xyz[0].numpy(), ref, atol=1e-5)
    assert not np.allclose(patch_xyz(t(depth)[None], t(K)[None], t(POSE)[None], (4, 4))[0][0].numpy(), ref)


def test_patch_xyz_rejects_bad_shapes() -> None:
    with pytest.raises(ModelError, match="depth must be"):
        patch_xyz(torch.zeros(H, W), t(K), t(POSE)[None], grid=(6, 8))
    with pytest.raises(ModelError, match="cam_to_world"):
        patch_xyz(torch.zeros(2, H, W), t(K), t(POSE)[None], grid=(6, 8))


# ------------------------------------------------------------------------------------- sinusoidal_3d


def test_sinusoidal_3d_shape_layout_and_hand_value() -> None:
    xyz = torch.tensor([[0.0, 1.0, -2.0], [3.3, -4.4, 0.5]])
    emb = sinusoidal_3d(xyz, 64)
    assert emb.shape == (2, 64) and emb.dtype == torch.float32
    # 64 // 6 = 10 -> 20 channels per axis (10 sin, 10 cos), then 4 zero channels.
    assert torch.all(emb[:, 60:] == 0)
    # x = 0 m is grid index (0 - -15) / 0.1 = 150; y = 1 m is 160; z = -2 m is 30.
    omega = 10000.0 ** (-np.arange(10) / 10)
    for axis, index in enumerate([150, 160, 30]):
        block = emb[0, axis * 20 : (axis + 1) * 20].numpy()
        np.testing.assert_allclose(block[:10], np.sin(index * omega), atol=1e-6)
        np.testing.assert_allclose(block[10:], np.cos(index * omega), atol=1e-6)
    assert sinusoidal_3d(torch.zeros(4, 5, 3), 96).shape == (4, 5, 96)


def test_sinusoidal_3d_clamps_snaps_and_is_deterministic() -> None:
    far = torch.tensor([[20.0, -30.0, 9.0]])
    edge = torch.tensor([[15.0, -15.0, 5.0]])
    assert torch.equal(sinusoidal_3d(far, 48), sinusoidal_3d(edge, 48))
    near = sinusoidal_3d(torch.tensor([[1.02, 0.0, 0.0], [0.98, 0.0, 0.0], [1.0, 0.0, 0.0]]), 48)
    assert torch.equal(near[0], near[2]) and torch.equal(near[1], near[2])  # all on the 1.0 m grid point
    assert not torch.equal(sinusoidal_3d(torch.tensor([[1.06, 0.0, 0.0]]), 48)[0], near[2])
    xyz = torch.randn(10, 3) * 4
    assert torch.equal(sinusoidal_3d(xyz, 48), sinusoidal_3d(xyz.clone(), 48))


def test_sinusoidal_3d_gives_invalid_and_nonfinite_positions_zero() -> None:
    xyz = torch.tensor([[1.0, 2.0, 0.5], [1.0, 2.0, 0.5], [float("nan"), 0.0, 0.0]])
    emb = sinusoidal_3d(xyz, 30, valid=torch.tensor([True, False, True]))
    assert emb[0].abs().sum() > 0 and torch.all(emb[1] == 0) and torch.all(emb[2] == 0)
    with pytest.raises(ModelError, match="dim must be >= 6"):
        sinusoidal_3d(xyz, 4)


# ---------------------------------------------------------------------------------- frame selection


def test_coverage_selection_beats_uniform_and_is_deterministic(synth_root: Path) -> None:
    scene = load_scene(synth_root, list_scenes(synth_root)[0])
    n = len(scene.frames.frames)
    for k in (3, 6):
        cov = select_frames(scene, k, "coverage")
        uni = select_frames(scene, k, "uniform")
        assert len(cov) == k == len(set(cov)) and cov == sorted(cov)
        assert uni == [int(i) for i in np.linspace(0, n - 1, k).astype(int)]
        assert covered_voxels(scene, cov) > covered_voxels(scene, uni)
        assert select_frames(scene, k, "coverage") == cov
    assert select_frames(scene, n + 5, "coverage") == list(range(n))
    thinned = select_frames(scene, 3, "coverage", max_candidates=10)
    assert len(thinned) == 3 and set(thinned) <= set(uniform_indices(n, 10))


def test_greedy_coverage_fills_up_when_nothing_new_is_left() -> None:
    a = np.array([[0, 0, 0], [1, 0, 0]])
    sets = [a, a.copy(), np.zeros((0, 3), dtype=np.int64), a[:1], np.array([[5, 5, 5]])]
    picks = greedy_coverage(sets, 3)
    assert picks[:1] == [0] and 4 in picks and 2 not in picks and len(picks) == 3
    assert uniform_indices(10, 4) == [0, 3, 6, 9]


def test_scene_without_usable_frames_is_a_clear_error(synth_root: Path, tmp_path: Path) -> None:
    scene_id = list_scenes(synth_root)[0]
    no_frames = load_scene(synth_root, scene_id, with_frames=False)
    with pytest.raises(ModelError, match="no usable RGB-D frames"):
        select_frames(no_frames, 4)
    scene = load_scene(synth_root, scene_id)
    zero = tmp_path / "zero.png"
    Image.fromarray(np.zeros((480, 640), dtype=np.uint16)).save(zero)
    scene.frames.frames = [dataclasses.replace(f, depth_path=zero) for f in scene.frames.frames[:5]]
    with pytest.raises(ModelError, match="none of 5 frames has a depth measurement") as err:
        select_frames(scene, 2)
    assert err.value.path == scene.folder
    assert select_frames(scene, 2, "uniform") == [0, 4]  # uniform needs no depth
    with pytest.raises(ModelError, match="method must be"):
        select_frames(scene, 2, "random")


# ------------------------------------------------------------------------------------ vision encoder


def test_tiny_encoder_shapes_pooling_and_every_parameter_trains() -> None:
    torch.manual_seed(0)
    enc = VisionEncoder(TINY)
    assert enc.patch_grid == (4, 4) and enc.grid == (4, 4) and enc.hidden_size == 32
    pixels = torch.randn(3, 3, 32, 32)
    tokens = enc(pixels)
    assert tokens.shape == (3, 16, 32)
    tokens.square().mean().backward()
    assert all(p.grad is not None for p in enc.parameters())
    pooled = VisionEncoder(dataclasses.replace(TINY, image_size=40, pool=2))  # 5x5 -> 3x3
    assert pooled.grid == (3, 3) and pooled(torch.randn(2, 3, 40, 40)).shape == (2, 9, 32)
    with pytest.raises(ModelError, match="expected pixels"):
        enc(torch.randn(2, 3, 40, 40))


def test_pooled_tokens_are_block_means_of_unpooled_tokens() -> None:
    torch.manual_seed(0)
    full = VisionEncoder(dataclasses.replace(TINY, image_size=40))
    pooled = VisionEncoder(dataclasses.replace(TINY, image_size=40, pool=2))
    pooled.load_state_dict(full.state_dict())
    x = torch.randn(1, 3, 40, 40)
    a = full(x).reshape(5, 5, 32)
    b = pooled(x).reshape(3, 3, 32)
    torch.testing.assert_close(b[0, 0], a[:2, :2].mean((0, 1)))
    torch.testing.assert_close(b[2, 2], a[4, 4])
    torch.testing.assert_close(b[1, 2], a[2:4, 4].mean(0))


def test_encoder_save_and_load_by_local_path_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = VisionEncoder(TINY).eval()
    enc.model.save_pretrained(tmp_path / "siglip")
    loaded = VisionEncoder(VisionConfig(path=str(tmp_path / "siglip"))).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(enc(x), loaded(x))
    # Built from the folder's config without weights (a whole-model checkpoint then fills them in).
    shell = VisionEncoder(VisionConfig(path=str(tmp_path / "siglip")), load_weights=False)
    shell.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.equal(enc(x), shell.eval()(x))


def test_full_clip_checkpoint_loads_with_its_preprocessor_and_penultimate_layer(tmp_path: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
    )
    text = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=64
    )
    clip = CLIPModel(CLIPConfig(vision_config=vision, text_config=text)).eval()
    clip.save_pretrained(tmp_path / "clip")
    (tmp_path / "clip" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": list(CLIP_MEAN), "image_std": [0.25, 0.25, 0.25]})
    )
    enc = VisionEncoder(VisionConfig(path=str(tmp_path / "clip"), select_layer=-2)).eval()
    assert enc.kind == "clip" and len(enc.model.encoder.layers) == 2
    assert enc.image_mean == CLIP_MEAN and enc.image_std == (0.25, 0.25, 0.25)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = clip.vision_model(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]
        torch.testing.assert_close(enc(x), ref)


def test_bad_local_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="folder not found"):
        VisionEncoder(VisionConfig(path=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json") as err:
        VisionEncoder(VisionConfig(path=str(tmp_path / "empty")))
    assert err.value.path == tmp_path / "empty" / "config.json"
    VisionEncoder(TINY).model.save_pretrained(tmp_path / "noweights")
    (tmp_path / "noweights" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights found"):
        VisionEncoder(VisionConfig(path=str(tmp_path / "noweights")))
    broken = json.loads((tmp_path / "noweights" / "config.json").read_text())
    broken["num_attention_heads"] = 5  # 32 is not a multiple of 5
    (tmp_path / "noweights" / "config.json").write_text(json.dumps(broken))
    with pytest.raises(ModelError, match="cannot load the vision encoder") as err:
        VisionEncoder(VisionConfig(path=str(tmp_path / "noweights")), load_weights=False)
    assert err.value.path == tmp_path / "noweights"
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(ModelError, match="not a SigLIP or CLIP"):
        VisionEncoder(VisionConfig(path=str(tmp_path / "llm")))


def test_preprocess_matches_the_siglip_processor_and_projector_kinds() -> None:
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    rng = np.random.default_rng(0)
    images = [
        (rng.random((97, 130, 3)) * 255).astype(np.uint8),
        (rng.random((48, 64, 3)) * 255).astype(np.uint8),
    ]
    ours = preprocess_images(images, 112)
    ref = SiglipImageProcessorPil(size={"height": 112, "width": 112})(images=images, return_tensors="np")
    np.testing.assert_allclose(ours.numpy(), ref["pixel_values"], atol=1e-6)
    with pytest.raises(ModelError, match="uint8"):
        preprocess_images([images[0].astype(np.float32)], 112)
    with pytest.raises(ModelError, match="shape"):
        stack_depth([np.zeros((4, 4)), np.zeros((4, 5))])
    mlp = Projector(32, 48)
    assert sorted(mlp.state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert mlp(torch.randn(5, 32)).shape == (5, 48) and Projector(32, 48, "linear")(
        torch.randn(5, 32)
    ).shape == (5, 48)
    with pytest.raises(ModelError, match="projector kind"):
        Projector(32, 48, "mlp3x")


# --------------------------------------------------------------------------------------- image branch


def test_image_branch_on_a_scene_adds_the_3d_embedding_to_the_tokens(synth_root: Path) -> None:
    scene = load_scene(synth_root, list_scenes(synth_root)[1])
    config = ImageBranchConfig(
        vision=dataclasses.replace(TINY, pool=2), out_dim=48, mask_token=True, num_frames=3
    )
    torch.manual_seed(0)
    branch = ImageBranch(config)
    inputs = branch.select_and_load(scene)
    assert inputs.frame_indices == select_frames(scene, 3) and inputs.pixels.shape == (3, 3, 32, 32)
    out = branch(inputs.pixels, inputs.depth, inputs.intrinsics, inputs.cam_to_world)
    assert out.tokens.shape == (12, 48) and out.grid == (2, 2) and out.num_frames == 3
    xyz, valid = patch_xyz(inputs.depth, inputs.intrinsics, inputs.cam_to_world, (4, 4), pool=2)
    torch.testing.assert_close(out.xyz, xyz.reshape(12, 3))
    assert valid.all()  # rendered rooms are closed: every patch sees a surface
    plain = ImageBranch(dataclasses.replace(config, pos_embed=False))
    plain.load_state_dict(branch.state_dict())
    bare = plain(inputs.pixels, xyz=xyz, valid=valid).tokens
    torch.testing.assert_close(out.tokens - bare, sinusoidal_3d(out.xyz, 48), atol=1e-5, rtol=0)
    # Masked frames: their tokens become the mask token, and keep their position embedding.
    masked = branch(inputs.pixels, xyz=xyz, valid=valid, frame_mask=torch.tensor([False, True, False])).tokens
    torch.testing.assert_close(masked[:4], out.tokens[:4])
    torch.testing.assert_close(masked[4:8], branch.mask_token + sinusoidal_3d(out.xyz[4:8], 48))
    # A batch [B,F,...] equals the items run one by one.
    both = branch(
        torch.stack([inputs.pixels, inputs.pixels.flip(0)]),
        torch.stack([inputs.depth, inputs.depth.flip(0)]),
        torch.stack([inputs.intrinsics] * 2),
        torch.stack([inputs.cam_to_world, inputs.cam_to_world.flip(0)]),
    )
    assert both.tokens.shape == (2, 12, 48)
    torch.testing.assert_close(both.tokens[0], out.tokens)


def test_frame_positions_are_computed_once_per_scene_and_shared_by_device_copies(synth_root: Path) -> None:
    scene = load_scene(synth_root, list_scenes(synth_root)[1])
    config = ImageBranchConfig(vision=dataclasses.replace(TINY, pool=2), out_dim=48, num_frames=3)
    branch = ImageBranch(config)
    inputs = branch.select_and_load(scene)
    xyz, valid = branch.frame_positions(inputs)
    expected = patch_xyz(inputs.depth, inputs.intrinsics, inputs.cam_to_world, (4, 4), pool=2)
    torch.testing.assert_close(xyz, expected[0])
    assert torch.equal(valid, expected[1])
    copy = inputs.to("cpu")
    assert copy is not inputs and branch.frame_positions(copy)[0] is xyz  # kept, not recomputed
    # The memo is the frames' own: other frames (another scene, or these with no depth) start empty.
    flat = dataclasses.replace(inputs, depth=torch.zeros_like(inputs.depth), memo={})
    assert not branch.frame_positions(flat)[1].any()
    # Tokens from the kept positions equal tokens computed from the depth.
    torch.testing.assert_close(
        branch(inputs.pixels, xyz=xyz, valid=valid).tokens,
        branch(inputs.pixels, inputs.depth, inputs.intrinsics, inputs.cam_to_world).tokens,
    )


def test_image_branch_config_round_trips_and_vision_placement(synth_root: Path) -> None:
    config = ImageBranchConfig(
        vision=dataclasses.replace(TINY, image_mean=(0.4, 0.4, 0.4)), pos_embed_at="vision"
    )
    again = ImageBranchConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    # The shared checkpoint code (pretrained.py) restores it from JSON the same way.
    assert config_from_dict(ImageBranchConfig, json.loads(json.dumps(config_to_dict(config)))) == config
    with pytest.raises(ModelError, match="unknown field"):
        ImageBranchConfig.from_dict({"frames": 3})
    branch = ImageBranch(config)
    assert branch.embed_dim == 32
    scene = load_scene(synth_root, list_scenes(synth_root)[0])
    inputs = load_frames(scene, [0, 7], branch.encoder)
    out = branch(inputs.pixels, inputs.depth, inputs.intrinsics, inputs.cam_to_world)
    assert out.tokens.shape == (32, 256)
    with pytest.raises(ModelError, match="out of range"):
        load_frames(scene, [0, 999], branch.encoder)
    with pytest.raises(ModelError, match="do not match 2 frames of 16 tokens"):
        branch(inputs.pixels, xyz=torch.zeros(2, 49, 3), valid=torch.ones(2, 49, dtype=torch.bool))
    with pytest.raises(ModelError, match="mask_token=False"):
        branch(inputs.pixels, inputs.depth, inputs.intrinsics, inputs.cam_to_world, frame_mask=torch.ones(2))
