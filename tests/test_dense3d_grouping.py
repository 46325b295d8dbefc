"""Object proposals from superpoints and Dense3D's choice among them (core.models.dense3d.grouping)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dense3d_tiny import TINY
from test_dense3d import _inputs, _model

from core.data.datasets import SceneCache, SceneCacheConfig
from core.data.datasets.refseg import read_split
from core.models.common.pooling import DESCRIPTOR_DIM
from core.models.dense3d.grouping import GroupingConfig, GroupSelection, colour_groups, group_mean
from core.models.dense3d.modeling_dense3d import Dense3DModel
from core.models.errors import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")

GROUPING = {
    "grouping": {"adjacency": 0.03, "colour_threshold": 0.1},
    "decoder": {**TINY["decoder"], "in_channels": TINY["decoder"]["in_channels"] + DESCRIPTOR_DIM},
}


def _cube(origin, colour, superpoints, step=0.05):
    """Points of a 0.2 m cube's volume split into `superpoints` slabs along x, one colour."""
    g = np.arange(0, 0.2 + 1e-9, step)
    xyz = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + np.asarray(origin)
    slab = np.minimum(((xyz[:, 0] - origin[0]) / 0.2 * superpoints).astype(int), superpoints - 1)
    return xyz, np.tile(colour, (len(xyz), 1)), slab


def test_touching_superpoints_of_one_colour_merge_and_others_do_not():
    parts = [
        _cube((0, 0, 0), (0.9, 0.1, 0.1), 3),  # red, three superpoints
        _cube((0.25, 0, 0), (0.1, 0.1, 0.9), 2),  # blue, touching the red one (gap 0.05 m)
        _cube((2.0, 0, 0), (0.9, 0.1, 0.1), 2),  # red again, far away: its own object
    ]
    xyz, rgb, ids, offset = [], [], [], 0
    for p, c, s in parts:
        xyz.append(p), rgb.append(c), ids.append(s + offset)
        offset += int(s.max()) + 1
    xyz, rgb, ids = (torch.from_numpy(np.concatenate(a)) for a in (xyz, rgb, ids))
    groups = colour_groups(xyz.float(), rgb.float(), ids.long(), offset, GroupingConfig(adjacency=0.06))
    assert groups.tolist() == [0, 0, 0, 1, 1, 2, 2]
    loose = colour_groups(
        xyz.float(), rgb.float(), ids.long(), offset, GroupingConfig(adjacency=0.06, colour_threshold=2.0)
    )
    assert loose.tolist() == [0, 0, 0, 0, 0, 1, 1]  # colour ignored: touching is enough
    with pytest.raises(ModelError, match="colour_groups"):
        colour_groups(xyz.float(), rgb[:5].float(), ids.long(), offset, GroupingConfig())


def test_proposals_recover_most_generated_objects(synth_root, tmp_path):
    cache = SceneCache(synth_root, tmp_path / "cache", SceneCacheConfig(voxel_size=0.1))
    config = GroupingConfig()
    best = []
    for scene_id in read_split(synth_root, "train")[:2]:
        scene = cache.get(scene_id)
        groups = colour_groups(
            torch.from_numpy(scene.xyz),
            torch.from_numpy(scene.rgb.astype(np.float32) / 255.0),
            torch.from_numpy(scene.superpoint),
            scene.num_superpoints,
            config,
        ).numpy()[scene.superpoint]
        for object_id in scene.object_ids:
            truth = scene.instance == object_id
            best.append(
                max(
                    ((groups == g) & truth).sum() / ((groups == g) | truth).sum()
                    for g in np.unique(groups[truth])
                )
            )
    assert len(best) > 10
    assert np.mean(np.array(best) >= 0.5) > 0.6, np.round(best, 2)


