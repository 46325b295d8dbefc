"""Class matching (core.models.dense3d.class_match) and the raw-label classes it learns
(core.models.common.categories): the vocabulary, the per-point and per-proposal labels, the prior, the
U-Net stage's class head and the whole model trained with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dense3d_tiny import TINY
from test_dense3d import _inputs, _model
from test_dense3d_grouping import GROUPING

from core.data.datasets import SceneCache, SceneCacheConfig, SceneDataset, collate
from core.data.datasets.refseg import read_split
from core.models.common.backbone_pretrain import BackbonePretrainConfig, BackbonePretrainer
from core.models.common.categories import (
    IGNORE,
    OTHER,
    batch_point_classes,
    build_vocabulary,
    class_id,
    point_classes,
    region_classes,
)
from core.models.common.colour_match import (
    COLOUR_FLOOR,
    NO_COLOUR,
    asked_colours,
    colour_loss,
    proposal_colours,
)
from core.models.common.pretrained import config_from_dict
from core.models.common.sparse_unet import SparseUNetConfig
from core.models.dense3d.class_match import ClassMatch, ClassMatchConfig
from core.models.dense3d.configuration_dense3d import Dense3DConfig
from core.models.dense3d.modeling_dense3d import Dense3DModel
from core.models.errors import ModelError
from core.scene.colors import COLOR_WORDS
from core.scene.labels import normalize_label
from core.train import dense3d as task

pytestmark = pytest.mark.usefixtures("one_thread")


def _matching(root, tmp_path) -> dict:
    """TINY with proposals and class matching over the train scenes' vocabulary."""
    cache = SceneCache(root, tmp_path / "cache", SceneCacheConfig(voxel_size=0.1))
    vocabulary = task.train_vocabulary(cache, read_split(root, "train"), 1)
    return {**GROUPING, "class_match": {"categories": vocabulary, "weight": 1.0, "colour_weight": 1.0}}


def test_vocabulary_and_class_ids():
    labels = ["Office_Chair", "office chair", "cup", "cup", "cup", "lamp", "bed", "bed"]
    assert build_vocabulary(labels) == ["cup", "bed", "office chair"]  # by count, then by name; lamp once
    assert build_vocabulary(labels, min_count=3) == ["cup"]
    vocabulary = ["cup", "bed", "office chair"]
    assert [class_id(n, vocabulary) for n in ("cup", "office_chair", "lamp")] == [1, 3, OTHER]


def test_point_and_region_classes():
    vocabulary = ["cup", "bed"]
    instance = torch.tensor([-1, 4, 4, 9, 9, 9, 7, 7])
    labels = {4: "cup", 9: "bed", 7: "lamp"}  # lamp is outside the vocabulary
    classes = point_classes(instance, labels, vocabulary)
    assert classes.tolist() == [IGNORE, 1, 1, 2, 2, 2, OTHER, OTHER]
    # region 0: cup (2 of 3 points, the third unannotated); region 1: a bed/lamp mix of 2 + 2 -> OTHER;
    # region 2: one bed point -> bed
    region = torch.tensor([0, 0, 0, 1, 1, 2, 1, 1])
    assert region_classes(classes, instance, region, 3).tolist() == [1, OTHER, 2]
    # nothing annotated: everything OTHER
    none = torch.full((4,), -1)
    assert region_classes(
        point_classes(none, {}, vocabulary), none, torch.tensor([0, 0, 1, 1]), 2
    ).tolist() == [
        OTHER,
        OTHER,
    ]


def test_the_prior_is_the_log_probability_that_both_name_one_class():
    match = ClassMatch(ClassMatchConfig(categories=["cup", "bed"], weight=2.0), 4, 8, 8, 2)
    proposals = torch.log(torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))
    sentence = torch.log(torch.tensor([0.0, 1.0, 0.0]) + 1e-12)  # the sentence names a cup
    prior = match.prior(proposals, sentence)
    assert prior[0] > prior[1]
    assert prior.tolist() == pytest.approx([2.0 * math.log(0.8), 2.0 * math.log(0.1)], abs=1e-5)
    with pytest.raises(ModelError, match="categories"):
        ClassMatch(ClassMatchConfig(), 4, 8, 8, 2)
    with pytest.raises(ModelError, match="grouping"):
        config_from_dict(Dense3DConfig, {**TINY, "class_match": {"categories": ["cup"]}})


