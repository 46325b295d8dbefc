"""The blind baselines every model score is read against, scored by the runners of `python -m core eval`.

Each baseline writes an ordinary prediction file and hands it to the task's runner (`grounding`, `qa`,
`captioning`), so its numbers are computed exactly as a model's would be. None looks at the description
or the scene beyond what is named:

- ScanRefer and referring segmentation: the class-name oracle (an instance of the class the sample's
  `object_name` names: a random one, mean over seeds, and the largest by box volume) and a random instance
  of the scene (any object but wall / floor / ceiling / door / window, mean over seeds).
- Referring segmentation also: the empty mask (IoU 0 wherever there is a target: the floor of the scale)
  and a random superpoint of the scene (mean over seeds; the unit a mask decoder predicts).
- Multi3DRefer: "no target" (an empty box list for every query) and "all of the class" (every instance of
  the named class).
- ScanQA and SQA3D: the most frequent first answer of the train split, overall and per question type
  (ScanQA: the first word, with the second after "what" / "how"; SQA3D: its evaluation types), a type the
  train split lacks taking the overall one. Counted on train, evaluated on the chosen split.
- Scan2Cap: "a <class>." for every described object, proposed at its ground-truth box (every object is
  matched), so only the caption prior is measured.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_json
from core.data.errors import DataError
from core.data.multi3drefer import read_multi3drefer, write_multi3drefer
from core.data.predictions import (
    CaptionProposal,
    write_answers,
    write_box_sets,
    write_boxes,
    write_proposals,
    write_vertex_sets,
)
from core.data.scan2cap import caption_targets
from core.data.scanqa import read_scanqa, write_scanqa
from core.data.scanrefer import MULTIPLE, read_scanrefer, write_scanrefer
from core.data.sqa3d import question_type, read_sqa3d, write_sqa3d
from core.eval.captioning import evaluate_scan2cap
from core.eval.captions import CaptionScorer
from core.eval.grounding import evaluate_multi3drefer, evaluate_refseg, evaluate_scanrefer
from core.eval.qa import evaluate_scanqa, evaluate_sqa3d
from core.eval.report import EvalReport
from core.eval.scenes import ScanTruth
from core.scene.labels import LabelMap, normalize_label
from core.scene.relations import STRUCTURAL_LABELS
from core.scene.scannet import load_scene, read_segments, scene_files, scene_folder
from core.text import indefinite

SPLITS = ("train", "val", "all")
SEEDS = (0, 1, 2, 3, 4)
MAJORITY_SPLIT = "train"
LABEL_TABLE = "scannetv2-labels.combined.tsv"
GT_FILES = {
    "scanrefer": ("ScanRefer_filtered_{split}.json", read_scanrefer, write_scanrefer),
    "multi3drefer": ("multi3drefer_{split}.json", read_multi3drefer, write_multi3drefer),
    "scanqa": ("ScanQA_v1.0_{split}.json", read_scanqa, write_scanqa),
    "sqa3d": ("v1_balanced_questions_{split}_scannetv2.json", read_sqa3d, write_sqa3d),
}
# (group, metric) pairs shown in the table per task; the JSON keeps every number of every group.
SHOWN = {
    "scanrefer": [("overall", "Acc@0.25"), ("overall", "Acc@0.5"), (MULTIPLE, "Acc@0.5")],
    "refseg": [("overall", "mIoU"), ("overall", "Acc@0.25"), ("overall", "Acc@0.5")],
    "multi3drefer": [("overall", "F1@0.25"), ("overall", "F1@0.5")],
    "scanqa": [("all", m) for m in ("EM@1 raw", "EM@1 clean", "CIDEr", "CIDEr cleaned", "METEOR", "ROUGE-L")],
    "sqa3d": [("all", "EM"), ("all", "EM refined")],
    "scan2cap": [("m@0.5IoU", m) for m in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L")],
}


@dataclass
class BaselineRow:
    task: str
    baseline: str
    metric: str  # "<metric>" for the task's overall group, "<metric> [<group>]" otherwise
    value: float
    n: int


@dataclass
class BaselineResult:
    data: Path
    split: str
    rows: list[BaselineRow] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> baseline -> metrics
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "data": str(self.data),
            "split": self.split,
            "majority_split": MAJORITY_SPLIT,
            "seeds": list(SEEDS),
            "rows": [vars(r) for r in self.rows],
            "details": self.details,
            "notes": self.notes,
        }

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_json())

    def format_table(self) -> str:
        """One row per (task, baseline, metric); values x100 as papers print them."""
        cells = [["task", "baseline", "metric", "value", "n"]]
        cells += [[r.task, r.baseline, r.metric, f"{100 * r.value:.2f}", str(r.n)] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(5)]
        lines = [
            "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells
        ]
        lines.insert(1, "-" * len(lines[0]))
        header = f"blind baselines: {self.data}, split '{self.split}' (values x100)"
        return "\n".join([header, *lines, *(f"note: {n}" for n in self.notes)])


# ------------------------------------------------------------------------------------------ the inputs


def split_scenes(root: Path, split: str) -> list[str]:
    """Scene ids of a split (`all`: train and val); an empty split is a `DataError` naming its file."""
    if split not in SPLITS:
        raise DataError(None, f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    paths = [root / f"scannetv2_{name}.txt" for name in (("train", "val") if split == "all" else (split,))]
    ids = []
    for path in paths:
        if not path.is_file():
            raise DataError(path, "split file not found (expected a dataset root as `core synth` writes)")
        ids += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        named = " and ".join(str(p) for p in paths)
        raise DataError(None, f"split '{split}' is empty: {named} lists no scenes; choose another --split")
    return ids


def gt_file(root: Path, task: str, split: str, work: Path) -> Path:
    """The benchmark file of a split; for `all`, both splits' records written into one file in `work`."""
    pattern, read, write = GT_FILES[task]
    if split != "all":
        return root / "annotations" / pattern.format(split=split)
    paths = [root / "annotations" / pattern.format(split=name) for name in ("train", "val")]
    records = [r for path in paths for r in read(path)]
    return write(work / f"{task}_all.json", records)


