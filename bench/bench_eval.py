"""Evaluation benchmark: 10k QA items (ScanQA, SQA3D) and 10k referring-segmentation samples.

    python bench/bench_eval.py [--qa 10000] [--seg 10000] [--scenes 5] [--vertices 150000] [--no-meteor]

Builds the inputs in a temp folder (text answers; ScanNet-format scenes of random point clusters with
their ScanRefer file and vertex predictions), times each evaluation step and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.data.predictions import write_answers, write_vertex_sets  # noqa: E402
from core.eval.captions import CaptionScorer  # noqa: E402
from core.eval.grounding import evaluate_refseg  # noqa: E402
from core.eval.qa import evaluate_scanqa, evaluate_sqa3d  # noqa: E402
from core.eval.scenes import ScanTruth  # noqa: E402
from core.scene.mesh import Mesh  # noqa: E402
from core.scene.plyio import write_ply_mesh  # noqa: E402

WORDS = (
    "brown",
    "chair",
    "table",
    "left",
    "right",
    "two",
    "three",
    "white",
    "on the desk",
    "next to the bed",
)
LABELS = ("chair", "table", "desk", "bed", "lamp", "cabinet", "sofa", "door", "window", "plant")


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def answer(rng: np.random.Generator) -> str:
    return " ".join(str(w) for w in rng.choice(WORDS, int(rng.integers(1, 4))))


def make_qa(out: Path, n: int, rng: np.random.Generator) -> tuple[Path, Path, Path, Path]:
    """ScanQA and SQA3D files of n questions and predictions (about half right)."""
    scanqa, sqa, pred_qa, pred_sqa = [], [], {}, {}
    for i in range(n):
        answers = [answer(rng) for _ in range(int(rng.integers(1, 3)))]
        qid = f"val-scene{i % 100:04d}-{i}"
        scanqa.append(
            {
                "question_id": qid,
                "scene_id": f"scene{i % 100:04d}_00",
                "question": "what?",
                "answers": answers,
            }
        )
        pred_qa[qid] = [answers[0] if rng.random() < 0.5 else answer(rng)]
        question = str(
            rng.choice(["What is it?", "Is it red?", "How many?", "Can I sit?", "Which way?", "Where?"])
        )
        sqa.append(
            {
                "question_id": i,
                "scene_id": "scene0000_00",
                "situation": "I stand.",
                "question": question,
                "answers": answers[:1],
            }
        )
        pred_sqa[str(i)] = pred_qa[qid]
    (out / "scanqa.json").write_text(json.dumps(scanqa))
    (out / "sqa3d.json").write_text(json.dumps(sqa))
    return (
        out / "scanqa.json",
        write_answers(out / "pred_qa.json", pred_qa),
        out / "sqa3d.json",
        write_answers(out / "pred_sqa.json", pred_sqa, top10=False),
    )


def make_segmentation(out: Path, n: int, scenes: int, vertices: int, rng: np.random.Generator):
    """Scenes of 40 point-cluster objects each, n ScanRefer records, and predictions (JSON and .npz)."""
    root, records, objects = out / "scans", [], {}
    for s in range(scenes):
        scene_id = f"scene{s:04d}_00"
        folder = root / scene_id
        folder.mkdir(parents=True)
        points = rng.uniform(0, 8, size=(vertices, 3)).astype(np.float32)
        segments = rng.integers(0, 400, size=vertices)  # 400 superpoints, 10 per object
        faces = np.array([[0, 1, 2]])  # the reader refuses a mesh without faces; metrics use vertices only
        write_ply_mesh(folder / f"{scene_id}_vh_clean_2.ply", Mesh(points, np.zeros_like(points), faces))
        (folder / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(
            json.dumps({"segIndices": segments.tolist()})
        )
        groups = [
            {
                "id": o,
                "objectId": o,
                "segments": list(range(10 * o, 10 * o + 10)),
                "label": LABELS[o % len(LABELS)],
            }
            for o in range(40)
        ]
        (folder / f"{scene_id}.aggregation.json").write_text(json.dumps({"segGroups": groups}))
        objects[scene_id] = [
            np.flatnonzero((segments >= 10 * o) & (segments < 10 * o + 10)) for o in range(40)
        ]
    masks, indices = {}, {}
    for i in range(n):
        scene_id, obj = f"scene{i % scenes:04d}_00", int(rng.integers(40))
        records.append(
            {
                "scene_id": scene_id,
                "object_id": str(obj),
                "object_name": LABELS[obj % len(LABELS)],
                "ann_id": str(i),
                "description": "a thing.",
                "token": ["a", "thing", "."],
            }
        )
        target = objects[scene_id][obj]
        keep = target[rng.random(len(target)) < 0.7]  # 70% of the object plus some stray vertices
        pred = np.union1d(keep, rng.integers(0, vertices, size=len(target) // 5))
        key = f"{scene_id}|{obj}|{i}"
        indices[key] = pred
        mask = np.zeros(vertices, dtype=bool)
        mask[pred] = True
        masks[key] = mask
    gt = out / "scanrefer.json"
    gt.write_text(json.dumps(records))
    return (
        root,
        gt,
        write_vertex_sets(out / "pred_seg.json", indices),
        write_vertex_sets(out / "pred_seg.npz", masks),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa", type=int, default=10_000)
    parser.add_argument("--seg", type=int, default=10_000)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--vertices", type=int, default=150_000)
    parser.add_argument("--no-meteor", action="store_true")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    rng = np.random.default_rng(0)
    qa_gt, qa_pred, sqa_gt, sqa_pred = make_qa(out, args.qa, rng)
    scans, seg_gt, seg_json, seg_npz = make_segmentation(out, args.seg, args.scenes, args.vertices, rng)

    rows = []
    with CaptionScorer(meteor=False) as scorer:
        seconds, _ = timed(lambda: evaluate_scanqa(qa_gt, qa_pred, scorer))
        rows.append((f"ScanQA, {args.qa} questions: EM + BLEU/ROUGE/CIDEr", seconds, args.qa))
    if not args.no_meteor:
        with CaptionScorer(meteor=True) as scorer:
            start, _ = timed(lambda: scorer.score({"a": ["a chair"]}, {"a": "a chair"}))
            rows.append(("METEOR jar start-up (one call, 1 sample)", start, 1))
            seconds, _ = timed(lambda: evaluate_scanqa(qa_gt, qa_pred, scorer))
            rows.append((f"ScanQA, {args.qa} questions: all metrics incl. METEOR", seconds, args.qa))
    seconds, _ = timed(lambda: evaluate_sqa3d(sqa_gt, sqa_pred))
    rows.append((f"SQA3D, {args.qa} questions: EM / refined EM", seconds, args.qa))

    truth = ScanTruth(scans)
    seconds, _ = timed(lambda: truth.preload([f"scene{s:04d}_00" for s in range(args.scenes)]))
    rows.append((f"load {args.scenes} scenes of {args.vertices} vertices", seconds, args.scenes))
    seconds, report = timed(lambda: evaluate_refseg(seg_gt, seg_json, truth))
    rows.append((f"refseg, {args.seg} samples, JSON indices (scenes loaded)", seconds, args.seg))
    seconds, _ = timed(lambda: evaluate_refseg(seg_gt, seg_npz, truth))
    rows.append((f"refseg, {args.seg} samples, .npz masks (scenes loaded)", seconds, args.seg))

    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  {'seconds':>8}  {'ms / item':>9}")
    for name, seconds, count in rows:
        print(f"{name.ljust(width)}  {seconds:8.2f}  {1000 * seconds / count:9.3f}")
    miou = 100 * report.metrics["overall"]["mIoU"]
    print(f"(refseg mIoU of the simulated predictions: {miou:.1f}; inputs in {out})")


if __name__ == "__main__":
    main()
