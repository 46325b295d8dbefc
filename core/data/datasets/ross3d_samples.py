"""Ross3D's training and prediction data: benchmark files -> LLaVA records -> `Ross3DSample` items.

Three steps, each inspectable on its own:

1. `build_records(root, split, tasks)` reads the split's benchmark files (ScanQA, SQA3D, ScanRefer for
   Scan2Cap and ScanRefer, Multi3DRefer) into LLaVA-style `ConversationRecord`s (REFERENCE §2), the
   format Video-3D-LLM and Ross3D train on: `<image>` + the task's prompt from the human, the answer from
   gpt, in the words of the model's processor (`processor_ross3d`). Grounding records answer
   "It is <ground>." and carry the target boxes in `box`; Scan2Cap prompts hold `<coord>` and carry the
   described object's box (the processor writes it as text after the token). The raw benchmark text (and
   SQA3D's situation) is kept in `metadata`: the processor builds the prompt from it. `metadata` also
   keeps what prediction and scoring need: the task, the prediction key, the target object ids, the
   question type. `write_conversations` writes them.
   `build_records(..., predict=True)` builds what `predict` runs: one per question / query, and for
   Scan2Cap one per described object (the evaluator's unit), with no answer.
2. `SceneStore` prepares each scene once: its frames (`ImageBranch.select_and_load`, N frames uniform or
   coverage as the model's config says), its proposals (the ground-truth instance boxes, measured as
   `python -m core eval` measures them: `Scene.objects()`, the axis-aligned box of each instance's mesh
   vertices) and, when a loss needs them, the view and BEV targets (`SceneTargetCache`: VAE-encoded once
   per scene on disk). `blank_frames` zeroes pixels and depth: the text-only run of the same model.
3. `Ross3DDataset` joins a record with its scene into a `Ross3DSample` (targets = indices of the referred
   objects among the proposals), and `task_batches` makes every batch hold one task (Ross3D groups batches
   by task): each task's samples are cut into chunks of exactly `batch_size` (the last one topped up with
   repeats of that task's samples), and each chunk is one group of the loop's `EpochSampler`, which keeps
   a group's members together; so batches never straddle two tasks, on any number of processes.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.data.errors import DataError
from core.data.llava import COORD_TOKEN, GROUND_TOKEN, IMAGE_TOKEN, ConversationRecord, Turn
from core.data.multi3drefer import read_multi3drefer
from core.data.scan2cap import caption_targets, object_key
from core.data.scanqa import read_scanqa
from core.data.scanrefer import read_scanrefer
from core.data.sqa3d import read_sqa3d

if TYPE_CHECKING:
    from core.models.common.image_tokens import FrameInputs, ImageBranch
    from core.models.ross3d.targets import SceneTargetCache
    from core.scene.scannet import Scene

TASKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")
GROUNDING = ("scanrefer", "multi3drefer")
WITH_PROPOSALS = ("scan2cap", "scanrefer", "multi3drefer")
# ScanQA samples carry the proposals too (no targets): the colour answers ground their questions over them
# (`core.models.ross3d.grounded_answers`).
QUESTION_PROPOSALS = ("scanqa", "sqa3d")
FILES = {  # task -> benchmark file under <root>/annotations (Scan2Cap reads ScanRefer's descriptions)
    "scanqa": "ScanQA_v1.0_{split}.json",
    "sqa3d": "v1_balanced_questions_{split}_scannetv2.json",
    "scan2cap": "ScanRefer_filtered_{split}.json",
    "scanrefer": "ScanRefer_filtered_{split}.json",
    "multi3drefer": "multi3drefer_{split}.json",
}
# The model's own phrasing (core.models.ross3d.processor_ross3d, which builds the token ids from the raw
# benchmark text); repeated here so that a record shows what the model reads (a test keeps them equal).
QA_INSTRUCTION = "Answer the question using a single word or phrase."
CAPTION_PROMPT = f"Describe the object at {COORD_TOKEN} in the scene."
GROUND_INSTRUCTION = "Which object does this description refer to?"
GROUND_ANSWER = f"It is {GROUND_TOKEN}."


def gt_file(root: str | Path, task: str, split: str) -> Path:
    """The benchmark file a task reads for a split (also what `python -m core eval` scores against)."""
    if task not in TASKS:
        raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    return Path(root) / "annotations" / FILES[task].format(split=split)


def _scene_ids(root: Path, split: str) -> set[str]:
    path = root / f"scannetv2_{split}.txt"
    try:
        return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    except FileNotFoundError:
        raise DataError(path, f"split file not found (split {split!r})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read the split file ({exc})") from None


def _record(
    rid: str, scene_id: str, prompt: str, answer: str | None, metadata: dict, box: Any = None
) -> ConversationRecord:
    turns = [Turn("human", f"{IMAGE_TOKEN}\n{prompt}")]
    if answer is not None:
        turns.append(Turn("gpt", answer))
    return ConversationRecord(rid, turns, f"scannet/{scene_id}", metadata, box)


def _object_id(path: Path, index: int | str, value: str) -> int:
    if not str(value).isdigit():
        raise DataError(path, f"expected an integer ScanNet object id, found {value!r}", index, "object_id")
    return int(value)


class SceneBoxes:
    """Ground-truth instance boxes per scene (`Scene.objects()`, loaded without frames, cached)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._boxes: dict[str, dict[int, list[float]]] = {}

    def __call__(self, scene_id: str) -> dict[int, list[float]]:
        if scene_id not in self._boxes:
            from core.scene.errors import SceneError
            from core.scene.scannet import load_scene

            try:
                scene = load_scene(self.root, scene_id, with_frames=False)
            except SceneError as exc:
                raise DataError(exc.path, f"scene {scene_id}: {exc.reason}") from None
            self._boxes[scene_id] = {o.object_id: [float(v) for v in o.box] for o in scene.objects()}
        return self._boxes[scene_id]

    def box(self, path: Path, index: int | str, scene_id: str, object_id: int) -> list[float]:
        boxes = self(scene_id)
        if object_id not in boxes:
            raise DataError(
                path, f"scene {scene_id} has no object {object_id} with vertices", index, "object_id"
            )
        return boxes[object_id]


