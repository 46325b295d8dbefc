"""ScanQA answers whose value comes from the objects the question names (`Ross3DConfig.answer_colour`,
`answer_count`).

A small LLM trained from scratch learns *what kind* of answer a question wants but not *which* one: the
shipped 2-layer model answered only "black" or "white" to its 240 val colour questions (EM 0.25, the colour
prior) and "two" to every "how many" question. The grounding head, trained on ScanRefer and Multi3DRefer,
does find the objects such a question names, and the frames show their colour. So, at prediction:

1. the LLM answers as usual, and its answer's kind decides: one colour word (`is_colour_answer`) makes it a
   colour question, a number (`core.text.parse_number`) a counting question, anything else stays;
2. colour: the description the question holds ("what color is the shoe by the door?" -> "the shoe by the
   door.", `colour_subject`) is grounded as a ScanRefer description over the sample's proposals
   (`Ross3DModel.ground`), the most probable proposal is taken (a question about an object presupposes
   it, so "no object" is passed over), and the answer becomes the colour word that most pixels inside it
   read as (`box_pixel_colours`: each measured depth pixel back-projected, kept when its 3D point lies in
   the box, and named by `core.scene.colors`, the rule the pipeline names objects' colours with);
3. count: the question is grounded as a Multi3DRefer description, and the answer is the number of
   proposals the model's Multi3DRefer rule selects (`core.text.answer_number`: "zero" when it picks none).

Both choices of step 2 were measured on the train split's colour questions with the shipped model (400 of
them): the grounding picked the true box for 55.0% of the questions as asked, 56.8% of the descriptions,
64.5% of the descriptions with "no object" passed over (61.5% as asked). No pixel of the chosen box in the
frames (blanked frames: the text-only run) keeps the LLM's colour word. Nothing here is trained; it
composes what the LLM and the grounding head learned with what the frames show, as the caption copy
(`caption_copy.py`) does for class names.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from core.models.errors import ModelError
from core.scene.colors import COLOR_WORDS, sample_word_indices
from core.text import parse_number

COLOUR_NAMES = tuple(COLOR_WORDS)
# Tasks whose questions name the objects, per kind of answer. SQA3D's colour questions name the object ("the
# trash can behind me"); its counting questions count within a view of the situation ("in front of me"), which
# the grounding head does not read.
COLOUR_TASKS = ("scanqa", "sqa3d")
COUNT_TASKS = ("scanqa",)


def is_colour_answer(text: str) -> bool:
    """True when the answer is exactly one colour word ("white", "Blue.")."""
    return text.strip().rstrip(".").strip().lower() in COLOR_WORDS


_COLOUR_QUESTION = re.compile(r"^\s*what\s+colou?rs?\s+(?:is|are|was|were)\s+(.+?)[\s?.!]*$", re.IGNORECASE)


def colour_subject(question: str) -> str:
    """The description a colour question holds, as a sentence ("What color is the shoe by the door?" ->
    "the shoe by the door."); any other question unchanged."""
    found = _COLOUR_QUESTION.match(question)
    return f"{found.group(1)}." if found else question


def is_count_answer(text: str) -> bool:
    """True when the answer is one number, in words or digits ("two", "twenty-one", "21")."""
    return parse_number(text.strip().rstrip(".")) is not None


def box_pixel_colours(
    pixels: Tensor,
    depth: Tensor,
    intrinsics: Tensor,
    cam_to_world: Tensor,
    boxes: Tensor,
    image_mean: tuple[float, ...],
    image_std: tuple[float, ...],
    pixel_stride: int = 2,
) -> Tensor:
    """[K, W] share of the measured pixels inside each box [K,6] (cx,cy,cz,dx,dy,dz) that read as each word
    of `COLOR_WORDS`, over all frames; all-zero rows for boxes no pixel falls in.

    `pixels` [F,3,S,S] normalised by `image_mean` / `image_std` and covering the whole depth frame (as
    `FrameInputs` holds them); `depth` [F,H,W] metres (0 = none) with `intrinsics` [F,3,3] and
    `cam_to_world` [F,4,4]. Every `pixel_stride`-th depth pixel in both directions is counted."""
    if boxes.ndim != 2 or boxes.shape[1] != 6:
        raise ModelError(None, f"answer_colour: boxes must be [K,6], got {tuple(boxes.shape)}")
    if pixel_stride < 1:
        raise ModelError(None, f"answer_colour: pixel_stride must be >= 1, got {pixel_stride}")
    frames, _, size_h, size_w = pixels.shape
    if depth.shape[0] != frames:
        raise ModelError(None, f"answer_colour: {frames} colour frames but {depth.shape[0]} depth frames")
    mean = torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1)
    rgb = (pixels.detach().float().cpu() * std + mean).clamp(0.0, 1.0)
    b = boxes.detach().to(device="cpu", dtype=torch.float64)
    lo, hi = b[:, :3] - b[:, 3:] / 2, b[:, :3] + b[:, 3:] / 2
    counts = torch.zeros(len(b), len(COLOUR_NAMES), dtype=torch.float64)
    height, width = depth.shape[1:]
    half = pixel_stride // 2
    rows = torch.arange(half, height, pixel_stride)
    cols = torch.arange(half, width, pixel_stride)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    for f in range(frames):
        z = depth[f].detach().cpu().to(torch.float64)[v, u]
        measured = torch.isfinite(z) & (z > 0)
        if not bool(measured.any()) or not len(b):
            continue
        uu, vv, zz = u[measured].to(torch.float64), v[measured].to(torch.float64), z[measured]
        k = intrinsics[f].detach().cpu().to(torch.float64)
        pose = cam_to_world[f].detach().cpu().to(torch.float64)
        camera = torch.stack([(uu - k[0, 2]) * zz / k[0, 0], (vv - k[1, 2]) * zz / k[1, 1], zz], dim=-1)
        world = camera @ pose[:3, :3].T + pose[:3, 3]
        inside = ((world[:, None] >= lo[None]) & (world[:, None] <= hi[None])).all(dim=-1)  # [n,K]
        if not bool(inside.any()):
            continue
        # the colour image spans the depth frame: pixel centre (u + 0.5) / width of the way across
        iu = ((uu + 0.5) * size_w / width).long().clamp(max=size_w - 1)
        iv = ((vv + 0.5) * size_h / height).long().clamp(max=size_h - 1)
        words = torch.from_numpy(sample_word_indices(rgb[f][:, iv, iu].T.numpy())).long()
        onehot = torch.nn.functional.one_hot(words, len(COLOUR_NAMES)).to(torch.float64)
        counts += inside.to(torch.float64).T @ onehot
    return (counts / counts.sum(1, keepdim=True).clamp(min=1.0)).to(torch.float32)


def colour_word(shares: Tensor) -> str | None:
    """The colour word most pixels of one box read as (`box_pixel_colours` row), None for an empty row."""
    if float(shares.sum()) <= 0:
        return None
    return COLOUR_NAMES[int(shares.argmax())]
