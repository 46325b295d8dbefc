"""3D positions of image patches from depth and pose, and their fixed sinusoidal embedding (REFERENCE §5).

Video-3D-LLM / Ross3D give every visual token the 3D position of what it sees: back-project the depth map
(metres, depth intrinsics, camera-to-world pose in the axis-aligned frame), average the xyz of the pixels
under each patch, clamp to [-15,15]x[-15,15]x[-5,5] m, discretise at 0.1 m and embed with a fixed
sinusoidal code, a third of the width per axis.

Choices made here, and why:

- Zero-depth pixels are left out of a patch's average (the reference implementation averages them in,
  pulling the patch towards the camera). A patch with no measured pixel is `valid=False`, its xyz is 0 and
  its embedding is all zeros, so it carries no position rather than a wrong one.
- Patch membership is decided in fractional image coordinates: pixel (col, row) of an HxW depth map belongs
  to patch (floor((row + 0.5) gh / H), floor((col + 0.5) gw / W)). A plain resize of the RGB to the
  encoder's square input maps the image area uniformly onto the patch grid, so this is "the same resize as
  the RGB" without resampling the depth: every depth pixel counts, zero pixels are never blended into
  their neighbours, and the depth map keeps its own resolution and intrinsics (ScanNet: 640x480 depth
  beside 1296x968 colour covering the same field of view).
- The mean is taken in the camera frame and moved to the world frame once per patch: the pose is affine,
  so mean(R p + t) = R mean(p) + t, and a frame costs four scatter-adds over its pixels instead of a
  world point per pixel. Sums are float64 so a 640x480 patch average is exact to float32.
- `pool` (Ross3D's 2x2 token pooling) merges the per-patch sums over pool x pool blocks (the last block
  of an odd grid is partial, as `ceil` pooling is), so a pooled token's xyz is the mean of all the
  measured pixels under it, not a mean of means.
- `patch_box_fraction` (Ross3D's grounding: an object's feature is the mean of the patches whose pixels
  fall inside its box, >= 50%) uses the same pixel-to-patch rule and the same pooling.
- Embedding layout: `a = 2 * (dim // 6)` channels per axis as [sin(p w_0..), cos(p w_0..)] with
  w_k = 10000^(-k / (a/2)) and p the integer index of the 0.1 m grid point nearest the clamped
  coordinate, counted from the lower clamp bound; x, y, z blocks in that order, then `dim - 3a` (0..5)
  zero channels at the end when dim is not a multiple of 6. The sin/cos values come from a per-axis table
  of the grid points (301 rows for +-15 m), a lookup per token rather than a sine per channel.
"""

from __future__ import annotations

import math

import torch

from core.models.errors import ModelError

DEFAULT_CLAMP: tuple[tuple[float, float], ...] = ((-15.0, 15.0), (-15.0, 15.0), (-5.0, 5.0))
DEFAULT_STEP = 0.1


