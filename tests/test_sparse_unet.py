"""The point branch: voxelisation, the sparse U-Net on both backends (spconv and pure torch), pooling.

Every reference here is independent of the code under test: numpy loops for convolutions and pooling,
spconv for the torch backend (and the reverse), and hand-made geometry for voxelisation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from core.models.common.pooling import superpoint_mean, voxel_to_point
from core.models.common.sparse import resolve, spconv_backend
from core.models.common.sparse import torch_backend as tb
from core.models.common.sparse_unet import SparseUNet, SparseUNetConfig
from core.models.common.voxelize import batch_voxels, point_features, voxelize
from core.models.errors import ModelError

HAS_SPCONV = spconv_backend.available()
needs_spconv = pytest.mark.skipif(not HAS_SPCONV, reason="spconv does not import here")
TINY = {"channels": (8, 16, 24), "blocks_per_level": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on this shared 2-core machine two OpenMP threads under load run these small
    sparse convolutions up to 100x slower (spin-waits), and the results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scene_points(n: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a room's surfaces (floor, two walls, a box): thin shells like a real scan, not a cube."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=g)
    part = torch.randint(0, 4, (n,), generator=g)
    xyz = torch.empty(n, 3)
    floor, wall_x, wall_y, box = (part == i for i in range(4))
    xyz[floor] = u[floor] * torch.tensor([3.0, 2.5, 0.0])
    xyz[wall_x] = u[wall_x] * torch.tensor([0.0, 2.5, 1.2])
    xyz[wall_y] = u[wall_y] * torch.tensor([3.0, 0.0, 1.2])
    top = u[box] * torch.tensor([0.6, 0.5, 0.0]) + torch.tensor([1.2, 1.0, 0.45])
    xyz[box] = top
    xyz = xyz + shift
    rgb = torch.randint(0, 256, (n, 3), generator=g)
    return xyz, rgb


def scene_batch(sizes=(2000, 1000), voxel: float = 0.05):
    items = [voxelize(xyz, point_features(xyz, rgb), voxel)
             for xyz, rgb in (scene_points(n, seed=i, shift=0.37 * i) for i, n in enumerate(sizes))]
    return batch_voxels(items)


# ----------------------------------------------------------------------------------------------- voxelize


def test_voxelize_means_and_point_map():
    xyz = torch.tensor([[0.001, 0.001, 0.001], [0.019, 0.005, 0.0], [0.021, 0.0, 0.0], [-0.01, 0.0, 0.0]])
    feats = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    v = voxelize(xyz, feats, 0.02)
    assert v.coords.dtype == torch.int32 and v.point_to_voxel.dtype == torch.long
    assert v.coords.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]  # x = -1, 0, 1 shifted to start at 0
    assert v.feats[:, 0].tolist() == [7.0, 2.0, 5.0]
    assert v.point_to_voxel.tolist() == [1, 1, 2, 0]
    assert v.origin.tolist() == [-1, 0, 0]


def test_voxelize_matches_numpy_on_a_scene():
    xyz, rgb = scene_points(4000, seed=3)
    feats = point_features(xyz, rgb)
    v = voxelize(xyz, feats, 0.05)
    grid = np.floor(xyz.double().numpy() / 0.05).astype(np.int64)
    grid -= grid.min(0)
    uniq, inverse = np.unique(grid, axis=0, return_inverse=True)
    np.testing.assert_array_equal(v.coords.numpy(), uniq)
    np.testing.assert_array_equal(v.point_to_voxel.numpy(), inverse.reshape(-1))
    expect = np.zeros((len(uniq), 6))
    np.add.at(expect, inverse.reshape(-1), feats.double().numpy())
    expect /= np.bincount(inverse.reshape(-1))[:, None]
    np.testing.assert_allclose(v.feats.numpy(), expect, atol=1e-5)


def test_point_features_channels():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [2.0, 4.0, 6.0]])
    rgb = torch.tensor([[0, 127.5, 255], [255, 0, 0]])
    f = point_features(xyz, rgb)
    assert f.shape == (2, 6) and f.dtype == torch.float32
    assert f[0, :3].tolist() == [-1.0, 0.0, 1.0]
    assert f[:, 3:].tolist() == [[-1.0, -2.0, -3.0], [1.0, 2.0, 3.0]]
    with pytest.raises(ModelError, match="0..255"):
        point_features(xyz, rgb / 1000.0 - 0.5)


def test_batch_voxels_offsets():
    b = scene_batch((500, 300))
    n0 = int(b.voxel_offsets[1])
    assert b.coords.dtype == torch.int32 and b.coords.shape[1] == 4 and b.batch_size == 2
    assert (b.coords[:n0, 0] == 0).all() and (b.coords[n0:, 0] == 1).all()
    p0 = int(b.point_offsets[1])
    assert int(b.point_to_voxel[:p0].max()) < n0 <= int(b.point_to_voxel[p0:].min())
    assert b.point_offsets.tolist() == [0, 500, 800]


# ------------------------------------------------------------------------------ torch sparse conv vs numpy


def numpy_subm(coords: np.ndarray, feats: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """out[p] = sum_d W[d] x[p + d] over the 27 offsets; weight in spconv layout [out, 3, 3, 3, in]."""
    site = {tuple(c): i for i, c in enumerate(coords.tolist())}
    out = np.zeros((len(coords), weight.shape[0]))
    for i, c in enumerate(coords.tolist()):
        for dx, dy, dz in itertools.product((-1, 0, 1), repeat=3):
            j = site.get((c[0], c[1] + dx, c[2] + dy, c[3] + dz))
            if j is not None:
                out[i] += weight[:, dx + 1, dy + 1, dz + 1, :] @ feats[j]
    return out


def random_sites(n: int, extent: int, seed: int, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.cat([torch.randint(0, batch, (n, 1), generator=g),
                   torch.randint(0, extent, (n, 3), generator=g)], 1)
    return torch.unique(c, dim=0).to(torch.int32)


def test_torch_subm_matches_numpy_and_keeps_sites():
    coords = random_sites(300, 8, seed=0)
    feats = torch.randn(coords.shape[0], 3, dtype=torch.float64)
    conv = tb.SubMConv3d(3, 4, 3, "k").double()
    out = conv(tb.TorchSparseTensor(feats, coords, (8, 8, 8), 2))
    assert torch.equal(out.indices, coords)  # submanifold: output sites are the input sites, same order
    expect = numpy_subm(coords.numpy(), feats.numpy(), conv.weight.detach().numpy())
    np.testing.assert_allclose(out.features.detach().numpy(), expect, atol=1e-12)


def test_torch_down_up_round_trip_matches_numpy():
    coords = random_sites(300, 9, seed=1)
    feats = torch.randn(coords.shape[0], 3, dtype=torch.float64)
    down, up = tb.SparseConv3d(3, 5, 2, "d").double(), tb.SparseInverseConv3d(5, 2, 2, "d").double()
    x = tb.TorchSparseTensor(feats, coords, (10, 10, 10), 2)
    y = down(x)
    c = coords.numpy().astype(np.int64)
    half = np.concatenate([c[:, :1], c[:, 1:] // 2], 1)
    uniq = np.unique(half, axis=0)
    assert sorted(map(tuple, y.indices.tolist())) == sorted(map(tuple, uniq.tolist()))
    row = {tuple(r): i for i, r in enumerate(y.indices.tolist())}
    w = down.weight.detach().numpy()
    expect = np.zeros((len(uniq), 5))
    for i, p in enumerate(c):
        expect[row[tuple(half[i])]] += w[:, p[1] % 2, p[2] % 2, p[3] % 2, :] @ feats[i].numpy()
    np.testing.assert_allclose(y.features.detach().numpy(), expect, atol=1e-12)
    z = up(y)
    assert torch.equal(z.indices, coords)  # the inverse restores the input sites, in the input order
    wu = up.weight.detach().numpy()
    yf = y.features.detach().numpy()
    back = np.stack([wu[:, p[1] % 2, p[2] % 2, p[3] % 2, :] @ yf[row[tuple(half[i])]]
                     for i, p in enumerate(c)])
    np.testing.assert_allclose(z.features.detach().numpy(), back, atol=1e-12)


@pytest.mark.parametrize("kind", ["subm", "down", "inverse"])
def test_torch_conv_gradcheck(kind):
    """The hand-written backward of the gather-matmul-scatter function against finite differences."""
    coords = random_sites(30, 4, seed=2, batch=1)
    if kind == "subm":
        pairs, kernel = tb.subm_pairs(coords, (4, 4, 4), 3), 3
    else:
        pairs, kernel = tb.down_pairs(coords, (4, 4, 4))[0], 2
        pairs = pairs if kind == "down" else pairs.transposed()
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(pairs.num_in, 2, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, kernel, kernel, kernel, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: tb.sparse_conv(f, w, pairs), (feats, weight))


# --------------------------------------------------------------------------------------------- the U-Net


def backends() -> list[str]:
    return ["torch", "spconv"] if HAS_SPCONV else ["torch"]


@pytest.mark.parametrize("backend", backends())
def test_unet_shapes_dtypes_and_site_order(backend):
    b = scene_batch()
    model = SparseUNet(SparseUNetConfig(**TINY, backend=backend))
    assert model.backend == backend
    out = model(b.coords, b.feats, b.batch_size)
    assert out.shape == (b.coords.shape[0], 8) and out.dtype == torch.float32
    assert bool((out >= 0).all())  # the final BN + ReLU
    # rows follow the input order: permuting the input permutes the output the same way
    perm = torch.randperm(b.coords.shape[0], generator=torch.Generator().manual_seed(0))
    model.eval()
    ref = model(b.coords, b.feats, b.batch_size)
    again = model(b.coords[perm], b.feats[perm], b.batch_size)
    torch.testing.assert_close(again, ref[perm], atol=1e-5, rtol=1e-4)


def test_auto_backend_prefers_spconv_when_it_imports(monkeypatch):
    usable = HAS_SPCONV and not (torch.cuda.is_available() and spconv_backend.cpu_only())
    expect = "spconv" if usable else "torch"
    assert resolve("auto") == expect
    assert SparseUNet(SparseUNetConfig(**TINY)).backend == expect
    monkeypatch.setattr(spconv_backend, "available", lambda: False)  # a machine without spconv
    assert resolve("auto") == "torch"
    assert SparseUNet(SparseUNetConfig(**TINY)).backend == "torch"
    with pytest.raises(ModelError, match="spconv does not import"):
        SparseUNet(SparseUNetConfig(**TINY, backend="spconv"))


def assert_grads_close(a: torch.nn.Module, b: torch.nn.Module) -> None:
    grads_b = dict(b.named_parameters())
    for name, p in a.named_parameters():
        q = grads_b[name]
        scale = max(1.0, float(p.grad.abs().max()))
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4 * scale, rtol=1e-3, msg=name)


@needs_spconv
def test_backends_agree_forward_and_backward():
    b = scene_batch((3000, 1500), voxel=0.04)
    torch.manual_seed(0)
    sp_model = SparseUNet(SparseUNetConfig(**TINY, backend="spconv"))
    th_model = SparseUNet(SparseUNetConfig(**TINY, backend="torch"))
    th_model.load_state_dict(sp_model.state_dict())
    f_sp, f_th = b.feats.clone().requires_grad_(), b.feats.clone().requires_grad_()
    out_sp, out_th = sp_model(b.coords, f_sp, 2), th_model(b.coords, f_th, 2)
    torch.testing.assert_close(out_th, out_sp, atol=1e-4, rtol=1e-4)
    weights = torch.randn_like(out_sp)
    (out_sp * weights).sum().backward()
    (out_th * weights).sum().backward()
    torch.testing.assert_close(f_th.grad, f_sp.grad, atol=1e-4 * max(1.0, float(f_sp.grad.abs().max())),
                               rtol=1e-3)
    assert_grads_close(sp_model, th_model)


@needs_spconv
@pytest.mark.parametrize("source", ["spconv", "torch"])
def test_state_dict_trained_in_one_backend_loads_in_the_other(source, tmp_path):
    from safetensors.torch import load_file, save_file

    target = "torch" if source == "spconv" else "spconv"
    b = scene_batch()
    torch.manual_seed(1)
    trained = SparseUNet(SparseUNetConfig(**TINY, backend=source))
    opt = torch.optim.SGD(trained.parameters(), lr=0.1)
    for _ in range(2):  # weights and BN running statistics move away from their initial values
        opt.zero_grad()
        trained(b.coords, b.feats, 2).square().mean().backward()
        opt.step()
    save_file(trained.state_dict(), tmp_path / "unet.safetensors")
    other = SparseUNet(SparseUNetConfig(**TINY, backend=target))
    assert {k: v.shape for k, v in other.state_dict().items()} == {
        k: v.shape for k, v in trained.state_dict().items()}
    other.load_state_dict(load_file(tmp_path / "unet.safetensors"))
    trained.eval()
    other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(b.coords, b.feats, 2), trained(b.coords, b.feats, 2),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", backends())
def test_gradient_reaches_every_parameter(backend):
    b = scene_batch()
    model = SparseUNet(SparseUNetConfig(in_channels=6, channels=(8, 16), blocks_per_level=1, backend=backend))
    feats = b.feats.clone().requires_grad_()
    out = model(b.coords, feats, 2)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert feats.grad.abs().sum() > 0


@needs_spconv
def test_spconv_cpu_path_is_exact_on_several_threads():
    """spconv 2.3.8's CPU scatter-add gave wrong rows now and then with 2 threads; the backend patches it."""
    spconv_backend._import()
    import spconv.pytorch as spconv

    coords = random_sites(500, 10, seed=4, batch=1)
    feats = torch.randn(coords.shape[0], 4, dtype=torch.float64)
    conv = spconv.SubMConv3d(4, 5, 3, padding=1, bias=False).double()
    expect = numpy_subm(coords.numpy(), feats.numpy(), conv.weight.detach().numpy())
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(12):
            out = conv(spconv.SparseConvTensor(feats, coords, [12, 12, 12], 1)).features
            np.testing.assert_allclose(out.detach().numpy(), expect, atol=1e-12)
    finally:
        torch.set_num_threads(threads)
    spconv_backend.patch_cpu_backward()  # idempotent: a second call leaves a single wrapper
    from spconv.pytorch import ops

    assert getattr(ops.get_current_stream, "_densescan_cpu_backward_fix", False)
    assert ops.get_current_stream() == (ops.get_current_stream() if torch.cuda.is_available() else 0)


