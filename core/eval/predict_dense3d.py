"""Dense3D predictions for a query file, written in the formats `python -m core eval` reads.

`python -m core predict dense3d` runs here: the queries (ScanRefer, Multi3DRefer or DenseScan records,
turned into samples by `core.data.datasets.refseg`, the same builders training uses) are grouped by scene,
run through `Dense3DModel.predict` in batches, and written as

- `refseg`: `{"<scene>|<object>|<ann>": [vertex indices of the predicted mask]}` (the cached scene points
  are the mesh vertices in order, so a point index is a vertex index);
- `scanrefer`: one box per query, that of the largest spatially connected part of the mask (no box when
  the mask is empty: the evaluator then counts the query as unanswered, IoU 0);
- `multi3drefer`: one box per connected part with at least `min_points` points (an empty list when the
  model emitted no [SEG] or the mask is empty: "no target").

Connected parts: the predicted points are put on a voxel grid (`voxel_size`, 5 cm by default, a little
more than the gap between two vertices of a ScanNet mesh) and the occupied voxels are labelled with
26-connectivity (`scipy.ndimage.label`); a part's box is the axis-aligned box of its points,
`[cx, cy, cz, dx, dy, dz]`, measured as the evaluator measures target boxes (from the vertices).

Per-sample extras (answer text, has_seg, score, number of points, parts) go to a details file on
request (`bench/dense3d_no_target.py` reads the scores). The score is the summed probability of the
proposals the mask was made of (the decoder's IoU estimate for a model without proposals); `--empty-below
P` turns a Multi3DRefer answer whose score is below P into "no target" (`abstain_below`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from core.atomic import atomic_write_json
from core.data.datasets.loader import SceneItem, collate
from core.data.datasets.refseg import (
    RefSegSample,
    densescan_samples,
    multi3drefer_samples,
    scanrefer_samples,
)
from core.data.datasets.scene_cache import CachedScene, SceneCache, SceneCacheConfig, default_label_map
from core.data.densescan import read_densescan
from core.data.errors import DataError
from core.data.jsonio import read_json
from core.data.multi3drefer import read_multi3drefer
from core.data.predictions import write_box_sets, write_boxes, write_vertex_sets
from core.data.scanrefer import read_scanrefer
from core.eval.predict_cli import COMPONENT_VOXEL, FORMATS, MIN_COMPONENT_POINTS, TASKS
from core.models.common.image_tokens import FrameInputs
from core.models.dense3d.modeling_dense3d import Dense3DInputs, Dense3DModel
from core.scene.errors import SceneError
from core.scene.scannet import load_scene, scans_dir, scene_folder

DEFAULT_TASK = {"scanrefer": "refseg", "densescan": "refseg", "multi3drefer": "multi3drefer"}
FRAME_SCENES = 2  # scenes whose chosen frames stay in memory (queries are run grouped by scene)


# ------------------------------------------------------------------------------------ mask -> boxes


def points_box(xyz: np.ndarray) -> np.ndarray:
    """The axis-aligned box `[cx, cy, cz, dx, dy, dz]` of (K, 3) points (K >= 1)."""
    lo, hi = xyz.min(axis=0).astype(np.float64), xyz.max(axis=0).astype(np.float64)
    return np.concatenate([(lo + hi) / 2, hi - lo])


def mask_components(
    xyz: np.ndarray, mask: np.ndarray, voxel_size: float = COMPONENT_VOXEL, min_points: int = 1
) -> list[np.ndarray]:
    """Point indices of each spatially connected part of `mask` (26-connected voxels of `voxel_size`),
    largest first (ties: lowest first index); parts with fewer than `min_points` points are dropped."""
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    chosen = np.flatnonzero(mask)
    if chosen.size == 0:
        return []
    cells = np.floor(xyz[chosen] / voxel_size).astype(np.int64)
    cells -= cells.min(axis=0)
    grid = np.zeros(tuple(cells.max(axis=0) + 1), dtype=bool)
    grid[tuple(cells.T)] = True
    labels, count = ndimage.label(grid, structure=np.ones((3, 3, 3), dtype=bool))
    point_label = labels[tuple(cells.T)] - 1  # every occupied cell has a label >= 1
    order = np.argsort(point_label, kind="stable")
    bounds = np.searchsorted(point_label[order], np.arange(count + 1))
    parts = [chosen[order[bounds[i] : bounds[i + 1]]] for i in range(count)]
    parts = [p for p in parts if len(p) >= max(min_points, 1)]
    return sorted(parts, key=lambda p: (-len(p), int(p[0])))


def component_boxes(
    xyz: np.ndarray, mask: np.ndarray, voxel_size: float = COMPONENT_VOXEL, min_points: int = 1
) -> np.ndarray:
    """(K, 6) boxes of the connected parts of `mask` (largest part first); (0, 6) for none."""
    parts = mask_components(xyz, mask, voxel_size, min_points)
    return np.array([points_box(xyz[p]) for p in parts], dtype=np.float64).reshape(-1, 6)


# ------------------------------------------------------------------------------------------ queries


def detect_format(path: Path) -> str:
    """scanrefer / multi3drefer / densescan from the first record's fields (`level`, `object_ids`)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of query records, found {type(data).__name__}")
    if not data:
        raise DataError(path, "the query file holds no records")
    first = data[0]
    if not isinstance(first, dict):
        raise DataError(path, f"expected query records (objects), found {type(first).__name__}", index=0)
    if "level" in first:
        return "densescan"
    return "multi3drefer" if "object_ids" in first else "scanrefer"


