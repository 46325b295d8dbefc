"""Ross3D predictions for one benchmark of a dataset split, in the file `python -m core eval <task>` reads.

`python -m core predict ross3d --task T --checkpoint DIR --data DIR --out FILE [--split val]` runs here.
The split's benchmark file becomes records exactly as training builds them
(`core.data.datasets.ross3d_samples`, without answers), run grouped by scene in batches:

- `scanqa`, `sqa3d`: `Ross3DModel.answer` -> `[{"question_id", "answer"}]` (`write_answers`);
- `scan2cap`: one caption per described object, the object's ground-truth box in the prompt (`<coord>`)
  -> `[{"scene_id", "box", "caption"}]` proposals at that box (`write_proposals`), which the evaluator
  matches back to the object;
- `scanrefer`: `Ross3DModel.ground` over the scene's proposals (the ground-truth instance boxes, as in
  training) -> the argmax's box, or no box when "no object" wins (the evaluator scores it IoU 0);
- `multi3drefer`: the proposals taken by descending probability until their sum reaches the config's
  `grounding.cumulative` (0.4) -> `{"<scene>|<ann>": [box, ...]}`, an empty list for "no object".

Proposals are the scene's ground-truth instance boxes unless `--proposals FILE` gives a detector's:
`{"<scene_id>": [box, ...]}`, or a box prediction file (`python -m core predict dense3d --task
multi3drefer` or `scanrefer`, keys `<scene>|...`) whose boxes are pooled per scene, near-duplicates (IoU >=
`DUPLICATE_IOU`) kept once: Dense3D's predicted masks as Ross3D's proposals.

A checkpoint trained with blanked frames (the text-only run, `recipe.blank_frames`) is run on blanked
frames too. `--details` writes per-sample extras (answer text, chosen object ids, probabilities).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from core.atomic import atomic_write_json
from core.data.datasets.ross3d_samples import TASKS, SceneStore, build_records, make_sample
from core.data.errors import DataError
from core.data.llava import ConversationRecord
from core.data.predictions import (
    CaptionProposal,
    as_box,
    read_json_strict,
    write_answers,
    write_box_sets,
    write_boxes,
    write_proposals,
)
from core.models.errors import ModelError
from core.models.ross3d.reconstruct_cli import load_checkpoint

DUPLICATE_IOU = 0.95


def read_proposal_boxes(path: str | Path) -> dict[str, np.ndarray]:
    """Per-scene proposal boxes from `{scene: [box, ...]}` or a ScanRefer / Multi3DRefer prediction file
    (see the module docstring)."""
    from core.scene.geometry import box_iou_matrix

    path = Path(path)
    data = read_json_strict(path)
    if not isinstance(data, dict):
        raise DataError(
            path, f"expected a JSON object keyed by scene (or by query), found {type(data).__name__}"
        )
    pooled: dict[str, list[np.ndarray]] = {}
    for key, value in data.items():
        scene_id = key.split("|", 1)[0]
        if not isinstance(value, list):
            raise DataError(path, f"expected a box or a list of boxes, found {type(value).__name__}", key)
        boxes = [value] if value and not isinstance(value[0], list) else value
        pooled.setdefault(scene_id, []).extend(as_box(path, key, b) for b in boxes)
    out = {}
    for scene_id, boxes in pooled.items():
        kept: list[np.ndarray] = []
        for box in boxes:
            if not kept or box_iou_matrix(np.stack(kept), box[None]).max() < DUPLICATE_IOU:
                kept.append(box)
        out[scene_id] = np.array(kept, dtype=np.float64).reshape(-1, 6)
    return out


@dataclass
class Prediction:
    record: ConversationRecord
    text: str | None = None  # answer / caption
    chosen: list[int] = field(default_factory=list)  # indices into the proposals
    boxes: np.ndarray | None = None  # (K, 6) chosen boxes
    probs: list[float] | None = None  # [K+1], last = no object
    proposal_ids: list[int] = field(default_factory=list)
    answer: Any = None  # QA / captions: the model's `GroundedAnswer` (the LLM's words and their source)

    @property
    def key(self) -> str:
        return str(self.record.metadata["key"])

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scene_id": self.record.scene_id, "task": self.record.metadata["dataset"]}
        if self.text is not None:
            out["answer"] = self.text
        if self.answer is not None:
            out["answer_source"] = self.answer.source  # "llm", or read from the grounded proposals
            out["llm_answer"] = self.answer.llm_text
            out["evidence_object_ids"] = list(self.answer.object_ids)
        if self.probs is not None:
            out["chosen"] = list(self.chosen)
            out["chosen_object_ids"] = [self.proposal_ids[i] for i in self.chosen]  # -1: a file's proposal
            out["target_object_ids"] = list(self.record.metadata.get("object_ids", []))
            out["no_object_prob"] = self.probs[-1]
            out["probs"] = self.probs
            out["proposal_object_ids"] = list(self.proposal_ids)  # one per probability but the last
        return out


@dataclass
class PredictRun:
    task: str
    predictions: list[Prediction]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def per_sample(self) -> float:
        return self.seconds / max(len(self.predictions), 1)


class Ross3DPredictor:
    """A model and a dataset root; `run(records)` predicts every record of one task."""

    def __init__(
        self,
        model,
        root: str | Path,
        batch_size: int = 4,
        blank_frames: bool | None = None,
        proposals: str | Path | None = None,
    ):
        if batch_size < 1:
            raise DataError(None, f"--batch-size must be >= 1, got {batch_size}")
        self.model = model.eval()
        if blank_frames is None:
            blank_frames = bool((model.config.recipe or {}).get("blank_frames", False))
        self.blank_frames = blank_frames
        boxes = read_proposal_boxes(proposals) if proposals is not None else None
        self.store = SceneStore(root, model.image, None, False, False, blank_frames, 2, boxes, proposals)
        self.batch_size = batch_size

    def run(self, records: Sequence[ConversationRecord], task: str, progress: bool = True) -> PredictRun:
        from core.models.ross3d.processor_ross3d import Ross3DBatch

        order = sorted(range(len(records)), key=lambda i: (records[i].scene_id, i))
        out: list[Prediction | None] = [None] * len(records)
        device = self.model.device
        started = time.perf_counter()
        with tqdm(total=len(records), desc=f"predict {task}", unit="sample", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                samples = [make_sample(records[i], self.store.get(records[i].scene_id), False) for i in chunk]
                batch = Ross3DBatch(samples).to(device)
                if task in ("scanrefer", "multi3drefer"):
                    for i, sample, probs in zip(chunk, samples, self.model.ground(batch)):
                        chosen = self.model.select_proposals(probs, task)
                        boxes = sample.proposals[chosen].double().numpy() if chosen else np.zeros((0, 6))
                        out[i] = Prediction(
                            records[i], None, chosen, boxes, probs.tolist(), list(sample.proposal_ids)
                        )
                else:
                    for i, answer in zip(chunk, self.model.answer_details(batch)):
                        out[i] = Prediction(records[i], answer.text, answer=answer)
                bar.update(len(chunk))
        return PredictRun(task, [p for p in out if p is not None], time.perf_counter() - started)


def write_predictions(path: str | Path, run: PredictRun) -> Path:
    """The task's prediction file (atomic); notes what the evaluator will count as unanswered."""
    task, preds = run.task, run.predictions
    if task in ("scanqa", "sqa3d"):
        return write_answers(path, {p.key: [p.text or ""] for p in preds}, top10=False)
    if task == "scan2cap":
        proposals = [
            CaptionProposal(p.record.scene_id, np.asarray(p.record.box, dtype=np.float64), p.text or "")
            for p in preds
        ]
        return write_proposals(path, proposals)
    if task == "scanrefer":
        boxes = {p.key: p.boxes[0] for p in preds if p.boxes is not None and len(p.boxes)}
        if len(boxes) < len(preds):
            run.notes.append(f"{len(preds) - len(boxes)} queries answered 'no object' have no box (IoU 0)")
        return write_boxes(path, boxes)
    if task == "multi3drefer":
        return write_box_sets(path, {p.key: p.boxes for p in preds})
    raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(TASKS)})")