def test_torch_backend_under_cpu_autocast():
    b = scene_batch((1000, 500))
    model = SparseUNet(SparseUNetConfig(**TINY, backend="torch")).eval()
    with torch.no_grad():
        ref = model(b.coords, b.feats, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(b.coords, b.feats, 2)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - ref).abs().mean()) < 0.05 * float(ref.abs().mean())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_backend_on_cuda_matches_cpu():
    b = scene_batch((6000, 3000))
    model = SparseUNet(SparseUNetConfig(**TINY, backend="torch"))
    out_cpu = model(b.coords, b.feats, 2)
    gpu = b.to("cuda")
    out_gpu = model.cuda()(gpu.coords, gpu.feats, 2)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-3, rtol=1e-3)


# --------------------------------------------------------------------------------------------- pooling


def test_superpoint_mean_matches_numpy_and_voxel_gather():
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(200, 4, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 12, (200,), generator=g)
    ids[ids == 7] = 3  # superpoint 7 has no points
    out = superpoint_mean(feats, ids, 12)
    expect = np.zeros((12, 4))
    for s in range(12):
        if (ids == s).any():
            expect[s] = feats[ids == s].numpy().mean(0)
    np.testing.assert_allclose(out.numpy(), expect, atol=1e-12)
    voxel_feats = torch.randn(30, 4)
    p2v = torch.randint(0, 30, (100,), generator=g)
    np.testing.assert_array_equal(voxel_to_point(voxel_feats, p2v).numpy(), voxel_feats.numpy()[p2v.numpy()])


