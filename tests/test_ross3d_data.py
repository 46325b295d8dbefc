"""Ross3D's data side: LLaVA records of all five tasks from a generated dataset, task-grouped batches,
proposals and targets against the scenes' instance ids, the per-scene target cache, blank frames."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from core.data.datasets import ross3d_samples as rs
from core.data.errors import DataError
from core.data.llava import read_conversations, write_conversations
from core.data.multi3drefer import read_multi3drefer
from core.data.scan2cap import caption_targets
from core.data.scanqa import read_scanqa
from core.data.scanrefer import read_scanrefer
from core.data.sqa3d import read_sqa3d
from core.eval.scenes import ScanTruth
from core.models.common.image_tokens import ImageBranch, ImageBranchConfig
from core.models.common.vision import VisionConfig
from core.models.ross3d import processor_ross3d as processor
from core.models.ross3d.targets import SceneTargetCache, TargetConfig
from core.models.ross3d.vae import FrozenVAE
from core.train.loop import EpochSampler

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = 2
TARGETS = TargetConfig(view_grid=(2, 2), view_size=32, bev_size=64, bev_grid=(4, 4))


def _split_scenes(root, split):
    return {line.strip() for line in (root / f"scannetv2_{split}.txt").read_text().splitlines() if line}


@pytest.fixture(scope="module")
def branch() -> ImageBranch:
    torch.manual_seed(0)
    vision = VisionConfig(image_size=28, patch_size=14, hidden=16, layers=1, heads=2)
    return ImageBranch(ImageBranchConfig(vision=vision, out_dim=16, mask_token=True, num_frames=FRAMES))


def test_records_of_all_five_tasks_match_the_benchmark_files(synth_root, tmp_path):
    train = _split_scenes(synth_root, "train")
    records = rs.build_records(synth_root, "train")
    counts = Counter(r.metadata["dataset"] for r in records)
    ann = synth_root / "annotations"
    expected = {
        "scanqa": sum(r.scene_id in train for r in read_scanqa(ann / "ScanQA_v1.0_train.json")),
        "sqa3d": sum(
            r.scene_id in train for r in read_sqa3d(ann / "v1_balanced_questions_train_scannetv2.json")
        ),
        "scan2cap": sum(r.scene_id in train for r in read_scanrefer(ann / "ScanRefer_filtered_train.json")),
        "scanrefer": sum(r.scene_id in train for r in read_scanrefer(ann / "ScanRefer_filtered_train.json")),
        "multi3drefer": sum(r.scene_id in train for r in read_multi3drefer(ann / "multi3drefer_train.json")),
    }
    assert all(v > 0 for v in expected.values()) and dict(counts) == expected
    assert all(r.scene_id in train for r in records)
    assert len({r.id for r in records}) == len(records)

    by_task = {t: [r for r in records if r.metadata["dataset"] == t] for t in rs.TASKS}
    truth = ScanTruth(synth_root)
    for r in by_task["scanrefer"] + by_task["scan2cap"]:
        (oid,) = r.metadata["object_ids"]
        np.testing.assert_allclose(r.box, truth.scene(r.scene_id).boxes[oid], atol=1e-9)
    for r in by_task["multi3drefer"]:
        assert len(r.box) == len(r.metadata["object_ids"])
        for box, oid in zip(r.box, r.metadata["object_ids"]):
            np.testing.assert_allclose(box, truth.scene(r.scene_id).boxes[oid], atol=1e-9)
    assert any(not r.metadata["object_ids"] for r in by_task["multi3drefer"])  # zero-target queries kept

    # the LLaVA shape: <image> first, the model's own phrasing, answers from the files
    for r in records:
        assert r.video == f"scannet/{r.scene_id}" and r.conversations[0].text.startswith("<image>\n")
        assert [t.speaker for t in r.conversations] == ["human", "gpt"]
    qa = by_task["sqa3d"][0]
    assert qa.metadata["situation"] in qa.conversations[0].text
    assert qa.conversations[1].text == qa.metadata["answers"][0]
    assert all("<coord>" in r.conversations[0].text for r in by_task["scan2cap"])
    assert all(r.conversations[1].text == "It is <ground>." for r in by_task["multi3drefer"])

    path = write_conversations(tmp_path / "records.json", records)
    again = read_conversations(path)
    assert [r.to_json() for r in again] == [r.to_json() for r in records]


def test_prediction_records_have_no_answer_and_one_caption_per_object(synth_root):
    val = _split_scenes(synth_root, "val")
    records = rs.build_records(synth_root, "val", predict=True)
    assert all(len(r.conversations) == 1 for r in records)
    refer = [
        r for r in read_scanrefer(synth_root / "annotations/ScanRefer_filtered_val.json") if r.scene_id in val
    ]
    captions = [r for r in records if r.metadata["dataset"] == "scan2cap"]
    assert [r.metadata["key"] for r in captions] == [t.key for t in caption_targets(refer)]
    assert len(captions) < len(refer)  # objects, not descriptions


def test_record_phrasing_is_the_processors():
    assert rs.QA_INSTRUCTION == processor.QA_INSTRUCTION
    assert rs.CAPTION_PROMPT == processor.CAPTION_PROMPT
    assert rs.GROUND_INSTRUCTION == processor.GROUND_INSTRUCTION
    assert rs.GROUND_ANSWER == processor.GROUND_ANSWER
    assert rs.TASKS == processor.TASKS and rs.GROUNDING == processor.GROUNDING_TASKS


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_every_batch_holds_one_task_across_epochs_and_resumes(batch_size):
    tasks = ["scanqa"] * 7 + ["sqa3d"] * 2 + ["scanrefer"] * 5 + ["multi3drefer"] * 1 + ["scan2cap"] * 4
    order, groups = rs.task_batches(tasks, batch_size, seed=3)
    assert len(order) == len(groups) and len(order) % batch_size == 0
    assert set(order) == set(range(len(tasks)))  # every sample is in every epoch
    assert Counter(groups) == Counter({g: batch_size for g in groups})
    sampler = EpochSampler(len(order), seed=5, groups=groups)
    for epoch in range(3):
        sampler.epoch = epoch
        positions = list(sampler)
        batches = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
        for batch in batches:
            assert len({tasks[order[p]] for p in batch}) == 1
        sampler.skip = 2 * batch_size  # a resumed epoch starts on a batch boundary
        assert list(sampler) == positions[2 * batch_size :]
    with pytest.raises(DataError, match="batch_size"):
        rs.task_batches(tasks, 0)


def test_proposals_targets_and_cached_targets(synth_root, tmp_path, branch):
    vae = FrozenVAE.load()
    records = rs.build_records(synth_root, "train", tasks=("scanrefer", "multi3drefer", "scanqa", "scan2cap"))
    cache = SceneTargetCache(tmp_path / "targets", vae, TARGETS)
    store = rs.SceneStore(synth_root, branch, cache)
    dataset = rs.Ross3DDataset(records, store)
    truth = ScanTruth(synth_root)
    seen = set()
    for i, record in enumerate(records):
        task = record.metadata["dataset"]
        if task in seen and task != "multi3drefer":
            continue
        seen.add(task)
        sample = dataset[i]
        assert sample.task == task and sample.sample_id == record.id
        assert sample.frames.pixels.shape[0] == FRAMES
        assert sample.view_targets.shape[:2] == (FRAMES, 4) and sample.bev_target.shape[0] == 16
        assert sample.bev_mask.dtype == torch.bool and sample.bev_mask.any()
        gt = truth.scene(record.scene_id)
        assert sample.proposal_ids == sorted(gt.boxes)  # every instance with vertices, by object id
        np.testing.assert_allclose(
            sample.proposals.numpy(), np.stack([gt.boxes[o] for o in sorted(gt.boxes)]), atol=1e-6
        )
        if task == "scanqa":  # proposals for the colour answers' grounding, no targets
            assert sample.targets == [] and sample.answer
            continue
        assert [sample.proposal_ids[t] for t in sample.targets] == record.metadata["object_ids"]
        if task == "scan2cap":
            np.testing.assert_allclose(sample.box, gt.boxes[record.metadata["object_ids"][0]])
            assert "<coord>" in sample.question
        else:
            assert sample.question in record.conversations[0].text and "<ground>" in sample.answer
    assert {"scanrefer", "multi3drefer", "scanqa", "scan2cap"} <= seen

    # encoded once per scene, then read back from disk unchanged
    files = sorted((tmp_path / "targets").glob("*.safetensors"))
    assert len(files) == len({r.scene_id for r in records})
    stamps = [f.stat().st_mtime_ns for f in files]
    fresh = rs.SceneStore(synth_root, branch, SceneTargetCache(tmp_path / "targets", vae, TARGETS))
    a, b = store.get(records[0].scene_id), fresh.get(records[0].scene_id)
    torch.testing.assert_close(a.view_targets, b.view_targets, rtol=0, atol=0)
    torch.testing.assert_close(a.bev_mask, b.bev_mask)
    assert [f.stat().st_mtime_ns for f in files] == stamps

    # a batch of one task collates; two tasks refuse
    batch = rs.collate([dataset[0], dataset[1]])
    assert len(batch) == 2
    other = next(i for i, r in enumerate(records) if r.metadata["dataset"] != records[0].metadata["dataset"])
    with pytest.raises(DataError, match="one task"):
        rs.collate([dataset[0], dataset[other]])


def test_blank_frames_and_switched_off_targets(synth_root, branch):
    records = rs.build_records(synth_root, "train", tasks=("scanqa",), max_per_task=1)
    store = rs.SceneStore(synth_root, branch, None, blank_frames=True)
    sample = rs.Ross3DDataset(records, store)[0]
    assert not sample.frames.pixels.any() and not sample.frames.depth.any()
    # no real frame's positions carried over: blank frames have no 3D embedding at all
    assert not branch.frame_positions(sample.frames)[1].any()
    assert sample.view_targets is None and sample.bev_target is None and sample.bev_mask is None
    real = rs.SceneStore(synth_root, branch, None).get(records[0].scene_id)
    assert real.frames.pixels.abs().sum() > 0 and real.frames.frame_indices == sample.frames.frame_indices
    assert branch.frame_positions(real.frames)[1].any()


def test_bad_inputs_name_the_file(synth_root, tmp_path):
    with pytest.raises(DataError, match="unknown task"):
        rs.build_records(synth_root, "train", tasks=("scanqa", "refcoco"))
    with pytest.raises(DataError, match="split file not found"):
        rs.build_records(synth_root, "test")
    # a ScanRefer record naming an object the scene does not have
    root = tmp_path / "root"
    root.mkdir()
    (root / "scans").symlink_to(synth_root / "scans")
    (root / "annotations").mkdir()
    (root / "scannetv2_train.txt").write_text((synth_root / "scannetv2_train.txt").read_text())
    data = json.loads((synth_root / "annotations/ScanRefer_filtered_train.json").read_text())
    train = _split_scenes(synth_root, "train")
    bad = [i for i, r in enumerate(data) if r["scene_id"] in train][1]
    data[bad]["object_id"] = "999"
    (root / "annotations/ScanRefer_filtered_train.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"ScanRefer_filtered_train.json: record {bad}.*no object 999"):
        rs.build_records(root, "train", tasks=("scanrefer",))