@dataclass
class SceneObjects:
    """A scene's instances with vertices: normalised label and aligned box."""

    labels: dict[int, str]
    boxes: dict[int, np.ndarray]
    vertices: dict[int, np.ndarray]

    def of_class(self, name: str) -> list[int]:
        wanted = normalize_label(name)
        return [o for o in sorted(self.labels) if self.labels[o] == wanted]

    def describable(self) -> list[int]:
        return [o for o in sorted(self.labels) if self.labels[o] not in STRUCTURAL_LABELS]

    def largest(self, ids: list[int]) -> int:
        volume = {o: float(np.prod(self.boxes[o][3:])) for o in ids}
        return min(ids, key=lambda o: (-volume[o], o))


class SceneCatalog:
    """`ScanTruth` plus each instance's normalised label."""

    def __init__(self, truth: ScanTruth):
        self.truth = truth
        self._scenes: dict[str, SceneObjects] = {}

    def scene(self, scene_id: str) -> SceneObjects:
        if scene_id not in self._scenes:
            truth = self.truth.scene(scene_id)
            self._scenes[scene_id] = SceneObjects(
                {o: normalize_label(truth.labels[o]) for o in truth.boxes}, truth.boxes, truth.vertices
            )
        return self._scenes[scene_id]


Chooser = Callable[[SceneObjects, list[int], np.random.Generator], int]


def majority(answers: Iterable[str]) -> str | None:
    """The most frequent answer (ties: alphabetically first); None for no answers."""
    counts = Counter(answers)
    return min(counts, key=lambda a: (-counts[a], a)) if counts else None