def test_pooling_gradient_flows():
    feats = torch.randn(50, 3, requires_grad=True)
    ids = torch.arange(50) % 5
    superpoint_mean(feats, ids, 5).sum().backward()
    torch.testing.assert_close(feats.grad, torch.full((50, 3), 0.1))


# ------------------------------------------------------------------------------------------- bad input


def test_unet_bad_input_is_a_clear_model_error():
    b = scene_batch((500, 300))
    model = SparseUNet(SparseUNetConfig(**TINY, backend="torch"))
    with pytest.raises(ModelError, match="coords must be int32/int64"):
        model(b.coords.float(), b.feats, 2)
    with pytest.raises(ModelError, match=r"batch column out of range \[0, 1\)"):
        model(b.coords, b.feats, 1)
    bad = b.coords.clone()
    bad[0, 0] = -1
    with pytest.raises(ModelError, match="batch column out of range"):
        model(bad, b.feats, 2)
    with pytest.raises(ModelError, match="empty scene"):
        model(b.coords[:0], b.feats[:0], 2)
    with pytest.raises(ModelError, match=rf"feats must be \[{b.coords.shape[0]}, 6\], got"):
        model(b.coords, b.feats[:, :3], 2)
    with pytest.raises(ModelError, match="duplicate voxel"):
        model(torch.cat([b.coords, b.coords[:1]]), torch.cat([b.feats, b.feats[:1]]), 2)
    negative = b.coords.clone()
    negative[3, 2] = -4
    with pytest.raises(ModelError, match=">= 0"):
        model(negative, b.feats, 2)
    with pytest.raises(ModelError, match="coords must be \\[V,4\\]"):
        model(b.coords[:, 1:], b.feats, 2)
    with pytest.raises(ModelError, match="backend must be one of"):
        SparseUNetConfig(backend="minkowski")
    with pytest.raises(ModelError, match="channels must be positive"):
        SparseUNetConfig(channels=())


def test_voxelize_and_pooling_bad_input():
    with pytest.raises(ModelError, match="empty point cloud"):
        voxelize(torch.zeros(0, 3), torch.zeros(0, 6))
    with pytest.raises(ModelError, match="xyz must be float"):
        voxelize(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 6))
    with pytest.raises(ModelError, match="NaN"):
        voxelize(torch.tensor([[0.0, float("nan"), 0.0]]), torch.zeros(1, 6))
    with pytest.raises(ModelError, match="scene 1 has no voxels"):
        v = voxelize(torch.rand(10, 3), torch.rand(10, 6))
        batch_voxels([v, type(v)(v.coords[:0], v.feats[:0], v.point_to_voxel[:0])])
    with pytest.raises(ModelError, match=r"superpoint_ids out of range \[0, 4\)"):
        superpoint_mean(torch.zeros(3, 2), torch.tensor([0, 1, 4]), 4)
    with pytest.raises(ModelError, match="1-D long tensor"):
        superpoint_mean(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 2.0]), 4)
    with pytest.raises(ModelError, match="point_to_voxel out of range"):
        voxel_to_point(torch.zeros(3, 2), torch.tensor([0, 3]))