def read_queries(
    path: str | Path, scans: str | Path, fmt: str = "auto", levels: Sequence[str] = ("object", "scenario")
) -> tuple[str, list[RefSegSample]]:
    """The query file's format and its samples, built as training builds them (label table of `scans`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "query file not found")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "multi3drefer":
        return fmt, multi3drefer_samples(read_multi3drefer(path), path)
    label_map = default_label_map(scans)
    if fmt == "scanrefer":
        return fmt, scanrefer_samples(read_scanrefer(path), label_map, path)
    if fmt == "densescan":
        return fmt, densescan_samples(read_densescan(path), label_map, path, levels)
    raise DataError(path, f"unknown query format {fmt!r} (expected one of {', '.join(FORMATS)})")


def check_task(task: str, fmt: str, path: Path) -> None:
    """Refuse a task whose prediction keys the query file cannot give (the evaluator would refuse them)."""
    if task not in TASKS:
        raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    if fmt == "multi3drefer" and task != "multi3drefer":
        raise DataError(
            path, f"Multi3DRefer queries are keyed <scene>|<ann>: use --task multi3drefer, not {task}"
        )
    if fmt != "multi3drefer" and task == "multi3drefer":
        raise DataError(
            path, f"{fmt} queries are keyed <scene>|<object>|<ann>: use --task refseg or scanrefer"
        )


def check_scenes(samples: Sequence[RefSegSample], scans: str | Path, queries: Path) -> None:
    """Every scene the queries name must be a scene folder under `scans`: one error listing the missing."""
    try:
        folder = scans_dir(scans)
    except SceneError as exc:
        raise DataError(exc.path, exc.reason) from None
    missing = []
    for scene_id in sorted({s.scene_id for s in samples}):
        try:
            scene_folder(scans, scene_id)
        except SceneError:
            missing.append(scene_id)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            queries, f"{len(missing)} scene(s) named by the queries are not under {folder}: {shown}"
        )


# ---------------------------------------------------------------------------------------- predicting


@dataclass
class SampleOutput:
    """One query's prediction, reduced to what the files need (the full mask is not kept)."""

    sample: RefSegSample
    vertices: np.ndarray  # predicted vertex indices, sorted
    boxes: np.ndarray  # (K, 6) connected parts with >= min_points points, largest first
    largest: np.ndarray | None  # box of the largest part whatever its size (None: empty mask)
    answer: str
    has_seg: bool
    score: float
    abstained: bool = False  # emptied by `--empty-below`: the chosen proposals were too improbable
    named_class: str | None = None  # the class the model read from the sentence (class matching on)
    anchor_class: str | None = None  # the anchor class read from the sentence (relation matching on)

    def details(self) -> dict[str, Any]:
        extra = {"named_class": self.named_class} if self.named_class is not None else {}
        if self.anchor_class is not None:
            extra["anchor_class"] = self.anchor_class
        return {
            "scene_id": self.sample.scene_id,
            "kind": self.sample.kind,
            "question": self.sample.question,
            "answer": self.answer,
            "has_seg": self.has_seg,
            "score": self.score,
            "points": int(len(self.vertices)),
            "components": int(len(self.boxes)),
            "subset": self.sample.subset,
            "target_ids": list(self.sample.target_ids),
            "abstained": self.abstained,
            **extra,
        }