def scanqa_question_type(question: str) -> str:
    """The first word, with the second after "what" / "how" ("what color", "how many", "where")."""
    words = [w.strip("?,.!") for w in question.lower().split()]
    if not words:
        return "other"
    return f"{words[0]} {words[1]}" if words[0] in ("what", "how") and len(words) > 1 else words[0]


def _mean_metrics(runs: list[dict[str, dict[str, float | int]]]) -> dict[str, dict[str, float | int]]:
    """Metrics of several seeded runs averaged (counts are equal across runs and kept)."""
    out: dict[str, dict[str, float | int]] = {}
    for group, values in runs[0].items():
        out[group] = {
            name: v if isinstance(v, int) else float(np.mean([run[group][name] for run in runs]))
            for name, v in values.items()
        }
    return out


# ----------------------------------------------------------------------------------------- the runner


class BaselineRunner:
    """Writes each baseline's predictions under `work` and scores them with the task's runner."""

    def __init__(self, root: Path, split: str, work: Path, scorer: CaptionScorer, progress: bool = False):
        self.root, self.split, self.work, self.scorer, self.progress = root, split, work, scorer, progress
        self.truth = ScanTruth(root)
        self.catalog = SceneCatalog(self.truth)
        table = root / LABEL_TABLE
        self.label_map = LabelMap.from_tsv(table) if table.is_file() else LabelMap.default()
        self.result = BaselineResult(root, split)

    def add(self, task: str, baseline: str, metrics: dict[str, dict], extra: dict | None = None) -> None:
        self.result.details.setdefault(task, {})[baseline] = {"metrics": metrics, **(extra or {})}
        for group, name in SHOWN[task]:
            if group in metrics and name in metrics[group]:
                label = name if group in ("overall", "all") else f"{name} [{group}]"
                value, count = float(metrics[group][name]), int(metrics[group].get("count", 0))
                self.result.rows.append(BaselineRow(task, baseline, label, value, count))

    def add_seeded(self, task: str, baseline: str, runs: list[dict[str, dict]]) -> None:
        """One baseline run once per seed: the mean is shown, each seed's metrics kept in the JSON."""
        self.add(task, f"{baseline} (mean of {len(runs)} seeds)", _mean_metrics(runs), {"per_seed": runs})

    def grounding(self) -> None:
        gt = gt_file(self.root, "scanrefer", self.split, self.work)
        items = read_scanrefer(gt)
        self.truth.preload([r.scene_id for r in items], self.progress)
        scenes = {r.scene_id: self.catalog.scene(r.scene_id) for r in items}

        def pick(choose: Chooser, pool: str, seed: int = 0) -> dict[str, tuple[str, int]]:
            """Sample key -> (scene, chosen object); a sample with no candidate gets no prediction."""
            rng = np.random.default_rng(seed)
            out = {}
            for r in items:
                scene = scenes[r.scene_id]
                ids = scene.of_class(r.object_name) if pool == "class" else scene.describable()
                if ids:
                    out[r.key] = (r.scene_id, choose(scene, ids, rng))
            return out

        def score(name: str, chosen: dict[str, tuple[str, int]]) -> tuple[EvalReport, EvalReport]:
            boxes = {k: scenes[s].boxes[o] for k, (s, o) in chosen.items()}
            verts = {k: scenes[s].vertices[o] for k, (s, o) in chosen.items()}
            box_path = write_boxes(self.work / f"scanrefer-{name}.json", boxes)
            vert_path = write_vertex_sets(self.work / f"refseg-{name}.json", verts)
            return (
                evaluate_scanrefer(gt, box_path, self.truth, self.label_map),
                evaluate_refseg(gt, vert_path, self.truth, self.label_map),
            )

        def random_one(scene: SceneObjects, ids: list[int], rng: np.random.Generator) -> int:
            return ids[int(rng.integers(len(ids)))]

        for pool, baseline in (("class", "class oracle: random of class"), ("scene", "random instance")):
            runs = [score(f"{pool}-{seed}", pick(random_one, pool, seed)) for seed in SEEDS]
            self.add_seeded("scanrefer", baseline, [sr.metrics for sr, _ in runs])
            self.add_seeded("refseg", baseline, [seg.metrics for _, seg in runs])
        largest = score("largest", pick(lambda scene, ids, rng: scene.largest(ids), "class"))
        for task, report in zip(("scanrefer", "refseg"), largest):
            self.add(task, "class oracle: largest of class", report.metrics)
        self.refseg_blind(gt, items)

    def superpoints(self, scene_id: str) -> np.ndarray:
        """(N,) superpoint id of each vertex: the scene's segs.json, else computed from the mesh."""
        folder = scene_folder(self.root, scene_id)
        segs = scene_files(folder, scene_id)["segs"]
        if segs is None:
            return load_scene(self.root, scene_id, with_frames=False).superpoints
        return read_segments(segs, self.truth.scene(scene_id).num_vertices)

    def refseg_blind(self, gt: Path, items: list) -> None:
        """Masks that ignore the text and the objects: nothing at all, and one random superpoint."""
        path = write_vertex_sets(self.work / "refseg-empty.json", {r.key: [] for r in items})
        report = evaluate_refseg(gt, path, self.truth, self.label_map)
        self.add("refseg", "empty mask", report.metrics)
        segments = {s: self.superpoints(s) for s in dict.fromkeys(r.scene_id for r in items)}
        ids = {s: np.unique(seg) for s, seg in segments.items()}
        runs = []
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            chosen = {}
            for r in items:
                pick = ids[r.scene_id][int(rng.integers(len(ids[r.scene_id])))]
                chosen[r.key] = np.flatnonzero(segments[r.scene_id] == pick)
            path = write_vertex_sets(self.work / f"refseg-superpoint-{seed}.json", chosen)
            runs.append(evaluate_refseg(gt, path, self.truth, self.label_map).metrics)
        self.add_seeded("refseg", "random superpoint", runs)

    def multi3drefer(self) -> None:
        gt = gt_file(self.root, "multi3drefer", self.split, self.work)
        items = read_multi3drefer(gt)
        self.truth.preload([r.scene_id for r in items], self.progress)
        nothing = {r.key: np.zeros((0, 6)) for r in items}
        path = write_box_sets(self.work / "multi3drefer-none.json", nothing)
        self.add("multi3drefer", "no target", evaluate_multi3drefer(gt, path, self.truth).metrics)
        every = {}
        for r in items:
            scene = self.catalog.scene(r.scene_id)
            every[r.key] = np.array([scene.boxes[o] for o in scene.of_class(r.object_name)]).reshape(-1, 6)
        path = write_box_sets(self.work / "multi3drefer-class.json", every)
        self.add("multi3drefer", "all of the class", evaluate_multi3drefer(gt, path, self.truth).metrics)

    def qa(self, task: str, type_of: Callable[[Any], str]) -> None:
        pattern, read, _ = GT_FILES[task]
        train_path = self.root / "annotations" / pattern.format(split=MAJORITY_SPLIT)
        train = [r for r in read(train_path) if r.answers]
        overall = majority(r.answers[0] for r in train)
        if overall is None:
            self.result.notes.append(f"{task}: no majority baselines, {train_path} has no answered question")
            return
        answers_by_type: dict[str, list[str]] = {}
        for r in train:
            answers_by_type.setdefault(type_of(r), []).append(r.answers[0])
        by_type = {t: majority(answers) for t, answers in sorted(answers_by_type.items())}
        gt = gt_file(self.root, task, self.split, self.work)
        items = read(gt)
        runs = {
            f"majority answer ({MAJORITY_SPLIT}): {overall!r}": {r.question_id: [overall] for r in items},
            f"majority per question type ({MAJORITY_SPLIT})": {
                r.question_id: [by_type.get(type_of(r)) or overall] for r in items
            },
        }
        for i, (baseline, answers) in enumerate(runs.items()):
            path = write_answers(self.work / f"{task}-majority-{i}.json", answers)
            if task == "scanqa":
                report = evaluate_scanqa(gt, path, self.scorer)
                self.add(task, baseline, report.metrics, {"by_type": _scanqa_by_type(report)})
            else:
                self.add(task, baseline, evaluate_sqa3d(gt, path).metrics)
        self.result.details[task]["majority answers"] = {"overall": overall, "by_type": by_type}

    def scan2cap(self) -> None:
        gt = gt_file(self.root, "scanrefer", self.split, self.work)
        targets = caption_targets(read_scanrefer(gt))
        self.truth.preload([t.scene_id for t in targets], self.progress)
        proposals = []
        for t in targets:
            boxes = self.truth.scene(t.scene_id).boxes
            if t.object_id.isdigit() and int(t.object_id) in boxes:  # else the runner names the record
                caption = f"{indefinite(normalize_label(t.object_name))}."
                proposals.append(CaptionProposal(t.scene_id, boxes[int(t.object_id)], caption))
        path = write_proposals(self.work / "scan2cap-class.json", proposals)
        report = evaluate_scan2cap(gt, path, self.truth, self.scorer)
        self.add("scan2cap", "'a <class>.' at the GT box", report.metrics)