def predict_task(
    checkpoint: str | Path,
    data: str | Path,
    task: str,
    out: str | Path,
    split: str = "val",
    batch_size: int = 4,
    device: str | None = None,
    details: str | Path | None = None,
    max_samples: int | None = None,
    progress: bool = True,
    proposals: str | Path | None = None,
) -> tuple[PredictRun, Path]:
    """The whole command: records first (bad data fails before the model loads), then predict and write."""
    if task not in TASKS:
        raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    data = Path(data)
    if not data.is_dir():
        raise DataError(data, "dataset root not found (a folder with scans/, annotations/ and split files)")
    records = build_records(data, split, (task,), max_samples, predict=True)
    if not records:
        raise DataError(data, f"split {split!r} has no {task} sample to predict")
    if proposals is not None:
        missing = sorted({r.scene_id for r in records} - set(read_proposal_boxes(proposals)))
        if missing and task in ("scanrefer", "multi3drefer"):
            raise DataError(
                proposals, f"no proposals for {len(missing)} scene(s) of the split: {missing[:5]}"
            )
    model = load_checkpoint(checkpoint, device)
    predictor = Ross3DPredictor(model, data, batch_size, proposals=proposals)
    run = predictor.run(records, task, progress)
    if predictor.blank_frames:
        run.notes.append("the checkpoint was trained on blanked frames: predicted on blanked frames")
    path = write_predictions(out, run)
    if details is not None:
        atomic_write_json(details, {p.key: p.details() for p in run.predictions}, indent=1)
    return run, path


def run_cli(args) -> int:
    """`python -m core predict ross3d ...` (arguments parsed by `core.eval.predict_cli`)."""
    import sys

    from core.scene.errors import SceneError

    data = args.data or args.scans
    problems = []
    if data is None:
        problems.append("--data DIR (the dataset root)")
    if args.task is None:
        problems.append(f"--task ({', '.join(TASKS)})")
    if problems:
        print(f"error: ross3d needs {' and '.join(problems)}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(max(args.threads, 1))
    try:
        run, path = predict_task(
            args.checkpoint,
            data,
            args.task,
            args.out,
            split=args.split,
            batch_size=args.batch_size,
            device=args.device,
            details=args.details,
            progress=not args.no_progress,
            proposals=args.proposals,
        )
    except (ModelError, DataError, SceneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{run.task}: {len(run.predictions)} samples, {run.per_sample:.3f} s per sample -> {path}")
    for note in run.notes:
        print(f"note: {note}")
    if args.details:
        print(f"details: {args.details}")
    return 0