def abstain_below(outputs: Sequence[SampleOutput], threshold: float) -> list[SampleOutput]:
    """Outputs whose score (the probability of the chosen proposals) is below `threshold` become "no
    target": no points, no box. The Dense3D LLM answers with [SEG] for nearly every sentence (a sentence
    alone rarely says whether its object exists), so on Multi3DRefer, where a fifth of the queries have no
    target, a threshold on how sure the selection is decides it instead; `bench/dense3d_no_target.py`
    picks the threshold on one split and scores it on another."""
    empty = np.zeros(0, dtype=np.int64)
    return [
        replace(o, vertices=empty, boxes=np.zeros((0, 6)), largest=None, abstained=True)
        if o.score < threshold
        else o
        for o in outputs
    ]


@dataclass
class PredictRun:
    outputs: list[SampleOutput]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def per_query(self) -> float:
        return self.seconds / max(len(self.outputs), 1)


class Dense3DPredictor:
    """A model, a scans root and a scene cache at the model's voxel size; `run(samples)` predicts."""

    def __init__(
        self,
        model: Dense3DModel,
        scans: str | Path,
        cache_dir: str | Path,
        batch_size: int = 4,
        voxel_size: float = COMPONENT_VOXEL,
        min_points: int = MIN_COMPONENT_POINTS,
    ):
        if batch_size < 1:
            raise DataError(None, f"--batch-size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.scans = Path(scans)
        # prediction needs no instance labels (test scenes have none); superpoints come from segs.json
        config = SceneCacheConfig(voxel_size=model.config.voxel_size, require_instances=False)
        self.cache = SceneCache(scans, cache_dir, config)
        self.batch_size, self.voxel_size, self.min_points = batch_size, voxel_size, min_points
        self._frames: OrderedDict[str, FrameInputs] = OrderedDict()

    def frames(self, scene_id: str) -> FrameInputs:
        """The scene's chosen frames, kept for the last few scenes (queries arrive grouped by scene)."""
        if scene_id not in self._frames:
            try:
                scene = load_scene(self.scans, scene_id)
            except SceneError as exc:
                raise DataError(exc.path, f"scene {scene_id}: {exc.reason}") from None
            self._frames[scene_id] = self.model.image.select_and_load(scene)
            while len(self._frames) > FRAME_SCENES:
                self._frames.popitem(last=False)
        self._frames.move_to_end(scene_id)
        return self._frames[scene_id]

    def inputs(self, samples: Sequence[RefSegSample]) -> tuple[Dense3DInputs, list[CachedScene]]:
        scenes = [self.cache.get(s.scene_id) for s in samples]
        batch = collate([SceneItem(scene, s) for scene, s in zip(scenes, samples)])
        frames = [self.frames(s.scene_id) for s in samples] if self.model.image is not None else None
        return Dense3DInputs(batch, frames), scenes

    def run(self, samples: Sequence[RefSegSample], progress: bool = True) -> PredictRun:
        """Predict every sample (grouped by scene, in batches); outputs in the order of `samples`."""
        order = sorted(range(len(samples)), key=lambda i: (samples[i].scene_id, i))
        outputs: list[SampleOutput | None] = [None] * len(samples)
        device = self.model.device
        started = time.perf_counter()
        with tqdm(total=len(samples), desc="predict", unit="query", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                chosen = [samples[i] for i in chunk]
                inputs, scenes = self.inputs(chosen)
                predictions = self.model.predict(inputs.to(device))
                for i, sample, scene, p in zip(chunk, chosen, scenes, predictions):
                    outputs[i] = self._output(sample, scene, p)
                bar.update(len(chunk))
        return PredictRun([o for o in outputs if o is not None], time.perf_counter() - started)

    def _output(self, sample: RefSegSample, scene: CachedScene, p) -> SampleOutput:
        mask = np.asarray(p.point_mask, dtype=bool)
        parts = mask_components(scene.xyz, mask, self.voxel_size, 1)
        boxes = [points_box(scene.xyz[q]) for q in parts if len(q) >= self.min_points]
        return SampleOutput(
            sample=sample,
            vertices=np.flatnonzero(mask),
            boxes=np.array(boxes, dtype=np.float64).reshape(-1, 6),
            largest=points_box(scene.xyz[parts[0]]) if parts else None,
            answer=p.answer,
            has_seg=bool(p.has_seg),
            score=float(p.score),
            named_class=p.named_class,
            anchor_class=p.anchor_class,
        )


# ------------------------------------------------------------------------------------------ writing


def write_predictions(path: str | Path, task: str, outputs: Sequence[SampleOutput]) -> tuple[Path, int]:
    """Write one task's prediction file (atomic); returns it and the number of queries left without one."""
    if task == "refseg":
        return write_vertex_sets(path, {o.sample.key: o.vertices for o in outputs}), 0
    if task == "scanrefer":
        boxes = {o.sample.key: o.largest for o in outputs if o.largest is not None}
        return write_boxes(path, boxes), len(outputs) - len(boxes)
    if task == "multi3drefer":
        return write_box_sets(path, {o.sample.key: o.boxes for o in outputs}), 0
    raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(TASKS)})")