def _scanqa_by_type(report: EvalReport) -> dict[str, dict[str, float | int]]:
    """EM@1 of the runner's per-sample scores, grouped by ScanQA question type."""
    groups: dict[str, list[dict]] = {}
    for s in report.samples:
        groups.setdefault(scanqa_question_type(s["question"]), []).append(s)
    return {
        t: {
            **{m: float(np.mean([s["scores"][m] for s in chosen])) for m in ("EM@1 raw", "EM@1 clean")},
            "count": len(chosen),
        }
        for t, chosen in sorted(groups.items())
    }


def compute_baselines(
    root: str | Path, split: str = "val", meteor: bool = True, progress: bool = False
) -> BaselineResult:
    """Every blind baseline on one split of a dataset root (see the module docstring)."""
    root = Path(root)
    scenes = split_scenes(root, split)
    with tempfile.TemporaryDirectory(prefix="baselines-") as work, CaptionScorer(meteor=meteor) as scorer:
        runner = BaselineRunner(root, split, Path(work), scorer, progress)
        runner.grounding()
        runner.multi3drefer()
        runner.qa("scanqa", lambda r: scanqa_question_type(r.question))
        runner.qa("sqa3d", lambda r: question_type(r.question))
        runner.scan2cap()
    result = runner.result
    result.rows.sort(key=lambda r: list(SHOWN).index(r.task))  # stable: baselines keep their order
    evaluated = "the train split itself (optimistic)" if split in ("train", "all") else f"the {split} split"
    result.notes[:0] = [
        f"split '{split}': {len(scenes)} scenes; seeded baselines: mean over seeds {list(SEEDS)}",
        "class oracle: an instance of the class named by the sample's object_name; largest = box volume",
        "random instance: any object of the scene but " + " / ".join(sorted(STRUCTURAL_LABELS)),
        "refseg empty mask: no vertex predicted; random superpoint: one superpoint of the scene (segs.json)",
        f"majority answers: first answers counted on the {MAJORITY_SPLIT} split, evaluated on {evaluated}",
        "ScanQA CIDEr / METEOR / ROUGE-L: answers as given (trailing period stripped; Video-3D-LLM / Ross3D, "
        "the headline); 'cleaned': after LEO's clean_answer",
        "Scan2Cap: 'a <class>.' proposed at every described object's ground-truth box (m@0.25 = m@0.5)",
    ]
    if not meteor:
        result.notes.append("METEOR skipped (--no-meteor)")
    return result