def _check_inputs(
    depth: torch.Tensor, intrinsics: torch.Tensor, cam_to_world: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if depth.ndim != 3:
        raise ModelError(None, f"patch_xyz: depth must be [F,H,W] metres, got shape {tuple(depth.shape)}")
    frames = depth.shape[0]
    K = intrinsics
    if K.ndim == 2:
        K = K.expand(frames, *K.shape)
    if K.ndim != 3 or K.shape[0] != frames or tuple(K.shape[1:]) not in {(3, 3), (4, 4)}:
        raise ModelError(
            None,
            f"patch_xyz: intrinsics must be [F,3,3] (or [3,3]) for F={frames}, got {tuple(intrinsics.shape)}",
        )
    if cam_to_world.shape != (frames, 4, 4):
        raise ModelError(
            None, f"patch_xyz: cam_to_world must be [{frames},4,4], got {tuple(cam_to_world.shape)}"
        )
    return K[:, :3, :3], cam_to_world


def _pixel_cells(
    height: int,
    width: int,
    grid: tuple[int, int],
    device: torch.device,
    extent: tuple[float, float] = (1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cell [H*W] long: the patch of each pixel, u [H*W], v [H*W] float64 pixel centres), row-major.

    Pixels outside the part of the image the grid covers (`extent`) get cell gh*gw, one past the last.
    """
    gh, gw = int(grid[0]), int(grid[1])
    if gh < 1 or gw < 1:
        raise ModelError(None, f"patch_xyz: grid must be two positive ints, got {grid}")
    if not all(0 < e <= 1 for e in extent):
        raise ModelError(None, f"patch_xyz: extent must be two fractions in (0, 1], got {extent}")
    cols = torch.arange(width, device=device, dtype=torch.float64)
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cell_col = torch.floor((cols + 0.5) * gw / (width * extent[1])).long()
    cell_row = torch.floor((rows + 0.5) * gh / (height * extent[0])).long()
    cell = cell_row[:, None] * gw + cell_col[None, :]
    cell[(cell_row[:, None] >= gh) | (cell_col[None, :] >= gw)] = gh * gw
    # Pixel centres at whole numbers, as core.scene.geometry.
    return cell.reshape(-1), cols.repeat(height), rows.repeat_interleave(width)


def patch_sums(
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    cam_to_world: torch.Tensor,
    grid: tuple[int, int],
    extent: tuple[float, float] = (1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch sum of the measured pixels' world xyz and their count, before averaging.

    Returns (sums [F,gh,gw,3] float64, counts [F,gh,gw] float64); see the module docstring for which
    pixels belong to which patch.
    """
    K, pose = _check_inputs(depth, intrinsics, cam_to_world)
    frames, height, width = depth.shape
    gh, gw = int(grid[0]), int(grid[1])
    dev = depth.device
    cell, u, v = _pixel_cells(height, width, grid, dev, extent)
    z = depth.to(torch.float64).reshape(frames, -1)
    measured = torch.isfinite(z) & (z > 0)
    z = torch.where(measured, z, torch.zeros((), dtype=z.dtype, device=dev))

    def per_cell(values: torch.Tensor) -> torch.Tensor:  # the extra last column: pixels off the grid
        out = torch.zeros(frames, gh * gw + 1, dtype=torch.float64, device=dev).index_add_(1, cell, values)
        return out[:, :-1]

    n = per_cell(measured.to(torch.float64))
    sz, suz, svz = per_cell(z), per_cell(z * u), per_cell(z * v)
    K64 = K.to(torch.float64)
    fx, fy = K64[:, 0, 0, None], K64[:, 1, 1, None]
    cx, cy = K64[:, 0, 2, None], K64[:, 1, 2, None]
    # Camera-frame sums: sum x = sum (u - cx) z / fx, likewise y; sum z as is.
    cam = torch.stack([(suz - cx * sz) / fx, (svz - cy * sz) / fy, sz], dim=-1)  # [F,P,3]
    pose64 = pose.to(device=dev, dtype=torch.float64)
    # World sums: R (sum p) + n t.
    world = cam @ pose64[:, :3, :3].transpose(1, 2) + n[..., None] * pose64[:, None, :3, 3]
    return world.reshape(frames, gh, gw, 3), n.reshape(frames, gh, gw)


def pool_sums(sums: torch.Tensor, counts: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge per-patch sums [F,gh,gw,C] and counts [F,gh,gw] over pool x pool blocks (ceil: a partial last
    block on odd grids)."""
    if pool == 1:
        return sums, counts
    frames, gh, gw = counts.shape
    ph, pw = math.ceil(gh / pool), math.ceil(gw / pool)
    pad = (0, 0, 0, pw * pool - gw, 0, ph * pool - gh)
    s = torch.nn.functional.pad(sums, pad).reshape(frames, ph, pool, pw, pool, -1).sum(dim=(2, 4))
    c = torch.nn.functional.pad(counts, pad[2:]).reshape(frames, ph, pool, pw, pool).sum(dim=(2, 4))
    return s, c


def patch_xyz(
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    cam_to_world: torch.Tensor,
    grid: tuple[int, int],
    pool: int = 1,
    extent: tuple[float, float] = (1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean world xyz of each patch's measured pixels.

    depth [F,H,W] metres (0 or non-finite = no measurement) at the resolution `intrinsics` [F,3,3] (or one
    [3,3] for all frames) describe; cam_to_world [F,4,4] in the axis-aligned frame (`Frame.pose`);
    grid (gh, gw) the encoder's patch grid. With `pool` > 1 the result is on the pooled grid
    (ceil(gh/pool), ceil(gw/pool)). `extent` (rows, cols) is the fraction of the image the grid covers from
    the top-left: 1 when the input size is a multiple of the patch size, 378/384 for SigLIP-so400m's 27
    patches of 14 px on a 384 px input (its convolution drops the last 6 px); pixels beyond are left out.
    Returns (xyz [F,P,3] float32, 0 where invalid; valid [F,P] bool).
    """
    if pool < 1:
        raise ModelError(None, f"patch_xyz: pool must be >= 1, got {pool}")
    sums, counts = pool_sums(*patch_sums(depth, intrinsics, cam_to_world, grid, extent), pool)
    frames = counts.shape[0]
    valid = counts > 0
    xyz = torch.where(valid[..., None], sums / counts.clamp(min=1)[..., None], torch.zeros_like(sums))
    return xyz.reshape(frames, -1, 3).to(torch.float32), valid.reshape(frames, -1)


def sinusoidal_3d(
    xyz: torch.Tensor,
    dim: int,
    clamp: tuple[tuple[float, float], ...] = DEFAULT_CLAMP,
    step: float = DEFAULT_STEP,
    valid: torch.Tensor | None = None,
    temperature: float = 10000.0,
) -> torch.Tensor:
    """Fixed sinusoidal embedding [..., dim] of positions xyz [..., 3] in metres (layout: module docstring).

    Positions are clamped per axis to `clamp`, snapped to the nearest `step` grid point, and embedded with
    a third of the width per axis. Entries where `valid` is False or xyz is not finite embed to zeros.
    The output has xyz's floating dtype and device.
    """
    if xyz.shape[-1] != 3:
        raise ModelError(None, f"sinusoidal_3d: xyz must end in 3 coordinates, got shape {tuple(xyz.shape)}")
    per_axis = 2 * (dim // 6)
    if per_axis == 0:
        raise ModelError(None, f"sinusoidal_3d: dim must be >= 6 (a sin and a cos per axis), got {dim}")
    if len(clamp) != 3 or any(lo >= hi for lo, hi in clamp) or step <= 0:
        raise ModelError(None, f"sinusoidal_3d: bad clamp {clamp} or step {step}")
    out_dtype = xyz.dtype if xyz.is_floating_point() else torch.float32
    dev = xyz.device
    p = xyz.to(torch.float64)
    finite = torch.isfinite(p).all(dim=-1)
    lo = torch.tensor([c[0] for c in clamp], dtype=torch.float64, device=dev)
    hi = torch.tensor([c[1] for c in clamp], dtype=torch.float64, device=dev)
    p = torch.where(torch.isfinite(p), p, lo)  # masked below; keeps NaN out of the arithmetic
    index = torch.round((torch.minimum(torch.maximum(p, lo), hi) - lo) / step).long()  # [...,3] grid index
    keep = finite if valid is None else finite & valid.to(device=dev, dtype=torch.bool)
    index = torch.where(keep[..., None], index + 1, torch.zeros_like(index))  # row 0 of a table: zeros
    half = per_axis // 2
    omega = temperature ** (-torch.arange(half, dtype=torch.float64, device=dev) / half)
    parts = []
    for axis, (a_lo, a_hi) in enumerate(clamp):
        # One row per grid point of the axis (301 for +-15 m at 0.1 m): a lookup, not a sin per token.
        grid_points = torch.arange(int(round((a_hi - a_lo) / step)) + 1, dtype=torch.float64, device=dev)
        angles = grid_points[:, None] * omega
        table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).to(out_dtype)
        table = torch.cat([torch.zeros(1, per_axis, dtype=out_dtype, device=dev), table])
        parts.append(table[index[..., axis]])
    if dim > 3 * per_axis:
        parts.append(torch.zeros(*index.shape[:-1], dim - 3 * per_axis, dtype=out_dtype, device=dev))
    return torch.cat(parts, dim=-1)


def patch_box_fraction(
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    cam_to_world: torch.Tensor,
    grid: tuple[int, int],
    boxes: torch.Tensor,
    pool: int = 1,
    pixel_stride: int = 1,
    extent: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Fraction [F,P,B] of each patch's measured pixels whose 3D point lies in each axis-aligned box.

    boxes [B,6] are `[cx, cy, cz, dx, dy, dz]` in the frame of cam_to_world (faces inclusive). Patches
    without depth get 0. Ross3D's object feature averages the patches where this is >= 0.5. Per frame,
    a box is tested only against the pixels in the window its projected corners span (all pixels when a
    corner is behind the camera), so the cost follows the boxes' image area. `pixel_stride` > 1 counts
    only every stride-th pixel in both directions (each still in its own patch): an estimate of the
    fraction at stride^2 less cost.
    """
    K, pose = _check_inputs(depth, intrinsics, cam_to_world)
    if boxes.ndim != 2 or boxes.shape[1] != 6:
        raise ModelError(None, f"patch_box_fraction: boxes must be [B,6], got {tuple(boxes.shape)}")
    if pixel_stride < 1:
        raise ModelError(None, f"patch_box_fraction: pixel_stride must be >= 1, got {pixel_stride}")
    frames, height, width = depth.shape
    gh, gw = int(grid[0]), int(grid[1])
    cells = gh * gw
    dev = depth.device
    cell, u, v = _pixel_cells(height, width, grid, dev, extent)
    half, step = pixel_stride // 2, pixel_stride
    cell = cell.reshape(height, width)[half::step, half::step]  # the sampled lattice, each pixel's patch
    cols, rows = u[:width][half::step], v[::width][half::step]
    b = boxes.to(device=dev, dtype=torch.float64)
    lo, hi = b[:, :3] - b[:, 3:] / 2, b[:, :3] + b[:, 3:] / 2
    unit = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=torch.float64, device=dev)
    corners = lo[:, None, :] + unit * (hi - lo)[:, None, :]  # [B,8,3]
    inside = torch.zeros(frames, cells, len(b), dtype=torch.float64, device=dev)
    counts = torch.zeros(frames, cells, dtype=torch.float64, device=dev)
    K64, pose64 = K.to(device=dev, dtype=torch.float64), pose.to(device=dev, dtype=torch.float64)
    for f in range(frames):
        z = depth[f, half::step, half::step].to(torch.float64)
        measured = torch.isfinite(z) & (z > 0)
        if not measured.any():
            continue
        z = torch.where(measured, z, torch.zeros((), dtype=z.dtype, device=dev))
        fx, fy, cx, cy = K64[f, 0, 0], K64[f, 1, 1], K64[f, 0, 2], K64[f, 1, 2]
        x = (cols[None, :] - cx) * z / fx
        y = (rows[:, None] - cy) * z / fy
        world = torch.stack([x, y, z], dim=-1) @ pose64[f, :3, :3].T + pose64[f, :3, 3]  # [h,w,3]
        counts[f] = torch.bincount(cell[measured], minlength=cells + 1)[:cells].to(torch.float64)
        seen = world[measured]
        near = ((hi >= seen.min(0).values) & (lo <= seen.max(0).values)).all(dim=1).nonzero().reshape(-1)
        # A point inside a box projects inside its corners' projection (when they are all in front of
        # the camera): only that window of pixels is tested.
        to_cam = torch.linalg.inv(pose64[f])
        cam_corners = corners[near] @ to_cam[:3, :3].T + to_cam[:3, 3]  # [B',8,3]
        for j, box in enumerate(near.tolist()):
            r0, r1, c0, c1 = 0, len(rows), 0, len(cols)
            cz = cam_corners[j, :, 2]
            if bool((cz > 1e-6).all()):
                pu = fx * cam_corners[j, :, 0] / cz + cx
                pv = fy * cam_corners[j, :, 1] / cz + cy
                c0 = max(c0, math.floor((float(pu.min()) - 1 - half) / step))
                c1 = min(c1, math.ceil((float(pu.max()) + 1 - half) / step) + 1)
                r0 = max(r0, math.floor((float(pv.min()) - 1 - half) / step))
                r1 = min(r1, math.ceil((float(pv.max()) + 1 - half) / step) + 1)
                if c0 >= c1 or r0 >= r1:
                    continue
            window = world[r0:r1, c0:c1]
            hit = measured[r0:r1, c0:c1] & ((window >= lo[box]) & (window <= hi[box])).all(dim=-1)
            if hit.any():
                found = torch.bincount(cell[r0:r1, c0:c1][hit], minlength=cells + 1)[:cells]
                inside[f, :, box] = found.to(torch.float64)
    pooled, n = pool_sums(inside.reshape(frames, gh, gw, -1), counts.reshape(frames, gh, gw), pool)
    frac = pooled / n.clamp(min=1)[..., None]
    return frac.reshape(frames, -1, len(b)).to(torch.float32)
