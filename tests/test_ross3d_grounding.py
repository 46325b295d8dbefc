"""Ross3D's grounding: selection rules (ScanRefer argmax / no object, Multi3DRefer cumulative 0.4), the
InfoNCE loss by hand, cosine / temperature logits, object features, the patch-in-box rules on a rendered
scene, and a tiny model that learns to point at objects and to say "no object"."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ross3d_tiny import make_samples, tiny_config

from core.models.common.colour_match import COLOUR_FLOOR
from core.models.common.pos3d import patch_box_fraction, sinusoidal_3d
from core.models.errors import ModelError
from core.models.ross3d.configuration_ross3d import GroundingConfig
from core.models.ross3d.grounding import (
    GroundingHead,
    box_colour_shares,
    box_size_code,
    boxes_contain,
    grounding_loss,
    object_features,
    select_proposals,
    token_colour_shares,
)
from core.models.ross3d.modeling_ross3d import Ross3DBatch, Ross3DModel
from core.scene.scannet import Scene, list_scenes, load_scene

pytestmark = pytest.mark.usefixtures("one_thread")


def P(*values: float) -> torch.Tensor:
    return torch.tensor(values)


# ------------------------------------------------------------------------------- selection


def test_scanrefer_takes_the_argmax_and_nothing_when_no_object_wins() -> None:
    assert select_proposals(P(0.1, 0.6, 0.2, 0.1), "scanrefer") == [1]
    assert select_proposals(P(0.2, 0.3, 0.1, 0.4), "scanrefer") == []  # last entry: no object
    assert select_proposals(P(1.0), "scanrefer") == []  # no proposals at all


def test_multi3drefer_takes_proposals_until_the_cumulative_probability_reaches_0_4() -> None:
    assert select_proposals(P(0.3, 0.05, 0.26, 0.15, 0.24), "multi3drefer") == [0, 2]  # 0.30 < 0.4 <= 0.56
    assert select_proposals(P(0.12, 0.11, 0.1, 0.09, 0.08, 0.5), "multi3drefer") == []  # no object on top
    assert select_proposals(P(0.41, 0.3, 0.29, 0.0), "multi3drefer") == [0]  # one is enough
    assert select_proposals(P(0.1, 0.4, 0.1, 0.4 - 1e-6 + 0.0), "multi3drefer") == [1]  # reaches 0.4 exactly
    # the no-object entry (0.3, second) is skipped in the walk: 0.35 + 0.2 = 0.55
    assert select_proposals(P(0.35, 0.1, 0.2, 0.05, 0.3), "multi3drefer") == [0, 2]
    # many small ones: 0.15 + 0.14 + 0.13 = 0.42
    assert select_proposals(P(0.13, 0.15, 0.14, 0.12, 0.11, 0.1, 0.05, 0.2), "multi3drefer") == []
    assert select_proposals(P(0.13, 0.15, 0.14, 0.12, 0.11, 0.1, 0.1, 0.15), "multi3drefer") == [1, 2, 0]
    assert select_proposals(P(0.15, 0.14, 0.13, 0.12, 0.46), "multi3drefer", cumulative=0.2) == []
    with pytest.raises(ModelError, match="task"):
        select_proposals(P(0.5, 0.5), "scanqa")


def test_multi3drefer_relative_rule_keeps_every_target_of_an_even_spread() -> None:
    even = P(0.3, 0.02, 0.3, 0.3, 0.08)  # three chairs at 0.3, the no-object entry last
    assert select_proposals(even, "multi3drefer") == [0, 2]  # the cumulative walk stops at 0.6: two of three
    assert select_proposals(even, "multi3drefer", relative=0.5) == [0, 2, 3]
    assert select_proposals(P(0.6, 0.25, 0.05, 0.1), "multi3drefer", relative=0.5) == [0]  # 0.25 < 0.3
    assert select_proposals(P(0.6, 0.3, 0.05, 0.05), "multi3drefer", relative=0.5) == [0, 1]  # 0.3 >= 0.3
    assert select_proposals(P(0.2, 0.2, 0.6), "multi3drefer", relative=0.5) == []  # no object still wins
    assert select_proposals(P(0.1, 0.6, 0.3), "scanrefer", relative=0.1) == [1]  # ScanRefer: the argmax
    with pytest.raises(ModelError, match="relative"):
        GroundingConfig(relative=1.5)
    # the model reads the rule from its config (a trained checkpoint's config.json can switch it on)
    model = Ross3DModel(tiny_config(grounding={"dim": 32, "relative": 0.5}))
    assert model.select_proposals(even, "multi3drefer") == [0, 2, 3]
    model.config.grounding.relative = 0.0
    assert model.select_proposals(even, "multi3drefer") == [0, 2]


def test_scanrefer_without_no_object_takes_the_best_proposal_whatever_no_object_scores() -> None:
    none_on_top = P(0.2, 0.3, 0.1, 0.4)  # last entry: no object
    assert select_proposals(none_on_top, "scanrefer") == []  # the default: "no object" may win
    assert select_proposals(none_on_top, "scanrefer", single_no_object=False) == [1]
    assert select_proposals(P(0.1, 0.02, 0.88), "scanrefer", single_no_object=False) == [0]
    assert select_proposals(P(1.0), "scanrefer", single_no_object=False) == []  # no proposals at all
    # Multi3DRefer keeps its zero-target answer: the option is for single-target tasks only
    assert select_proposals(P(0.2, 0.2, 0.6), "multi3drefer", relative=0.5, single_no_object=False) == []
    # the model reads it from its config, as a trained checkpoint's config.json sets it
    model = Ross3DModel(tiny_config(grounding={"dim": 32, "single_no_object": False}))
    assert model.select_proposals(none_on_top, "scanrefer") == [1]
    model.config.grounding.single_no_object = True
    assert model.select_proposals(none_on_top, "scanrefer") == []


# ------------------------------------------------------------------------------- loss and logits


def test_infonce_loss_by_hand_single_multi_and_no_object() -> None:
    logits = [P(2.0, 0.5, -1.0, 0.3), P(1.0, 1.0, 0.0, 3.0), P(0.0, 0.0, 0.0, 2.0)]
    logp = [torch.log_softmax(row, 0) for row in logits]
    expected = (-logp[0][0] + (-(logp[1][0] + logp[1][2]) / 2) + -logp[2][3]) / 3
    got = grounding_loss(logits, [[0], [2, 0], []])
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    # duplicate target ids count once; out-of-range targets are errors, not silent no-objects
    assert float(grounding_loss([logits[1]], [[0, 2, 2]])) == pytest.approx(
        float(-(logp[1][0] + logp[1][2]) / 2)
    )
    with pytest.raises(ModelError, match="out of range"):
        grounding_loss([logits[0]], [[3]])


def test_logits_are_cosine_over_the_temperature_with_a_no_object_candidate() -> None:
    torch.manual_seed(0)
    head = GroundingHead(16, GroundingConfig(dim=8, temperature=0.07))
    query, objects = torch.randn(16), torch.randn(5, 16)
    logits = head.logits(query, objects)
    q = head.query_proj(query)
    cands = torch.cat([head.object_proj(objects), head.no_object[None]])
    expected = F.cosine_similarity(cands, q[None], dim=-1) / 0.07
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert logits.shape == (6,) and float(logits.detach().abs().max()) <= 1 / 0.07 + 1e-4
    assert head.no_object.requires_grad


def test_object_feature_is_the_mean_of_member_tokens_plus_the_centre_embedding() -> None:
    tokens = torch.arange(12, dtype=torch.float32).reshape(4, 3).repeat(1, 4)  # [4, 12]
    boxes = torch.tensor([[1.0, 2.0, 0.5, 1, 1, 1], [-3.0, 0.0, 1.0, 1, 1, 1]])
    member = torch.tensor([[True, False], [False, False], [True, False], [False, False]])
    feats = object_features(tokens, boxes, member)
    centre = sinusoidal_3d(boxes[:, :3], 12)
    torch.testing.assert_close(feats[0], (tokens[0] + tokens[2]) / 2 + centre[0])
    torch.testing.assert_close(feats[1], centre[1])  # no token in the box: only its position
    xyz = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.51, 0.0, 0.0]])
    inside = boxes_contain(xyz, torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]]))
    assert inside[:, 0].tolist() == [True, True, False]  # faces inclusive


# ------------------------------------------------------------------------------- on a rendered scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    from core.synth.dataset import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("ross3d_ground_synth")
    generate_dataset(root, 1, seed=11, config=SynthConfig(num_frames=8, sensor=False), progress=False)
    return load_scene(root, list_scenes(root)[0])


def test_patch_rules_on_a_rendered_scene(scene: Scene) -> None:
    torch.manual_seed(0)
    model = Ross3DModel(tiny_config()).eval()
    sample = make_samples(model, scene, "scanrefer", "the bed", None, [0, 2, 4, 6], targets=[0])
    f = sample.frames
    with torch.no_grad():
        tokens = model.image(f.pixels, f.depth, f.intrinsics, f.cam_to_world)
    room = torch.tensor([[0.0, 0.0, 0.0, 100.0, 100.0, 100.0]])
    far = torch.tensor([[50.0, 50.0, 50.0, 1.0, 1.0, 1.0]])
    boxes = torch.cat([room, far, sample.proposals])
    member = model._membership(sample, tokens, boxes)  # the paper's >= 50% rule
    frac = patch_box_fraction(
        f.depth, f.intrinsics, f.cam_to_world, model.image.encoder.patch_grid, boxes, pool=2, pixel_stride=2
    ).reshape(-1, len(boxes))
    assert torch.equal(member, frac >= 0.5)
    assert torch.equal(member[:, 0], tokens.valid) and not member[:, 1].any()
    model.config.grounding.box_rule = "centre"
    try:
        centre = model._membership(sample, tokens, boxes)
    finally:
        model.config.grounding.box_rule = "fraction"
    assert torch.equal(centre[:, 0], tokens.valid) and not centre[:, 1].any()
    # the two rules pick mostly the same patches for the scene's objects
    agree = (centre[:, 2:] == member[:, 2:]).float().mean()
    assert agree > 0.8 and member[:, 2:].any()


def _train(model: Ross3DModel, batches: list[Ross3DBatch], epochs: int, lr: float = 3e-3) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in batches:
            out = model(batch)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
    model.eval()


def test_tiny_model_learns_an_object_and_no_object(scene: Scene) -> None:
    torch.manual_seed(0)
    model = Ross3DModel(tiny_config())
    frames = [0, 3, 6]
    bed = make_samples(model, scene, "scanrefer", "the bed", None, frames, targets=[7])
    none = make_samples(model, scene, "scanrefer", "the piano", None, frames, targets=[])
    _train(model, [Ross3DBatch([bed, none])], 20)
    p_bed, p_none = model.ground(Ross3DBatch([bed, none]))
    k = bed.proposals.shape[0]
    assert p_bed.shape == (k + 1,) and math.isclose(float(p_bed.sum()), 1.0, rel_tol=1e-5)
    assert model.select_proposals(p_bed, "scanrefer") == [7]
    assert model.select_proposals(p_none, "scanrefer") == []
    with pytest.raises(ModelError, match="grounding tasks"):
        model.ground(Ross3DBatch([bed.__class__(**{**bed.__dict__, "task": "scanqa", "answer": "x"})]))


@pytest.mark.slow
def test_tiny_model_tells_descriptions_apart(scene: Scene) -> None:
    torch.manual_seed(0)
    model = Ross3DModel(tiny_config())
    frames = [0, 2, 4, 6]
    bed = make_samples(model, scene, "scanrefer", "the bed", None, frames, targets=[7])
    lamp = make_samples(model, scene, "scanrefer", "the lamp on the dresser", None, frames, targets=[14])
    none = make_samples(model, scene, "scanrefer", "the piano", None, frames, targets=[])
    bottles = make_samples(model, scene, "multi3drefer", "the two bottles", None, frames, targets=[10, 11])
    _train(model, [Ross3DBatch([bed, lamp, none]), Ross3DBatch([bottles])], 80)
    p_bed, p_lamp, p_none = model.ground(Ross3DBatch([bed, lamp, none]))
    (p_bottles,) = model.ground(Ross3DBatch([bottles]))
    assert model.select_proposals(p_bed, "scanrefer") == [7]
    assert model.select_proposals(p_lamp, "scanrefer") == [14]
    assert model.select_proposals(p_none, "scanrefer") == []
    assert float(p_bottles[10] + p_bottles[11]) > 0.5
    assert set(model.select_proposals(p_bottles, "multi3drefer")) <= {10, 11}


# ------------------------------------------------------------------------------------ class agreement


def _class_head(weight: float = 1.0) -> GroundingHead:
    torch.manual_seed(0)
    config = GroundingConfig(dim=8, class_match=True, categories=["chair", "table"], class_weight=weight)
    return GroundingHead(16, config)


def test_class_prior_is_the_log_agreement_of_the_two_classifiers() -> None:
    head = _class_head(weight=2.0)
    query, objects = torch.randn(16), torch.randn(3, 16)
    p_query = head.query_class(query).softmax(-1)
    p_objects = head.object_class(objects).softmax(-1)
    expected = 2.0 * torch.log((p_objects * p_query[None]).sum(-1))
    torch.testing.assert_close(head.class_prior(query, objects), expected, rtol=1e-5, atol=1e-6)
    plain = GroundingHead(16, GroundingConfig(dim=8))
    plain.load_state_dict(head.state_dict(), strict=False)
    logits = head.logits(query, objects)
    torch.testing.assert_close(logits[:3], plain.logits(query, objects)[:3] + expected, rtol=1e-5, atol=1e-5)
    assert logits[3] == plain.logits(query, objects)[3]  # "no object" gets no prior
    with pytest.raises(ModelError, match="vocabulary"):
        GroundingHead(16, GroundingConfig(dim=8, class_match=True))


def test_class_heads_learn_the_labels_and_the_prior_picks_the_named_class() -> None:
    """Objects labelled chair / table / an unknown kind; queries naming a chair or a table. After training
    only the class losses, the prior alone (cosine weights untouched) puts the query on its class."""
    head = _class_head(weight=5.0)
    torch.manual_seed(1)
    kinds = torch.randn(3, 16)  # a feature direction per kind: chair, table, other
    objects = kinds[[0, 1, 2, 0]] + 0.1 * torch.randn(4, 16)
    labels = ["chair", "Table", "lamp", "chair"]  # normalised like the vocabulary; lamp is "other"
    queries = kinds[[0, 1]] + 0.1 * torch.randn(2, 16)
    optimizer = torch.optim.Adam(
        list(head.object_class.parameters()) + list(head.query_class.parameters()), 1e-2
    )
    first = None
    for _ in range(100):
        loss = head.class_loss(queries, [objects, objects], [labels, labels], [[3], [1]])
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.1 * first
    chair, table = (head.logits(q, objects).softmax(0) for q in queries)
    assert float(chair[[0, 3]].sum()) > 0.9 and float(table[1]) > 0.9
    # proposals without labels (a detector's) and queries without a target add nothing
    assert float(head.class_loss(queries, [objects, objects], [[], []], [[0], []])) == 0.0


# ----------------------------------------------------------------------------------- colour agreement


def test_token_colour_shares_follow_the_pixels_of_each_token() -> None:
    """Frame 0 all red; frame 1 blue on the left half, white on the right: every token of frame 0 is red,
    frame 1's tokens are blue left of the middle and white right of it."""
    from core.scene.colors import COLOR_WORDS

    m = Ross3DModel(tiny_config())
    encoder = m.image.encoder
    size = encoder.image_size
    rgb = torch.zeros(2, 3, size, size)
    rgb[0] = torch.tensor(COLOR_WORDS["red"]).view(3, 1, 1) / 255
    rgb[1, :, :, : size // 2] = torch.tensor(COLOR_WORDS["blue"]).view(3, 1, 1) / 255
    rgb[1, :, :, size // 2 :] = torch.tensor(COLOR_WORDS["white"]).view(3, 1, 1) / 255
    mean = torch.tensor(encoder.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(encoder.image_std).view(1, 3, 1, 1)
    shares = token_colour_shares((rgb - mean) / std, encoder)
    rows, cols = encoder.grid
    words = list(COLOR_WORDS)
    assert shares.shape == (2 * rows * cols, len(words))
    frame0, frame1 = shares[: rows * cols], shares[rows * cols :].view(rows, cols, -1)
    assert bool((frame0[:, words.index("red")] == 1).all())
    assert bool((frame1[:, : cols // 2, words.index("blue")] == 1).all())
    assert bool((frame1[:, (cols + 1) // 2 :, words.index("white")] == 1).all())
    # a box's shares: the mean over its tokens; a box no token falls into gets a zero row
    member = torch.zeros(2 * rows * cols, 3, dtype=torch.bool)
    member[0, 0] = member[rows * cols, 0] = True  # one red token and frame 1's top-left (blue) token
    member[rows * cols + cols - 1, 1] = True  # frame 1's top-right token: white
    box = box_colour_shares(shares, member)
    assert box[0, words.index("red")] == 0.5 and box[0, words.index("blue")] == 0.5
    assert box[1, words.index("white")] == 1 and float(box[2].sum()) == 0


def test_colour_prior_learns_the_asked_colour_and_picks_that_box() -> None:
    """Two chairs, one red and one blue; sentences ask for one, the other, or no colour. After training the
    colour loss only, the colour prior (cosine weights untouched) picks the asked chair, and a sentence
    without a colour leaves the logits as they were."""
    from core.scene.colors import COLOR_WORDS

    torch.manual_seed(0)
    config = GroundingConfig(dim=8, class_match=True, categories=["chair"], colour_weight=3.0)
    head = GroundingHead(16, config)
    plain = GroundingHead(16, GroundingConfig(dim=8, class_match=True, categories=["chair"]))
    assert plain.query_colour is None
    words = list(COLOR_WORDS)
    shares = torch.zeros(2, len(words))
    shares[0, words.index("red")] = shares[1, words.index("blue")] = 1.0
    objects = torch.randn(2, 16)
    texts = ["the red chair.", "the blue chair.", "the chair by the door."]
    asks = torch.randn(3, 16)  # their pooled colour sentences
    optimizer = torch.optim.Adam(head.query_colour.parameters(), 1e-2)
    for _ in range(100):
        loss = head.class_loss(
            torch.randn(3, 16), [objects] * 3, [[]] * 3, [[0], [1], [0]], asks, [shares] * 3, texts
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    query = torch.randn(16)
    red, blue, silent = (head.logits(query, objects, query, asks[i], shares) for i in range(3))
    assert float(red.softmax(0)[0]) > 0.9 and float(blue.softmax(0)[1]) > 0.9
    plain.load_state_dict(head.state_dict(), strict=False)
    torch.testing.assert_close(silent, plain.logits(query, objects, query), atol=0.05, rtol=0)
    asked = head.query_colour(asks[0]).softmax(-1)
    expected = 3.0 * torch.log(shares @ asked[:-1] + asked[-1] + COLOUR_FLOOR)
    torch.testing.assert_close(head.colour_prior(asks[0], shares), expected.detach())
    with pytest.raises(ModelError, match="text"):
        head.class_loss(torch.randn(3, 16), [objects] * 3, [[]] * 3, [[0], [1], [0]], asks, [shares] * 3)


# --------------------------------------------------------------------------------- relation agreement


def test_relation_prior_prefers_the_box_next_to_the_named_anchor() -> None:
    """Two chairs and a table, the classifiers trained on their labels: "the chair next to the table" puts
    the prior on the chair beside the table, by the boxes' gap over the scale; a sentence without an anchor
    gets no prior. The prior is a prediction-time term: `logits` (training) never adds it."""
    torch.manual_seed(0)
    config = GroundingConfig(dim=8, class_match=True, categories=["chair", "table"], relation_weight=1.0)
    head = GroundingHead(16, config)
    kinds = torch.randn(2, 16)
    objects = kinds[[0, 0, 1]] + 0.05 * torch.randn(3, 16)
    optimizer = torch.optim.Adam(
        list(head.object_class.parameters()) + list(head.query_class.parameters()), 1e-2
    )
    for _ in range(150):
        loss = head.class_loss(kinds[[0]], [objects], [["chair", "chair", "table"]], [[0]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # centre and size: chair 0 is 0.1 m from the table's side, chair 1 is 2.1 m away
    boxes = torch.tensor(
        [[0.0, 0, 0.4, 0.6, 0.6, 0.8], [-2.0, 0, 0.4, 0.6, 0.6, 0.8], [1.4, 0, 0.4, 1.6, 1.0, 0.8]]
    )
    prior = head.relation_prior("the chair next to the table.", kinds[0], objects, boxes)
    assert float(prior[0] - prior[1]) == pytest.approx((2.1 - 0.1) / 0.5, abs=0.3)
    assert head.relation_prior("a chair.", kinds[0], objects, boxes).tolist() == [0.0, 0.0, 0.0]
    plain = GroundingHead(16, GroundingConfig(dim=8, class_match=True, categories=["chair", "table"]))
    assert plain.anchors is None
    plain.load_state_dict(head.state_dict())
    torch.testing.assert_close(head.logits(kinds[0], objects), plain.logits(kinds[0], objects))
    with pytest.raises(ModelError, match="relation_weight needs class_match"):
        GroundingConfig(relation_weight=1.0)
    with pytest.raises(ModelError, match="relation_scale"):
        GroundingConfig(class_match=True, categories=["chair"], relation_weight=1.0, relation_scale=0.0)


# ------------------------------------------------------------------------------------------- box size


def _boxes_of_kinds(kinds: list[int], generator: torch.Generator) -> torch.Tensor:
    """Boxes of two kinds that differ only in extent (chair about 0.5 x 0.5 x 0.9 m, table about 1.6 x
    0.8 x 0.75 m, +-10%), each turned by 90 degrees at random, at random centres."""
    extent = torch.tensor([[0.5, 0.5, 0.9], [1.6, 0.8, 0.75]])[kinds]
    extent = extent * (1 + 0.2 * (torch.rand(len(kinds), 3, generator=generator) - 0.5))
    turned = torch.rand(len(kinds), generator=generator) < 0.5
    extent[turned] = extent[turned][:, [1, 0, 2]]
    return torch.cat([torch.rand(len(kinds), 3, generator=generator) * 4, extent], dim=1)


def test_box_size_code_is_the_log_extent_and_ignores_a_quarter_turn() -> None:
    code = box_size_code(torch.tensor([[1.0, 2, 0.5, 0.4, 1.6, 0.75], [0, 0, 0, 1.6, 0.4, 0.75]]))
    expected = torch.tensor([1.6, 0.4, 0.75]).log()
    torch.testing.assert_close(code, torch.stack([expected, expected]))
    assert torch.isfinite(box_size_code(torch.zeros(1, 6))).all()  # a degenerate box floors at 1 cm


def test_size_feature_lets_the_object_classifier_read_the_class_from_the_extent() -> None:
    """Objects whose patches look alike (the same feature for every box) and whose class shows only in
    their extent: with `size_feature` the object classifier learns the class of unseen boxes; without it,
    it cannot beat the majority class. Old heads (no size_proj) leave the features unchanged."""
    generator = torch.Generator().manual_seed(0)
    kinds = torch.randint(0, 2, (64,), generator=generator).tolist()
    unseen = torch.randint(0, 2, (64,), generator=generator).tolist()
    boxes, test_boxes = _boxes_of_kinds(kinds, generator), _boxes_of_kinds(unseen, generator)
    names = [["chair", "table"][k] for k in kinds]
    look = torch.randn(16, generator=generator)
    accuracy = {}
    for size_feature in (True, False):
        torch.manual_seed(0)
        config = GroundingConfig(
            dim=16, class_match=True, categories=["chair", "table"], size_feature=size_feature
        )
        head = GroundingHead(16, config)
        optimizer = torch.optim.Adam(head.parameters(), 1e-2)
        for _ in range(150):
            objects = head.add_size(look.expand(64, 16), boxes)
            loss = head.class_loss(look[None], [objects], [names], [[0]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            guess = head.object_class(head.add_size(look.expand(64, 16), test_boxes)).argmax(-1) - 1
        accuracy[size_feature] = float((guess == torch.tensor(unseen)).float().mean())
    majority = max(unseen.count(0), unseen.count(1)) / len(unseen)
    assert accuracy[True] > 0.95
    assert accuracy[False] <= majority + 1e-6
    plain = GroundingHead(16, GroundingConfig(dim=16))
    assert plain.size_proj is None
    assert torch.equal(plain.add_size(look.expand(3, 16), test_boxes[:3]), look.expand(3, 16))