def write_details(path: str | Path, outputs: Sequence[SampleOutput]) -> Path:
    """Per-sample extras keyed like the predictions (answer, has_seg, score, points, components, ...)."""
    return atomic_write_json(path, {o.sample.key: o.details() for o in outputs}, indent=1)


def predict_file(
    checkpoint: str | Path,
    scans: str | Path,
    queries: str | Path,
    out: str | Path,
    task: str | None = None,
    fmt: str = "auto",
    batch_size: int = 4,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    details: str | Path | None = None,
    voxel_size: float = COMPONENT_VOXEL,
    min_points: int = MIN_COMPONENT_POINTS,
    empty_below: float | None = None,
    progress: bool = True,
) -> tuple[PredictRun, str, Path]:
    """The whole command: check the inputs, load the model, predict, write. Returns the run, task and file.

    Inputs are checked before the model is loaded (a wrong scene id fails in a second, not after minutes
    of loading); `ModelError` (checkpoint), `DataError` (queries, scenes) carry one-line messages."""
    import tempfile

    queries = Path(queries)
    fmt, samples = read_queries(queries, scans, fmt)
    if not samples:
        raise DataError(queries, "no query to predict (every record was excluded or the file is empty)")
    task = task or DEFAULT_TASK[fmt]
    check_task(task, fmt, queries)
    if empty_below is not None and task != "multi3drefer":
        raise DataError(
            None,
            f"--empty-below applies to the multi3drefer task only (not {task}: its queries "
            "always have a target)",
        )
    check_scenes(samples, scans, queries)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DataError(None, "--device cuda: no CUDA device is available here (use --device cpu)")
    model = Dense3DModel.from_pretrained(checkpoint, device=device)
    with tempfile.TemporaryDirectory(prefix="dense3d-cache-") as tmp:
        predictor = Dense3DPredictor(model, scans, cache_dir or tmp, batch_size, voxel_size, min_points)
        run = predictor.run(samples, progress)
    if empty_below is not None:
        run.outputs = abstain_below(run.outputs, empty_below)
        emptied = sum(o.abstained for o in run.outputs)
        run.notes.append(f'{emptied} queries answered "no target" (score below {empty_below:g})')
    path, unanswered = write_predictions(out, task, run.outputs)
    if unanswered:
        run.notes.append(f"{unanswered} queries with an empty mask have no box (scored as IoU 0)")
    if details is not None:
        write_details(details, run.outputs)
    return run, task, path
