"""Relation matching (core.models.common.relation_match): the anchor read from a sentence, the gaps between
proposal boxes, the prior that prefers the copy near the anchor, and the model using it at prediction only."""

from __future__ import annotations

import math

import pytest
import torch
from test_dense3d import _inputs, _model
from test_dense3d_class_match import _matching

from core.models.common.categories import OTHER
from core.models.common.relation_match import (
    RELATION_FLOOR,
    AnchorReader,
    box_gaps,
    proposal_boxes,
    relation_agreement,
)
from core.models.dense3d.class_match import ClassMatchConfig
from core.models.dense3d.modeling_dense3d import Dense3DModel
from core.models.errors import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")

VOCABULARY = ["chair", "table", "coffee table", "trash can", "office chair", "box"]


def test_the_anchor_is_the_first_other_class_the_sentence_names():
    read = AnchorReader(VOCABULARY)
    chair, coffee_table, trash_can = 1, 3, 4
    assert read("the chair next to the coffee table.", chair) == coffee_table  # not "table"
    assert read("there is a chair. it is near the trash cans.", chair) == trash_can  # plural, space
    assert read("the trash_can beside a chair", chair) == trash_can  # underscores as in raw labels
    assert read("near the box there is a chair close to the table.", chair) == 6  # the first one named
    assert read("the office chair close to the chair", 5) == chair  # "office chair" is not a "chair"
    assert read("a red chair. it is made of wood.", chair) == OTHER
    assert read("the chair near the chair", chair) == OTHER  # its own class is no anchor
    assert read("the tablecloth near the chairs", OTHER) == chair  # whole words only
    assert read.name(coffee_table) == "coffee table" and read.name(OTHER) is None


def test_boxes_and_gaps_by_hand():
    xyz = torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 0, 0], [3, 1, 1], [5, 3, 0], [6, 4, 1], [0.5, 0.5, 0.5]])
    region = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    boxes = proposal_boxes(xyz, region, 3)
    assert boxes.tolist() == [[0, 0, 0, 1, 1, 1], [2, 0, 0, 3, 1, 1], [5, 3, 0, 6, 4, 1]]
    gaps = box_gaps(boxes)
    assert gaps[0, 1] == gaps[1, 0] == 1.0  # one metre apart along x
    assert gaps[1, 2] == pytest.approx(math.hypot(2.0, 2.0))  # apart along x and y
    assert gaps[0, 2] == pytest.approx(math.hypot(4.0, 2.0))
    assert torch.isinf(gaps.diagonal()).all()
    touching = box_gaps(torch.tensor([[0.0, 0, 0, 1, 1, 1], [0.5, 0.5, 0.5, 2, 2, 2]]))
    assert touching[0, 1] == 0.0  # overlapping boxes are at distance 0


def test_the_prior_prefers_the_copy_next_to_the_anchor():
    """Two chairs and a table: the chair 0.2 m from the table gets the higher prior, by the gap difference
    over the scale; a sentence without an anchor leaves both alone."""
    chair, table = 1, 2
    logits = torch.full((3, 3), -20.0)
    logits[0, chair] = logits[1, chair] = logits[2, table] = 0.0
    gaps = torch.tensor([[math.inf, 3.0, 0.2], [3.0, math.inf, 2.2], [0.2, 2.2, math.inf]])
    prior = relation_agreement(logits, gaps, table, weight=1.0, scale=0.5)
    assert prior[0] > prior[1]
    near = [math.exp(-0.2 / 0.5), math.exp(-2.2 / 0.5)]  # exp(-gap / scale) to the table
    assert prior[:2].tolist() == pytest.approx([math.log(n + RELATION_FLOOR) for n in near], abs=1e-4)
    assert float(prior[2]) == pytest.approx(math.log(RELATION_FLOOR), abs=1e-3)  # no other table near it
    assert relation_agreement(logits, gaps, OTHER, 1.0, 0.5).tolist() == [0.0, 0.0, 0.0]
    assert relation_agreement(logits, gaps, table, 2.0, 0.5).allclose(2 * prior)


def test_config_rejects_a_bad_relation_setting():
    with pytest.raises(ModelError, match="relation_scale"):
        ClassMatchConfig(relation_weight=1.0, relation_scale=0.0)
    with pytest.raises(ModelError, match="relation_weight"):
        ClassMatchConfig(relation_weight=-1.0)


def test_the_relation_prior_acts_at_prediction_only(synth_root, tmp_path):
    """Switched on in a saved model's config, it changes the prior at prediction (and reports the anchor)
    but not the training loss: a model trained without it can take it up."""
    matching = _matching(synth_root, tmp_path)
    plain = _model(**matching)
    inputs = _inputs(synth_root, plain, tmp_path, count=2)
    folder = plain.save_pretrained(tmp_path / "plain")
    related = _model(**{**matching, "class_match": {**matching["class_match"], "relation_weight": 1.0}})
    related.load_state_dict(plain.state_dict())
    torch.manual_seed(0)
    loss_plain = float(plain(inputs)["loss"].detach())
    torch.manual_seed(0)
    assert float(related(inputs)["loss"].detach()) == pytest.approx(loss_plain, rel=1e-6)
    plain.eval(), related.eval()
    features = related.encode_scene(inputs.scene)
    with torch.no_grad():
        a, b = plain.predict(inputs), related.predict(inputs)
    assert all(p.anchor_class is None for p in a) and any(q.anchor_class for q in b)
    read, vocabulary = related.class_match.anchors, related.config.class_match.categories
    for question, q in zip(inputs.scene.questions, b):
        named = vocabulary.index(q.named_class) + 1 if q.named_class in vocabulary else OTHER
        assert q.anchor_class == read.name(read(question, named))
    assert features.gaps is not None and features.gaps[0].shape[0] == int(features.groups[0].max()) + 1
    again = Dense3DModel.from_pretrained(folder)
    assert again.config.class_match.relation_weight == 0.0  # checkpoints without it load as before