def test_backbone_stage_learns_the_raw_label_classes(synth_root, tmp_path):
    cache = SceneCache(synth_root, tmp_path / "cache", SceneCacheConfig(voxel_size=0.1))
    scenes = read_split(synth_root, "train")[:1]
    vocabulary = task.train_vocabulary(cache, scenes, 1)
    assert vocabulary and all(v == normalize_label(v) for v in vocabulary)
    torch.manual_seed(0)
    config = BackbonePretrainConfig(
        unet=SparseUNetConfig(channels=(8, 16)), voxel_size=0.1, categories=vocabulary
    )
    model = BackbonePretrainer(config)
    batch = collate([SceneDataset(scenes, cache)[0]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = model(batch)
    assert {"loss_category", "category_accuracy"} <= set(first)
    for _ in range(60):
        optimizer.zero_grad()
        out = model(batch)
        out["loss"].backward()
        optimizer.step()
    assert out["loss_category"] < 0.5 * first["loss_category"]
    # better than naming every point after the most common class (walls and floor hold most points)
    classes = batch_point_classes(batch, vocabulary)
    named = classes[classes != IGNORE]
    majority = torch.bincount(named).max().item() / len(named)
    assert out["category_accuracy"] > majority + 0.1, (out["category_accuracy"], majority)
    # without categories the stage is what it was: no class head
    assert BackbonePretrainer(BackbonePretrainConfig(unet=config.unet)).category is None


def test_dense3d_with_class_matching_learns_and_reloads(synth_root, tmp_path):
    model = _model(**_matching(synth_root, tmp_path))
    inputs = _inputs(synth_root, model, tmp_path, count=2)
    out = model(inputs)
    assert {"loss_class_sentence", "loss_class_proposal", "acc_class_sentence", "acc_class_proposal"} <= set(
        out
    )
    first_colour = float(out["loss_colour_sentence"])
    out["loss"].backward()
    match = model.class_match
    for part in (match.proposal_head, match.sentence_head, match.context, match.colour_head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    assert match.colour_query.grad.abs().sum() > 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):
        optimizer.zero_grad()
        out = model(inputs)
        out["loss"].backward()
        optimizer.step()
    assert out["acc_class_sentence"] == 1.0
    assert out["acc_colour_sentence"] == 1.0 and out["loss_colour_sentence"] < 0.5 * first_colour
    model.eval()
    predictions = model.predict(inputs)
    truth = inputs.scene.point_mask.numpy()
    scene, features = inputs.scene, model.encode_scene(inputs.scene)
    po, so = scene.point_offsets.tolist(), scene.superpoint_offsets.tolist()
    checked = 0
    for b, prediction in enumerate(predictions):
        gt = truth[po[b] : po[b + 1]]
        iou = (prediction.point_mask & gt).sum() / max((prediction.point_mask | gt).sum(), 1)
        assert prediction.has_seg, prediction.answer
        # scored where a proposal covers the target (at 10 cm voxels one of them merges with the wall)
        region = features.groups[b].numpy()[scene.superpoint_ids[po[b] : po[b + 1]].numpy() - so[b]]
        best = max((gt & (region == g)).sum() / (gt | (region == g)).sum() for g in np.unique(region[gt]))
        checked += best >= 0.5
        assert best < 0.5 or iou > 0.9, (b, iou, best)
    assert checked >= 1
    folder = model.save_pretrained(tmp_path / "ckpt")
    again = Dense3DModel.from_pretrained(folder)
    assert again.config.class_match.categories == model.config.class_match.categories
    for a, b in zip(again.predict(inputs), predictions):
        np.testing.assert_array_equal(a.point_mask, b.point_mask)
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_the_prior_moves_the_choice_to_the_named_class(synth_root, tmp_path):
    """With the decoder's logits equal for every proposal, the choice is the proposal the class
    classifiers agree on: the prior alone decides."""
    model = _model(**_matching(synth_root, tmp_path)).eval()
    inputs = _inputs(synth_root, model, tmp_path, count=1)
    groups = model.encode_scene(inputs.scene).groups[0]
    num = int(groups.max()) + 1
    prior = torch.full((num,), -5.0)
    prior[3] = 0.0
    flat = torch.zeros(groups.shape[0])
    chosen, _ = model.selection.choose(flat, groups, allow_empty=False, prior=prior)
    assert chosen.tolist() == (groups == 3).tolist()


def test_training_task_builds_the_vocabulary_once_for_both_stages(synth_root, tmp_path):
    preset = {
        "model": {**TINY, **GROUPING, "class_match": {"min_count": 1}},
        "data": {"split": "train", "sources": ["scanrefer"]},
        "pretrain": {"steps": 1, "batch_size": 1, "lr": 1e-3},
        "train": {"steps": 1, "batch_size": 1, "lr": 1e-3},
    }
    stage1 = task.backbone_job(preset, synth_root, tmp_path / "run" / "backbone")
    vocabulary = stage1.model.config.categories
    cache = SceneCache(synth_root, tmp_path / "c2", SceneCacheConfig(voxel_size=0.1))
    labels = {normalize_label(x) for s in read_split(synth_root, "train") for x in cache.get(s).object_labels}
    assert vocabulary and set(vocabulary) == labels
    folder = stage1.model.save_pretrained(tmp_path / "run" / "backbone" / "model")
    stage2 = task.refseg_job(preset, synth_root, tmp_path / "run", None, folder)
    assert stage2.model.config.class_match.categories == vocabulary


COLOR_WORDS_INDEX = {w: i for i, w in enumerate(COLOR_WORDS)}


def _rgb(words: list[str]) -> torch.Tensor:
    """The palette colours of `words`, in the scene batch's [-1, 1]."""
    return torch.tensor([COLOR_WORDS[w] for w in words], dtype=torch.float32) / 127.5 - 1.0


def test_proposal_colours_are_the_shares_of_their_points_colour_words():
    rgb = _rgb(["white", "white", "red", "blue", "blue", "blue"])
    shares = proposal_colours(rgb, torch.tensor([0, 0, 1, 1, 1, 1]), 3)
    white, red, blue = (COLOR_WORDS_INDEX[w] for w in ("white", "red", "blue"))
    expected = torch.zeros(3, len(COLOR_WORDS))
    expected[0, white] = 1.0
    expected[1, red], expected[1, blue] = 0.25, 0.75
    torch.testing.assert_close(shares, expected)  # region 2 has no point: a zero row


def test_the_colour_prior_prefers_the_twin_of_the_asked_colour():
    match = ClassMatch(ClassMatchConfig(categories=["towel"], colour_weight=2.0), 4, 8, 8, 2)
    assert match.colour_head is not None
    # two towels, one red and one blue; the sentence asks for red with probability 0.9, none with 0.05
    shares = proposal_colours(_rgb(["red", "red", "blue", "blue"]), torch.tensor([0, 0, 1, 1]), 2)
    asked = torch.full((NO_COLOUR + 1,), 0.05 / (NO_COLOUR - 1))
    asked[COLOR_WORDS_INDEX["red"]], asked[NO_COLOUR] = 0.9, 0.05
    prior = match.colour_prior(shares, asked.log())
    assert prior.tolist() == pytest.approx(
        [2.0 * math.log(0.95 + COLOUR_FLOOR), 2.0 * math.log(0.05 + 0.05 / 11 + COLOUR_FLOOR)], abs=1e-5
    )
    # a sentence that names no colour leaves the choice alone
    silent = torch.full((NO_COLOUR + 1,), -30.0)
    silent[NO_COLOUR] = 0.0
    expected = [2.0 * math.log(1 + COLOUR_FLOOR)] * 2
    assert match.colour_prior(shares, silent).tolist() == pytest.approx(expected, abs=1e-6)
    # without colour_weight there is no colour branch (the checkpoints made before it load unchanged)
    assert ClassMatch(ClassMatchConfig(categories=["towel"]), 4, 8, 8, 2).colour_head is None


def test_asked_colour_is_the_sentence_word_the_target_carries():
    red_blue = proposal_colours(_rgb(["red"] * 3 + ["blue"]), torch.zeros(4, dtype=torch.long), 1)[0]
    white = proposal_colours(_rgb(["white"]), torch.zeros(1, dtype=torch.long), 1)[0]
    texts = [
        "the red towel next to the white sink.",  # red: the target's; white: the anchor's
        "the Blue towel.",  # blue is a quarter of its points: enough
        "the towel next to the white sink.",  # white is not the towel's colour: no colour asked
        "the towel by the door.",
        "there is no green towel.",  # no target: ignored
    ]
    shares = torch.stack([red_blue, red_blue, red_blue, white, torch.zeros_like(white)])
    labels = asked_colours(texts, shares).tolist()
    assert labels == [COLOR_WORDS_INDEX["red"], COLOR_WORDS_INDEX["blue"], NO_COLOUR, NO_COLOUR, IGNORE]
    logits = torch.zeros(5, NO_COLOUR + 1)
    ce, _ = colour_loss(logits, torch.tensor(labels))
    assert float(ce) == pytest.approx(math.log(NO_COLOUR + 1))  # over the four rows with a target
