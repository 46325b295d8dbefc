"""bench/ross3d_object_probe.py on a tiny two-stage `train ross3d` run of the generated test scenes: the three
readers of each ground-truth box are scored on the boxes of both splits, the blind row equals a count done
here from the scenes' own labels, and a run without an object classifier gets one clear error."""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest
import torch
from ross3d_tiny import PRESET

from bench import ross3d_object_probe as probe
from core.__main__ import main
from core.data.datasets.refseg import read_split
from core.models.common.categories import class_ids
from core.models.errors import ModelError
from core.models.ross3d.modeling_ross3d import Ross3DModel
from core.scene.scannet import load_scene

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(root, out, class_match: bool) -> None:
    preset = copy.deepcopy(PRESET)
    preset["model"]["grounding"]["class_match"] = class_match
    preset["data"]["tasks"] = ["scanrefer"]
    preset["pretrain"] = {"steps": 2, "batch_size": 8, "lr": 0.003, "warmup_steps": 1, "log_every": 1}
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(preset))
    args = ["train", "ross3d", "--config", str(path), "--data", str(root), "--out", str(out)]
    assert main(args) == 0


def test_probe_scores_three_readers_and_the_blind_row(synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    _train(synth_root, run, class_match=True)
    result = tmp_path / "probe.json"
    assert probe.main(["--run", str(run), "--data", str(synth_root), "--json", str(result)]) == 0
    rows = json.loads(result.read_text())
    printed = capsys.readouterr().out
    assert "| stage-2 object classifier |" in printed and "linear probe" in printed
    vocabulary = Ross3DModel.from_pretrained(run / "model").config.grounding.categories
    labels = {}
    for split in ("train", "val"):
        names = [i.label for s in read_split(synth_root, split) for i in load_scene(synth_root, s).instances]
        labels[split] = class_ids(names, vocabulary)
    common = Counter(labels["train"]).most_common(1)[0][0]
    for split in ("train", "val"):
        row = rows[split]
        assert 0 < row["boxes"] <= len(labels[split])  # boxes no token sees are left out, never added
        for reader in ("stage-2 object classifier", "vision stage class-head vote",
                       "linear probe on mean tower features",
                       "box extent alone: class of the nearest train box"):  # fmt: skip
            assert 0.0 <= row[reader] <= 100.0
        if row["boxes"] == len(labels[split]):  # every box seen: the blind row is a plain count
            expected = 100 * sum(c == common for c in labels[split]) / len(labels[split])
            assert row["blind: train's most common class"] == pytest.approx(expected)
    # the probe is fitted on the train boxes: on those it must beat always naming the most common class
    assert (
        rows["train"]["linear probe on mean tower features"]
        > rows["train"]["blind: train's most common class"]
    )


def test_a_run_without_class_agreement_is_refused(synth_root, tmp_path):
    run = tmp_path / "plain"
    _train(synth_root, run, class_match=False)
    with pytest.raises(ModelError, match="no object classifier"):
        probe.main(["--run", str(run), "--data", str(synth_root)])


def test_nearest_label_by_extent_leaves_each_train_box_out_of_its_own_vote():
    codes = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.2, 5.0]])
    labels = torch.tensor([1, 1, 2, 3])
    assert probe.nearest_label(codes, codes, labels, exclude_self=True).tolist() == [1, 1, 3, 2]
    assert probe.nearest_label(codes, codes, labels, exclude_self=False).tolist() == [1, 1, 2, 3]
    unseen = torch.tensor([[0.05, 0.2], [4.9, 5.1]])
    assert probe.nearest_label(unseen, codes, labels, exclude_self=False).tolist() == [1, 2]