def test_positives_and_the_choice():
    selection = GroupSelection(GroupingConfig())
    groups = torch.tensor([0, 0, 1, 1, 2])
    counts = torch.tensor([10, 10, 5, 5, 40])
    assert selection.positives(torch.tensor([1, 1, 0, 0, 0]), groups, counts).tolist() == [
        True,
        False,
        False,
        False,
    ]
    assert selection.positives(torch.zeros(5), groups, counts).tolist() == [False, False, False, True]
    # a target covering no proposal's majority: the proposal holding most of it
    assert selection.positives(torch.tensor([0, 0, 1, 0, 0]), groups, counts).tolist() == [
        False,
        True,
        False,
        False,
    ]
    np.testing.assert_allclose(
        group_mean(torch.tensor([1.0, 3.0, 5.0, 7.0, 2.0]), groups, 3), [2.0, 6.0, 2.0]
    )

    # two proposals both "inside" on their own (parts of one object): both taken
    mask, mass = selection.choose(torch.tensor([3.0, 3.0, 2.0, 2.0, -5.0]), groups)
    assert mask.tolist() == [True, True, True, True, False] and mass > 0.9
    # two hedged copies (each under 0.5 on its own): only the more probable one
    selection.no_object.data.fill_(-3.0)
    mask, mass = selection.choose(torch.tensor([-0.2, -0.2, -0.5, -0.5, -9.0]), groups)
    assert mask.tolist() == [True, True, False, False, False] and 0.3 < mass < 0.6
    mask, mass = selection.choose(torch.full((5,), -9.0), groups)  # "no object" most probable: empty
    assert not mask.any() and mass == 0.0
    # unless the caller knows the object exists: then the best proposal all the same
    mask, mass = selection.choose(torch.tensor([-9.0, -9.0, -8.0, -8.0, -9.0]), groups, allow_empty=False)
    assert mask.tolist() == [False, False, True, True, False] and 0.0 < mass < 0.5


def test_dense3d_with_proposals_learns_one_query_and_reloads(synth_root, tmp_path):
    model = _model(**GROUPING)
    inputs = _inputs(synth_root, model, tmp_path, count=1)
    out = model(inputs)
    assert "loss_select" in out and out["loss_select"] > 0
    out["loss"].backward()
    assert model.selection.no_object.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):
        optimizer.zero_grad()
        model(inputs)["loss"].backward()
        optimizer.step()
    model.eval()
    prediction = model.predict(inputs)[0]
    truth = inputs.scene.point_mask.numpy()
    iou = (prediction.point_mask & truth).sum() / max((prediction.point_mask | truth).sum(), 1)
    assert prediction.has_seg and iou > 0.9, (iou, prediction.answer)
    # the mask is a union of whole proposals
    groups = model.encode_scene(inputs.scene).groups[0].numpy()[inputs.scene.superpoint_ids.numpy()]
    for g in np.unique(groups[prediction.point_mask]):
        assert prediction.point_mask[groups == g].all()
    again = Dense3DModel.from_pretrained(model.save_pretrained(tmp_path / "ckpt")).predict(inputs)[0]
    np.testing.assert_array_equal(again.point_mask, prediction.point_mask)
    assert again.score == pytest.approx(prediction.score, abs=1e-6)


def test_word_skip_carries_the_words_past_the_llm(synth_root, tmp_path):
    """With `word_skip`, the decoder's text attention reads the prompt's word embeddings: with the LLM's
    last states silenced (zeros), two prompts that differ in one word still give different text inputs,
    and training reaches the word projection."""
    model, plain = _model(word_skip=True), _model()
    assert model.word_proj is not None and plain.word_proj is None
    embed = model.llm.get_input_embeddings()
    ids = [
        model.tokenizer(text, return_tensors="pt").input_ids for text in ("the red chair", "the blue chair")
    ]
    assert ids[0].shape == ids[1].shape
    prompt = torch.ones(ids[0].shape, dtype=torch.bool)
    silent = torch.zeros(*ids[0].shape, model.hidden)
    with torch.no_grad():
        texts = [model._text(model._prompt(silent, prompt, embed(i)))["text"] for i in ids]
        plain_embed = plain.llm.get_input_embeddings()
        plains = [plain._text(plain._prompt(silent, prompt, plain_embed(i)))["text"] for i in ids]
    assert not torch.allclose(texts[0], texts[1])
    torch.testing.assert_close(plains[0], plains[1])  # without it the silenced LLM hides the words

    inputs = _inputs(synth_root, model, tmp_path, count=1)
    model(inputs)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.word_proj.parameters())
