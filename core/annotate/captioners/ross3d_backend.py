"""The project's own Ross3D as a captioner, so `python -m core serve --captioner ross3d` can caption for the
annotation pipeline (`--captioner openai --send-facts` pointed at it) with the model trained here.

Ross3D reads a scene through its own frames (chosen and posed in 3D by the model's image branch from the
scans folder), not through the 2D crops a VLM gets, so a request is turned back into the scene and the
object it is about:

- the request's facts carry `key` = "<scene_id>|<object_id>[|...]" (what the pipeline sends for the
  isolated-view, highlighted-view, fusion and verification stages): the object's caption is Ross3D's
  Scan2Cap answer to "Describe the object at <coord> [cx, cy, cz, dx, dy, dz] in the scene." with the box
  from the facts' `box` when given, else the object's ground-truth instance box in the scan;
- a key naming no object ("<scene>|frame|7", "<scene>|narrative", "<scene>|<need>"): the request's prompt
  is asked as a ScanQA question about the scene (the model's one free-text task).

A request without a usable key raises `ValueError`, which the server answers with a 400 naming the field.
The request's images are not used. Answers are greedy (`Ross3DModel.answer`), in batches of one task.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from core.annotate.captioners.base import CaptionRequest

OBJECT_TASK, SCENE_TASK = "scan2cap", "scanqa"


def parse_key(facts: dict[str, Any]) -> tuple[str, int | None]:
    """(scene id, object id or None) from the facts' `key`; ValueError naming the field otherwise."""
    key = facts.get("key")
    if not isinstance(key, str) or not key.split("|", 1)[0].strip():
        raise ValueError(
            "ross3d needs densescan_facts.key = '<scene_id>|<object_id>' (send facts: --send-facts)"
        )
    parts = key.split("|")
    object_id = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return parts[0].strip(), object_id


def fact_box(facts: dict[str, Any]) -> list[float] | None:
    """The facts' optional `box` [cx, cy, cz, dx, dy, dz], checked."""
    box = facts.get("box")
    if box is None:
        return None
    if (
        not isinstance(box, list)
        or len(box) != 6
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    ):
        raise ValueError(f"densescan_facts.box must be 6 numbers [cx, cy, cz, dx, dy, dz], got {box!r}")
    return [float(v) for v in box]


class Ross3DCaptioner:
    """A trained Ross3D checkpoint and the scans its scenes come from (module docstring)."""

    name = "ross3d"

    def __init__(
        self,
        checkpoint: str | Path,
        scans: str | Path,
        device: str | None = None,
        batch_size: int = 4,
        memory_scenes: int = 8,
    ):
        from core.data.datasets.ross3d_samples import SceneStore
        from core.models.ross3d.reconstruct_cli import load_checkpoint

        self.model = load_checkpoint(checkpoint, device).eval()
        blank = bool((self.model.config.recipe or {}).get("blank_frames", False))  # as it was trained
        self.store = SceneStore(scans, self.model.image, None, False, False, blank, memory_scenes)
        self.batch_size = max(1, batch_size)
        self._lock = threading.Lock()  # one model, one request at a time: the server calls from threads

    def _sample(self, request: CaptionRequest):
        from core.models.ross3d.processor_ross3d import CAPTION_PROMPT, Ross3DSample

        scene_id, object_id = parse_key(request.facts)
        scene = self.store.get(scene_id)
        if object_id is None:
            return Ross3DSample(scene_id, SCENE_TASK, request.prompt, None, scene.frames)
        box = fact_box(request.facts)
        if box is None:
            if object_id not in scene.proposal_ids:
                raise ValueError(f"densescan_facts.key: scene {scene_id} has no object {object_id}")
            box = scene.proposals[scene.proposal_ids.index(object_id)].tolist()
        return Ross3DSample(scene_id, OBJECT_TASK, CAPTION_PROMPT, None, scene.frames, box=box)

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        import torch

        from core.data.errors import DataError
        from core.models.ross3d.processor_ross3d import Ross3DBatch

        with self._lock:
            try:
                samples = [self._sample(r) for r in requests]
            except DataError as exc:  # e.g. the key names a scene the scans folder lacks
                raise ValueError(f"densescan_facts.key: {exc}") from None
            out: list[str] = [""] * len(samples)
            for task in (OBJECT_TASK, SCENE_TASK):
                chosen = [i for i, s in enumerate(samples) if s.task == task]
                for start in range(0, len(chosen), self.batch_size):
                    part = chosen[start : start + self.batch_size]
                    batch = Ross3DBatch([samples[i] for i in part]).to(self.model.device)
                    with torch.no_grad():
                        for i, text in zip(part, self.model.answer(batch)):
                            out[i] = text
            return out