def task_records(
    root: str | Path,
    task: str,
    split: str,
    scenes: set[str] | None = None,
    boxes: SceneBoxes | None = None,
    predict: bool = False,
) -> list[ConversationRecord]:
    """One task's records of a split (see the module docstring); `predict`: no answers, Scan2Cap one record
    per described object. Records of scenes outside `scenes` (default: the split file's) are left out."""
    root = Path(root)
    path = gt_file(root, task, split)
    scenes = _scene_ids(root, split) if scenes is None else scenes
    boxes = boxes or SceneBoxes(root)
    out: list[ConversationRecord] = []
    if task == "scanqa":
        for r in read_scanqa(path):
            if r.scene_id in scenes:
                answer = None if predict else (r.answers[0] if r.answers else None)
                if answer is None and not predict:
                    continue  # a question without an answer teaches nothing
                words = r.question.lower().split()
                meta = {"dataset": task, "key": r.question_id, "question_type": words[0] if words else "",
                        "answers": list(r.answers), "object_ids": list(r.object_ids)}  # fmt: skip
                meta["question"] = r.question
                prompt = f"{r.question} {QA_INSTRUCTION}"
                out.append(_record(f"scanqa|{r.question_id}", r.scene_id, prompt, answer, meta))
    elif task == "sqa3d":
        for r in read_sqa3d(path):
            if r.scene_id in scenes:
                answer = None if predict else (r.answers[0] if r.answers else None)
                if answer is None and not predict:
                    continue
                meta = {"dataset": task, "key": r.question_id, "question_type": r.question_type,
                        "answers": list(r.answers), "situation": r.situation,
                        "question": r.question}  # fmt: skip
                prompt = f"{r.situation} {r.question} {QA_INSTRUCTION}"
                out.append(_record(f"sqa3d|{r.question_id}", r.scene_id, prompt, answer, meta))
    elif task == "scan2cap":
        items = [r for r in read_scanrefer(path) if r.scene_id in scenes]
        if predict:
            for t in caption_targets(items):
                oid = _object_id(path, t.key, t.object_id)
                meta = {"dataset": task, "key": t.key, "object_ids": [oid], "object_name": t.object_name,
                        "question": CAPTION_PROMPT}  # fmt: skip
                box = boxes.box(path, t.key, t.scene_id, oid)
                out.append(_record(f"scan2cap|{t.key}", t.scene_id, CAPTION_PROMPT, None, meta, box))
        else:
            for i, r in enumerate(items):
                oid = _object_id(path, i, r.object_id)
                key = object_key(r.scene_id, r.object_id)
                meta = {"dataset": task, "key": key, "object_ids": [oid], "object_name": r.object_name,
                        "question": CAPTION_PROMPT}  # fmt: skip
                box = boxes.box(path, i, r.scene_id, oid)
                rid = f"scan2cap|{r.key}"
                out.append(_record(rid, r.scene_id, CAPTION_PROMPT, r.description, meta, box))
    elif task == "scanrefer":
        for i, r in enumerate(read_scanrefer(path)):
            if r.scene_id in scenes:
                oid = _object_id(path, i, r.object_id)
                meta = {"dataset": task, "key": r.key, "object_ids": [oid], "object_name": r.object_name}
                box = boxes.box(path, i, r.scene_id, oid)
                meta["question"] = r.description
                prompt = f"{r.description} {GROUND_INSTRUCTION}"
                answer = None if predict else GROUND_ANSWER
                out.append(_record(f"scanrefer|{r.key}", r.scene_id, prompt, answer, meta, box))
    elif task == "multi3drefer":
        for i, r in enumerate(read_multi3drefer(path)):
            if r.scene_id in scenes:
                meta = {"dataset": task, "key": r.key, "object_ids": list(r.object_ids),
                        "eval_type": r.eval_type, "object_name": r.object_name}  # fmt: skip
                box = [boxes.box(path, i, r.scene_id, oid) for oid in r.object_ids]
                meta["question"] = r.description
                prompt = f"{r.description} {GROUND_INSTRUCTION}"
                answer = None if predict else GROUND_ANSWER
                out.append(_record(f"multi3drefer|{r.key}", r.scene_id, prompt, answer, meta, box))
    else:
        raise DataError(None, f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    return out


def build_records(
    root: str | Path,
    split: str,
    tasks: Sequence[str] = TASKS,
    max_per_task: int | None = None,
    predict: bool = False,
) -> list[ConversationRecord]:
    """Every task's records of a split, task by task in `TASKS` order; `max_per_task` keeps the first few."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise DataError(None, f"unknown task(s) {unknown} (expected some of {', '.join(TASKS)})")
    root = Path(root)
    scenes, boxes = _scene_ids(root, split), SceneBoxes(root)
    out: list[ConversationRecord] = []
    for task in TASKS:
        if task in tasks:
            found = task_records(root, task, split, scenes, boxes, predict)
            out += found[:max_per_task] if max_per_task else found
    return out


def answer_text(record: ConversationRecord) -> str | None:
    turns = [t for t in record.conversations if t.speaker == "gpt"]
    return turns[0].text if turns else None


# --------------------------------------------------------------------------------------------- scenes


@dataclass
class SceneData:
    """What every sample of one scene shares."""

    scene_id: str
    frames: FrameInputs
    proposals: torch.Tensor  # [K,6] ground-truth instance boxes, object id order
    proposal_ids: list[int]
    view_targets: torch.Tensor | None  # [F,T,C] one per chosen frame
    bev_target: torch.Tensor | None  # [T,C]
    bev_mask: torch.Tensor | None  # [T] bool
    external: bool = False  # proposals from a file (a detector's, e.g. Dense3D's): no object ids, no targets
    proposal_labels: list[str] = field(default_factory=list)  # raw labels of the proposals; [] if external


def blank(frames: FrameInputs) -> FrameInputs:
    """The same frames with zero pixels (the encoder's mean colour) and no depth (no 3D embedding)."""
    from core.models.common.image_tokens import FrameInputs

    return FrameInputs(
        torch.zeros_like(frames.pixels),
        torch.zeros_like(frames.depth),
        frames.intrinsics.clone(),
        frames.cam_to_world.clone(),
        list(frames.frame_indices),
    )


def scene_proposals(scene: Scene) -> tuple[torch.Tensor, list[int], list[str]]:
    """Ground-truth instance boxes [K,6] (as the evaluator measures them), their object ids and labels."""
    objects = sorted(scene.objects(), key=lambda o: o.object_id)
    boxes = np.array([o.box for o in objects], dtype=np.float32).reshape(-1, 6)
    return torch.from_numpy(boxes), [int(o.object_id) for o in objects], [o.label for o in objects]


class SceneStore:
    """Per-scene frames, proposals and targets, kept for the `memory_scenes` most recent scenes.

    `targets` None: no reconstruction targets (the preset switched both losses off, or prediction).
    `proposals` {scene_id: (K, 6) boxes} replaces the ground-truth boxes (evaluation with a detector's
    proposals); a scene it lacks is a `DataError` naming `proposals_source`."""

    def __init__(
        self,
        root: str | Path,
        image: ImageBranch,
        targets: SceneTargetCache | None = None,
        views: bool = True,
        bev: bool = True,
        blank_frames: bool = False,
        memory_scenes: int = 64,
        proposals: dict[str, np.ndarray] | None = None,
        proposals_source: str | Path | None = None,
    ):
        self.root, self.image, self.targets = Path(root), image, targets
        self.proposals, self.proposals_source = proposals, proposals_source
        self.views, self.bev, self.blank_frames = views, bev, blank_frames
        self.memory_scenes = memory_scenes
        self._scenes: OrderedDict[str, SceneData] = OrderedDict()

    def get(self, scene_id: str) -> SceneData:
        if scene_id in self._scenes:
            self._scenes.move_to_end(scene_id)
            return self._scenes[scene_id]
        from core.scene.errors import SceneError
        from core.scene.scannet import load_scene

        try:
            scene = load_scene(self.root, scene_id)
        except SceneError as exc:
            raise DataError(exc.path, f"scene {scene_id}: {exc.reason}") from None
        frames = self.image.select_and_load(scene)
        proposals, ids, labels = scene_proposals(scene)
        if self.proposals is not None:
            if scene_id not in self.proposals:
                raise DataError(self.proposals_source, f"no proposals for scene {scene_id}")
            given = np.asarray(self.proposals[scene_id], dtype=np.float32).reshape(-1, 6)
            proposals, ids, labels = torch.from_numpy(given.copy()), [-1] * len(given), []
        views = bev = mask = None
        if self.targets is not None and (self.views or self.bev):
            found = self.targets.get(scene, frames.frame_indices)
            views = found.views if self.views else None
            bev, mask = (found.bev, found.bev_mask) if self.bev else (None, None)
        if self.blank_frames:
            frames = blank(frames)
        self.image.frame_positions(frames)  # here, so that loader workers send them with the batch
        external = self.proposals is not None
        data = SceneData(scene_id, frames, proposals, ids, views, bev, mask, external, labels)
        self._scenes[scene_id] = data
        while len(self._scenes) > self.memory_scenes:
            self._scenes.popitem(last=False)
        return data


def record_task(record: ConversationRecord) -> str:
    task = record.metadata.get("dataset")
    if task not in TASKS:
        raise DataError(
            None, f"record {record.id}: metadata.dataset {task!r} is not one of {', '.join(TASKS)}"
        )
    return task


def record_targets(record: ConversationRecord, proposal_ids: list[int]) -> list[int]:
    """Indices into the proposals of the objects a record refers to (Scan2Cap: the described object)."""
    index = {oid: i for i, oid in enumerate(proposal_ids)}
    out = []
    for oid in record.metadata.get("object_ids", []):
        if oid not in index:
            raise DataError(
                None, f"record {record.id}: object {oid} is not an instance of scene {record.scene_id}"
            )
        out.append(index[oid])
    return out


def make_sample(record: ConversationRecord, scene: SceneData, with_answer: bool = True):
    """A record and its scene -> `Ross3DSample`."""
    from core.models.ross3d.processor_ross3d import Ross3DSample

    task = record_task(record)
    proposals = task in WITH_PROPOSALS or task in QUESTION_PROPOSALS
    meta = record.metadata
    return Ross3DSample(
        scene_id=scene.scene_id,
        task=task,
        question=str(meta.get("question", "")),
        answer=answer_text(record) if with_answer else None,
        frames=scene.frames,
        proposals=scene.proposals if proposals else None,
        proposal_ids=list(scene.proposal_ids) if proposals else [],
        proposal_labels=list(scene.proposal_labels) if proposals else [],
        targets=record_targets(record, scene.proposal_ids) if task in WITH_PROPOSALS and not scene.external else [],
        view_targets=scene.view_targets,
        bev_target=scene.bev_target,
        bev_mask=scene.bev_mask,
        situation=meta.get("situation"),
        box=list(record.box) if task == "scan2cap" and record.box is not None else None,
        sample_id=record.id,
        question_type=meta.get("question_type"),
    )


class Ross3DDataset(Dataset):
    """Records joined with their scenes; `order` (from `task_batches`) lists record indices, repeats
    allowed, so that consecutive `batch_size` items share one task."""

    def __init__(
        self, records: Sequence[ConversationRecord], store: SceneStore, order: list[int] | None = None
    ):
        self.records, self.store = list(records), store
        self.order = list(range(len(self.records))) if order is None else list(order)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int):
        record = self.records[self.order[index]]
        return make_sample(record, self.store.get(record.scene_id))


def collate(samples: list):
    """Samples of one task -> `Ross3DBatch` (a mixed batch means the sampler was not task-grouped)."""
    from core.models.ross3d.processor_ross3d import Ross3DBatch

    tasks = {s.task for s in samples}
    if len(tasks) != 1:
        raise DataError(None, f"a Ross3D batch must hold one task, got {sorted(tasks)}")
    return Ross3DBatch(list(samples))


def task_batches(tasks: Sequence[str], batch_size: int, seed: int = 0) -> tuple[list[int], list[str]]:
    """(order, groups): indices into `tasks` (repeats allowed) and one group key per position, such that
    each group is exactly `batch_size` positions of one task (see the module docstring)."""
    if batch_size < 1:
        raise DataError(None, f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed)
    order: list[int] = []
    groups: list[str] = []
    by_task: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        by_task.setdefault(task, []).append(i)
    for task, members in by_task.items():
        members = members[:]
        rng.shuffle(members)
        chunks = math.ceil(len(members) / batch_size)
        padded = members + [members[k % len(members)] for k in range(chunks * batch_size - len(members))]
        for c in range(chunks):
            order += padded[c * batch_size : (c + 1) * batch_size]
            groups += [f"{task}#{c}"] * batch_size
    return order, groups
