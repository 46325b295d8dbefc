"""Failure analysis on real eval reports: predictions written as files for the session's synthetic scenes
(ground truth perturbed in known ways), scored by `python -m core eval`, loaded into the per-sample table;
its sort, filters and breakdowns, the TP / FP / FN outcomes against hand computations, and "send to
review" into a real database (SQLite, and PostgreSQL when `REVIEW_TEST_PG_URL` is set)."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pg_schema import PG_URL, private_schema

from core.__main__ import main as core_main
from core.data.densescan import DenseScanRecord, write_densescan
from core.data.errors import DataError
from core.data.multi3drefer import read_multi3drefer
from core.data.predictions import (
    CaptionProposal,
    write_answers,
    write_box_sets,
    write_boxes,
    write_proposals,
    write_texts,
    write_vertex_sets,
)
from core.data.scan2cap import caption_targets
from core.data.scanqa import read_scanqa
from core.data.scanrefer import read_scanrefer
from core.data.sqa3d import read_sqa3d
from core.eval.failures import ALL, BINS, SampleFilter, breakdown, choices, select
from core.eval.outcomes import box_outcome, mask_outcome, match_boxes, sample_outcome
from core.eval.samples import load_report
from core.eval.scenes import ScanTruth
from core.scene.labels import normalize_label
from core.scene.scannet import load_scene
from core.scene.visibility import instance_visibility
from review import ItemKey, QueueFilter, ReviewService, Role
from review.failures import FAILURE_REASON, failure_from_sample

SPLIT = "val"


def _kept(i: int, target: np.ndarray) -> np.ndarray:
    """Sample i's predicted share of its target: 0, 1/4, 2/4, 3/4 or all of it, cycling."""
    return target[: int(len(target) * (i % 5) / 4)] if i % 5 else target[:0]


def build_reports(root: Path, out: Path, tasks: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Prediction files for every task over the split, each (or each of `tasks`) scored by
    `python -m core eval`."""
    out.mkdir(parents=True, exist_ok=True)
    notes = root / "annotations"
    truth = ScanTruth(root)
    refer = read_scanrefer(notes / f"ScanRefer_filtered_{SPLIT}.json")
    vertices, boxes = {}, {}
    for i, r in enumerate(refer):
        scene = truth.scene(r.scene_id)
        target = scene.vertices[int(r.object_id)]
        others = sorted(o for o in scene.vertices if o != int(r.object_id))
        stray = scene.vertices[others[i % len(others)]][: max(1, len(target) // 3)] if i % 3 == 0 else []
        vertices[r.key] = np.unique(np.concatenate([_kept(i, target), stray])).astype(np.int64)
        box = scene.boxes[int(r.object_id)].copy()
        box[:3] += (i % 4) * 0.15  # shifted 0, 15, 30, 45 cm along every axis
        boxes[r.key] = box
    write_vertex_sets(out / "refseg.json", vertices)
    write_boxes(out / "scanrefer.json", boxes)
    sets = {}
    for i, r in enumerate(read_multi3drefer(notes / f"multi3drefer_{SPLIT}.json")):
        scene = truth.scene(r.scene_id)
        sets[r.key] = np.array([scene.boxes[int(o)] for o in r.object_ids][: 1 + i % 2]).reshape(-1, 6)
    write_box_sets(out / "multi3drefer.json", sets)
    qa = read_scanqa(notes / f"ScanQA_v1.0_{SPLIT}.json")
    write_answers(
        out / "scanqa.json", {r.question_id: [r.answers[0] if i % 2 else "purple"] for i, r in enumerate(qa)}
    )
    sqa = read_sqa3d(notes / f"v1_balanced_questions_{SPLIT}_scannetv2.json")
    write_answers(
        out / "sqa3d.json", {r.question_id: [r.answers[0] if i % 3 else "nowhere"] for i, r in enumerate(sqa)}
    )
    proposals = []
    for i, t in enumerate(caption_targets(refer)):
        box = truth.scene(t.scene_id).boxes[int(t.object_id)].copy()
        proposals.append(
            CaptionProposal(t.scene_id, box, t.references[0] if i % 2 else f"a {t.object_name}.")
        )
    write_proposals(out / "scan2cap.json", proposals)
    records = [
        DenseScanRecord(
            r.scene_id, r.object_id, r.object_name, r.ann_id, r.description, list(r.token), "object"
        )
        for r in refer
    ]
    write_densescan(out / "densescan_gt.json", records)
    groups = sorted({(r.scene_id, r.object_id, r.object_name) for r in records})
    captions = {f"object|{s}|{o}": f"a {n.replace('_', ' ')}." for s, o, n in groups}
    write_texts(out / "densescan.json", captions)

    gt = {
        "refseg": notes / f"ScanRefer_filtered_{SPLIT}.json",
        "scanrefer": notes / f"ScanRefer_filtered_{SPLIT}.json",
        "multi3drefer": notes / f"multi3drefer_{SPLIT}.json",
        "scanqa": notes / f"ScanQA_v1.0_{SPLIT}.json",
        "sqa3d": notes / f"v1_balanced_questions_{SPLIT}_scannetv2.json",
        "scan2cap": notes / f"ScanRefer_filtered_{SPLIT}.json",
        "densescan": out / "densescan_gt.json",
    }
    reports = {}
    for task, gt_path in gt.items():
        if tasks is not None and task not in tasks:
            continue
        report = out / f"{task}.{task}-eval.json"
        argv = ["eval", task, "--gt", str(gt_path), "--pred", str(out / f"{task}.json"), "--out", str(report)]
        if task in ("refseg", "scanrefer", "multi3drefer", "scan2cap"):
            argv += ["--scans", str(root)]
        if task in ("scanqa", "scan2cap", "densescan"):
            argv.append("--no-meteor")
        assert core_main(argv) == 0, task
        reports[task] = report
    return reports


@pytest.fixture(scope="session")
def reports(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_reports(synth_root, tmp_path_factory.mktemp("failure-reports"))


# the table -----------------------------------------------------------------------------------------------


def test_every_task_report_loads_worst_first(reports: dict[str, Path], synth_root: Path) -> None:
    for task, path in reports.items():
        table = load_report(path, synth_root)  # QA and DenseScan reports name no scans: the app's are used
        raw = json.loads(path.read_text())
        assert table.task == task and len(table.frame) == raw["num_samples"] > 0
        metric = table.default_metric
        assert metric in table.metrics, (task, table.metrics)
        rows = select(table, metric)
        values = rows[metric].to_numpy()
        assert np.all(np.diff(values) >= 0), task  # worst first
        assert set(rows["key"]) == {s["key"] for s in raw["samples"]}
        # the per-sample fields failure analysis needs, written by the eval command itself
        needed = {"scanqa": "object_ids", "multi3drefer": "object_name", "densescan": "ann_ids"}.get(task)
        assert needed is None or all(needed in s for s in raw["samples"]), task
        if task != "sqa3d":  # every other task names its target objects: their scene facts are known
            known = table.frame["size"].notna()
            assert known.mean() > 0.5, task
            assert ((table.frame["visible"][known] >= 0) & (table.frame["visible"][known] <= 1)).all()


def test_refseg_rows_sort_and_filter_as_computed_by_hand(reports: dict[str, Path], synth_root: Path) -> None:
    path = reports["refseg"]
    raw = json.loads(path.read_text())
    table = load_report(path)
    by_hand = sorted(raw["samples"], key=lambda s: (s["iou"], s["key"]))
    rows = select(table, "IoU")
    assert list(rows["key"]) == [s["key"] for s in by_hand]
    assert rows["IoU"].tolist() == pytest.approx([s["iou"] for s in by_hand])

    name = Counter(normalize_label(s["object_name"]) for s in raw["samples"]).most_common(1)[0][0]
    only = select(table, "IoU", SampleFilter(category=name))
    assert len(only) == sum(normalize_label(s["object_name"]) == name for s in raw["samples"])
    unique = select(table, "IoU", SampleFilter(group="unique"))
    assert len(unique) == raw["metrics"]["unique"]["count"]
    assert set(unique["key"]) == {s["key"] for s in raw["samples"] if s["split"] == "unique"}

    # distractors, size: from the scene, counted here without the loader's code
    scene = load_scene(synth_root, raw["samples"][0]["scene_id"], with_frames=False)
    labels = {i.object_id: normalize_label(i.label) for i in scene.instances if len(i.vertex_indices)}
    for sample in raw["samples"]:
        row = table.frame.iloc[table.position(sample["key"])]
        own = labels[int(sample["object_id"])]
        assert row["distractors"] == sum(label == own for label in labels.values()) - 1
        points = scene.mesh.vertices[scene.instance(int(sample["object_id"])).vertex_indices]
        assert row["size"] == pytest.approx(float((points.max(0) - points.min(0)).max()), abs=1e-5)
    alone = select(table, "IoU", SampleFilter(distractors="0"))
    assert len(alone) and (alone["distractors"] == 0).all()
    assert len(alone) == sum(
        sum(label == labels[int(s["object_id"])] for label in labels.values()) == 1 for s in raw["samples"]
    )
    small = select(table, "IoU", SampleFilter(size="< 0.5 m", words="< 10"))
    assert (small["size"] < 0.5).all() and (small["words"] < 10).all()
    assert len(small) == sum((table.frame["size"] < 0.5) & (table.frame["text"].str.split().str.len() < 10))
    failing = select(table, "IoU", SampleFilter(failing_below=0.25))
    assert len(failing) == sum(s["iou"] < 0.25 for s in raw["samples"])


def test_visibility_agrees_with_the_project_visibility_table(
    reports: dict[str, Path], synth_root: Path
) -> None:
    table = load_report(reports["refseg"])
    scene_id = table.frame["scene"].iloc[0]
    visibility = instance_visibility(load_scene(synth_root, scene_id))
    best = dict(zip(visibility.object_ids.tolist(), visibility.fraction().max(axis=0).tolist()))
    for _, row in table.frame.iterrows():
        object_id = int(row["objects"])
        assert row["best_view"] == pytest.approx(best[object_id])
        assert row["best_view"] <= row["visible"] + 1e-9  # seen somewhere >= seen in the best frame
    assert (table.frame["visible"] > table.frame["best_view"] + 0.01).any()  # frames see different parts


def test_breakdowns_are_the_per_group_means(reports: dict[str, Path]) -> None:
    path = reports["refseg"]
    raw = json.loads(path.read_text())
    table = load_report(path)
    per_class: dict[str, list[float]] = {}
    for s in raw["samples"]:
        per_class.setdefault(normalize_label(s["object_name"]), []).append(s["iou"])
    frame = breakdown(table, "IoU", "class", top=100)
    assert {r["class"]: (r["mean"], r["count"]) for _, r in frame.iterrows()} == {
        name: (pytest.approx(float(np.mean(v))), len(v)) for name, v in per_class.items()
    }
    sizes = breakdown(table, "IoU", "size")
    assert list(sizes["size"]) == [b for b in BINS["size"].choices if b in set(sizes["size"])]  # bin order
    assert sizes["count"].sum() == len(raw["samples"])
    unique = breakdown(table, "IoU", "class", SampleFilter(group="unique"), top=100)  # over the filtered rows
    assert unique["count"].sum() == raw["metrics"]["unique"]["count"]
    assert float((unique["mean"] * unique["count"]).sum() / unique["count"].sum()) == pytest.approx(
        raw["metrics"]["unique"]["mIoU"]
    )
    words = breakdown(table, "IoU", "words")
    short = [s["iou"] for s in raw["samples"] if len(s["description"].split()) < 10]
    if short:
        assert words.set_index("words").at["< 10", "mean"] == pytest.approx(float(np.mean(short)))
    assert choices(table, "group") == [ALL, "multiple", "unique"]
    assert choices(table, "size") == [ALL, *[b for b in BINS["size"].choices if b in set(sizes["size"])]]


def test_a_file_that_is_not_a_report_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"task": "refseg"}))
    with pytest.raises(DataError, match="notes.json.*not a report"):
        load_report(bad)
    bad.write_text(json.dumps({"task": "vqa", "samples": []}))
    with pytest.raises(DataError, match="unknown task 'vqa'"):
        load_report(bad)


# outcomes ------------------------------------------------------------------------------------------------


def test_refseg_tp_fp_fn_counts_match_sets_computed_by_hand(
    reports: dict[str, Path], synth_root: Path
) -> None:
    table = load_report(reports["refseg"])
    predictions = json.loads((reports["refseg"].parent / "refseg.json").read_text())
    scene = load_scene(synth_root, table.frame["scene"].iloc[0], with_frames=False)
    checked = 0
    for key in select(table, "IoU")["key"]:
        sample = table.sample(key)
        predicted = set(predictions[key])
        target = set(scene.instance(int(sample["object_id"])).vertex_indices.tolist())
        outcome = sample_outcome(table, key, scene.mesh.vertices, scene.vertex_instance)
        assert outcome is not None
        assert set(outcome.tp.tolist()) == predicted & target
        assert set(outcome.fp.tolist()) == predicted - target
        assert set(outcome.fn.tolist()) == target - predicted
        assert outcome.point_iou == pytest.approx(sample["iou"], abs=1e-6)
        checked += bool(outcome.fp.size) and bool(outcome.tp.size)
    assert checked  # some samples have all three kinds


def test_box_outcomes_on_a_hand_made_case() -> None:
    # target: the unit box at the origin; prediction: the same box moved 0.5 m along x (IoU 1/3)
    points = np.array([[0.0, 0, 0], [0.4, 0, 0], [-0.4, 0, 0], [0.9, 0, 0], [3.0, 0, 0]])
    target_mask = np.array([True, True, True, False, False])  # the first three belong to the target
    target = np.array([[0.0, 0, 0, 1, 1, 1]])
    pred = np.array([[0.5, 0, 0, 1, 1, 1]])
    loose = box_outcome(points, target_mask, pred, target, 0.25)
    assert loose.tp.tolist() == [0, 1] and loose.fn.tolist() == [2] and loose.fp.tolist() == [3]
    assert [k for _, k, _ in loose.pred_boxes] == ["TP"] and loose.pred_boxes[0][2] == pytest.approx(1 / 3)
    strict = box_outcome(points, target_mask, pred, target, 0.5)
    assert [k for _, k, _ in strict.pred_boxes] == ["FP"] and [k for _, k, _ in strict.target_boxes] == ["FN"]
    # two predictions, three targets: one exact, one nowhere
    targets = np.array([[0, 0, 0, 1, 1, 1], [5, 0, 0, 1, 1, 1], [0, 5, 0, 1, 1, 1]], dtype=float)
    preds = np.array([[5, 0, 0, 1, 1, 1], [9, 9, 9, 1, 1, 1]], dtype=float)
    pairs, count = match_boxes(preds, targets, 0.5)
    assert pairs == {0: (1, pytest.approx(1.0))} and count == 1
    multi = box_outcome(points, target_mask, preds, targets, 0.5)
    assert [k for _, k, _ in multi.pred_boxes] == ["TP", "FP"]
    assert [k for _, k, _ in multi.target_boxes] == ["FN", "TP", "FN"]
    assert mask_outcome(np.array([0, 3]), target_mask).counts() == {"TP": 1, "FP": 1, "FN": 2}


def test_scanrefer_outcome_boxes_follow_the_report_iou(reports: dict[str, Path], synth_root: Path) -> None:
    table = load_report(reports["scanrefer"])
    scene = load_scene(synth_root, table.frame["scene"].iloc[0], with_frames=False)
    kinds = set()
    for key in table.frame["key"]:
        sample = table.sample(key)
        outcome = sample_outcome(table, key, scene.mesh.vertices, scene.vertex_instance)
        ((_, kind, iou),) = outcome.pred_boxes
        assert kind == ("TP" if sample["iou"] >= 0.5 else "FP")
        if kind == "TP":
            assert iou == pytest.approx(sample["iou"])
        kinds.add(kind)
        inside = outcome.tp.size + outcome.fn.size
        assert inside == len(scene.instance(int(sample["object_id"])).vertex_indices)
    assert kinds == {"TP", "FP"}


# send to review ------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReviewService]:
    if request.param == "sqlite":
        svc = ReviewService(f"sqlite:///{tmp_path / 'review.db'}")
        svc.add_user("ana", "a-long-password-1", Role.ANNOTATOR)
        yield svc
        svc.close()
        return
    if not PG_URL:
        pytest.skip("set REVIEW_TEST_PG_URL to run on PostgreSQL")
    with private_schema("failures") as url:
        svc = ReviewService(url)
        svc.add_user("ana", "a-long-password-1", Role.ANNOTATOR)
        yield svc
        svc.close()


def test_send_to_review_creates_exactly_one_item(reports: dict[str, Path], service: ReviewService) -> None:
    table = load_report(reports["refseg"])
    worst = select(table, "IoU")["key"].iloc[0]
    failure = failure_from_sample(table, worst, "IoU", "the description names the wrong corner")
    before = len(service.list_items(limit=1000))
    item, created = service.send_failure("ana", failure)
    again, created_again = service.send_failure("ana", failure)
    assert created and not created_again and again.id == item.id
    assert len(service.list_items(limit=1000)) == before + 1
    sample = table.sample(worst)
    assert item.key == ItemKey(sample["scene_id"], "object", sample["object_id"], f"refseg:{worst}")
    assert item.text.description == sample["description"] and item.pipeline_status == "flagged"
    (note,) = item.extra["failures"]
    assert note["model_output"] == f"{sample['predicted_vertices']} vertices" and note["sent_by"] == "ana"
    assert note["reason"].startswith("refseg IoU = 0.000") and "wrong corner" in note["reason"]
    # it is in the queue: the reason filter finds it and the next annotator gets it
    assert [i.id for i in service.list_items(QueueFilter(flag_reasons=(FAILURE_REASON,)))] == [item.id]
    assert service.next_item("ana").id == item.id


def test_a_qa_failure_becomes_a_scenario_item(reports: dict[str, Path], service: ReviewService) -> None:
    table = load_report(reports["scanqa"])
    key = select(table, "EM@1 clean")["key"].iloc[0]
    sample = table.sample(key)
    item, created = service.send_failure("ana", failure_from_sample(table, key, "EM@1 clean"))
    assert created and item.key.level == "scenario"
    assert item.text.question == sample["question"] and item.text.answer == sample["answers"][0]
    assert item.extra["failures"][0]["model_output"] == "purple"
    assert item.answer_object_ids == list(sample["object_ids"])


def test_a_densescan_failure_goes_to_its_own_item(reports: dict[str, Path], tmp_path: Path) -> None:
    gt = reports["densescan"].parent / "densescan_gt.json"
    records = json.loads(gt.read_text())
    for r in records:  # the store needs the pipeline fields a benchmark-made file leaves out
        r.update(status="accepted", confidence=0.9, source="test")
    folder = tmp_path / "annotations"
    folder.mkdir()
    (folder / "densescan.json").write_text(json.dumps(records))
    service = ReviewService(f"sqlite:///{tmp_path / 'review.db'}")
    try:
        service.add_user("ana", "a-long-password-1", Role.ANNOTATOR)
        service.import_annotations(folder)
        table = load_report(reports["densescan"])
        key = select(table, "CIDEr")["key"].iloc[0]
        sample = table.sample(key)
        total = len(service.list_items(limit=1000))
        item, created = service.send_failure("ana", failure_from_sample(table, key, "CIDEr"))
        assert not created and len(service.list_items(limit=1000)) == total
        assert item.key == ItemKey(sample["scene_id"], "object", sample["object_id"], sample["ann_ids"][0])
        assert FAILURE_REASON in item.extra["flag_reasons"] and len(item.extra["failures"]) == 1
    finally:
        service.close()


def test_scene_facts_are_unknown_without_scans(reports: dict[str, Path], tmp_path: Path) -> None:
    raw = json.loads(reports["scanrefer"].read_text())
    raw["inputs"]["scans"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.scanrefer-eval.json"
    moved.write_text(json.dumps(raw))
    table = load_report(moved)
    assert table.frame["size"].isna().all() and any("no scans" in n for n in table.notes)
    assert all(math.isnan(v) for v in table.frame["visible"])


# the app's report list -----------------------------------------------------------------------------------


def test_reports_are_listed_from_the_data_folder_and_logins_keep_others_out(
    reports: dict[str, Path], tmp_path: Path
) -> None:
    import gradio as gr

    from app.context import AppContext
    from app.failure_tab import FailureData, report_choices

    data = tmp_path / "data"
    (data / "runs" / "old").mkdir(parents=True)
    (data / "scans").mkdir()
    inside = Path(shutil.copy(reports["scanrefer"], data / "runs" / "old" / reports["scanrefer"].name))
    (data / "scans" / "skipped-eval.json").write_text("{}")  # scan folders are not searched
    service = ReviewService(f"sqlite:///{tmp_path / 'review.db'}")
    try:
        open_ctx = AppContext(service, data, None, auth=False)
        assert [value for _, value in report_choices(open_ctx)] == [str(inside.resolve())]
        assert FailureData(open_ctx).table(str(reports["refseg"])).task == "refseg"  # no logins: any path
        guarded = FailureData(AppContext(service, data, None, auth=True))
        assert guarded.table(str(inside)).task == "scanrefer"
        with pytest.raises(gr.Error, match="only reports under the app's data folders"):
            guarded.table(str(reports["refseg"]))
        with pytest.raises(gr.Error, match="no such report file"):
            guarded.table(str(data / "runs" / "missing-eval.json"))
    finally:
        service.close()


def test_send_refuses_a_sample_the_page_does_not_show(reports: dict[str, Path], tmp_path: Path) -> None:
    import gradio as gr

    from app.context import AppContext
    from app.failure_tab import FailureData, send_shown

    service = ReviewService(f"sqlite:///{tmp_path / 'review.db'}")
    try:
        service.add_user("ana", "a-long-password-1", Role.ANNOTATOR)
        ctx = AppContext(service, None, None)
        data = FailureData(ctx)
        path = str(reports["refseg"])
        first, second = select(load_report(reports["refseg"]), "IoU")["key"].iloc[:2]
        with pytest.raises(gr.Error, match="still loading"):  # the page still shows the previous sample
            send_shown(ctx, data, "ana", path, (path, second), first, "", "IoU")
        with pytest.raises(gr.Error, match="still loading"):  # another report was opened meanwhile
            send_shown(ctx, data, "ana", str(reports["scanrefer"]), (path, first), first, "", "IoU")
        with pytest.raises(gr.Error, match="click a sample"):
            send_shown(ctx, data, "ana", path, None, "", "", "IoU")
        assert service.list_items(limit=10) == []
        message = send_shown(ctx, data, "ana", path, (path, first), first, "", "IoU")
        (item,) = service.list_items(limit=10)
        assert f'data-item-id="{item.id}"' in message and item.key.ann_id == f"refseg:{first}"
    finally:
        service.close()
