"""Ross3D's model: the 3D position embedding on a rendered frame, cross-view masking (25%, never on grounding
batches, on every `view_every`-th optimizer step), the BEV loss mask, the prompts, overfitting one answer,
save -> load, a mismatched checkpoint, and reconstruct()."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ross3d_tiny import TINY, make_samples, tiny_config

from core.models.common.llm import IGNORE_INDEX, embed_with_prefix, forward_spliced, generate_with_prefix
from core.models.errors import ModelError
from core.models.ross3d import modeling_ross3d
from core.models.ross3d.configuration_ross3d import Ross3DConfig
from core.models.ross3d.denoiser import LR_PREFIX
from core.models.ross3d.modeling_ross3d import (
    Ross3DBatch,
    Ross3DModel,
    choose_masked_frames,
    count_masked,
)
from core.models.ross3d.targets import bev_targets
from core.scene.render import BEVImage, MeshRenderer
from core.scene.scannet import Scene, list_scenes, load_scene
from core.train.config import TrainConfig
from core.train.schedule import parameter_groups

pytestmark = pytest.mark.usefixtures("one_thread")
FRAMES = list(range(8))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    from core.synth.dataset import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("ross3d_model_synth")
    generate_dataset(root, 1, seed=11, config=SynthConfig(num_frames=8, sensor=False), progress=False)
    return load_scene(root, list_scenes(root)[0])


@pytest.fixture(scope="module")
def model() -> Ross3DModel:
    torch.manual_seed(0)
    return Ross3DModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def qa(model: Ross3DModel, scene: Scene):
    return make_samples(model, scene, "scanqa", "What is next to the bed?", "a lamp", FRAMES, sample_id="q0")


@pytest.fixture(scope="module")
def ref(model: Ross3DModel, scene: Scene):
    return make_samples(model, scene, "scanrefer", "the large bed", None, FRAMES, targets=[0], sample_id="r0")


# ------------------------------------------------------------------------------- 3D position embedding


def _hand_embedding(x: np.ndarray, dim: int) -> np.ndarray:
    """REFERENCE §5 by hand: clamp to +-15/+-15/+-5 m, snap to 0.1 m, sin/cos blocks of 2*(dim//6) an axis."""
    per_axis = 2 * (dim // 6)
    half = per_axis // 2
    out = np.zeros(dim)
    for axis, (lo, hi) in enumerate(((-15, 15), (-15, 15), (-5, 5))):
        index = round((min(max(x[axis], lo), hi) - lo) / 0.1)
        for k in range(half):
            w = 10000.0 ** (-k / half)
            out[axis * per_axis + k] = math.sin(index * w)
            out[axis * per_axis + half + k] = math.cos(index * w)
    return out


def test_position_embedding_matches_a_hand_computation_on_a_rendered_frame(
    model: Ross3DModel, scene: Scene
) -> None:
    from core.models.common.image_tokens import load_frames

    frames = load_frames(scene, [0, 3], model.image.encoder)
    depth = frames.depth.clone()
    h, w = depth.shape[-2:]
    depth[0, : h // 2, : w // 2] = 0  # a hole over the whole top-left token of frame 0: no position
    depth[1, h // 2 :, w // 2 : w // 2 + 5] = 0  # holes inside a token: left out of its average
    with torch.no_grad():
        tokens = model.image(frames.pixels, depth, frames.intrinsics, frames.cam_to_world).tokens
        plain = model.image.projector(model.image.encoder(frames.pixels)).reshape(tokens.shape)
    emb = (tokens - plain).numpy()
    dim = tokens.shape[-1]
    grid = model.image.encoder.patch_grid  # 4x4 patches, pooled 2x2 -> 2x2 tokens
    pool = model.config.image.vision.pool
    tokens_per_frame = (grid[0] // pool) * (grid[1] // pool)
    for f in range(2):
        K = frames.intrinsics[f].double().numpy()
        pose = frames.cam_to_world[f].double().numpy()
        sums = np.zeros((tokens_per_frame, 3))
        counts = np.zeros(tokens_per_frame)
        d = depth[f].double().numpy()
        for r in range(h):
            for c in range(w):
                if d[r, c] <= 0:
                    continue
                cam = np.array(
                    [(c - K[0, 2]) * d[r, c] / K[0, 0], (r - K[1, 2]) * d[r, c] / K[1, 1], d[r, c]]
                )
                world = pose[:3, :3] @ cam + pose[:3, 3]
                token = (int((r + 0.5) * grid[0] / h) // pool) * (grid[1] // pool) + int(
                    (c + 0.5) * grid[1] / w
                ) // pool
                sums[token] += world
                counts[token] += 1
        for t in range(tokens_per_frame):
            got = emb[f * tokens_per_frame + t]
            if counts[t] == 0:
                np.testing.assert_allclose(got, 0.0, atol=1e-5)
            else:
                np.testing.assert_allclose(got, _hand_embedding(sums[t] / counts[t], dim), atol=2e-5)
    assert counts.min() > 0  # frame 1 had holes inside tokens, none emptied
    assert np.abs(emb[0]).max() == pytest.approx(0.0, abs=1e-5)  # frame 0's emptied token


# ------------------------------------------------------------------------------- cross-view masking


def test_mask_count_is_a_quarter_of_the_frames_at_least_one_never_all() -> None:
    assert [count_masked(n, 0.25) for n in (1, 2, 3, 4, 6, 8, 32)] == [0, 1, 1, 1, 2, 2, 8]
    g = torch.Generator().manual_seed(0)
    masks = [choose_masked_frames(8, 0.25, g) for _ in range(50)]
    assert all(int(m.sum()) == 2 for m in masks)
    assert len({tuple(m.nonzero().flatten().tolist()) for m in masks}) > 5  # random frames, not fixed


def _capture_frame_masks(model: Ross3DModel) -> tuple[list, object]:
    seen: list = []

    def hook(module, args, kwargs):  # one call per batch ([B,F] mask) or per sample ([F])
        mask = kwargs.get("frame_mask")
        seen.extend(
            [None] * (args[0].shape[0] if args[0].ndim == 5 else 1)
            if mask is None
            else mask.reshape(-1, mask.shape[-1])
        )

    return seen, model.image.register_forward_pre_hook(hook, with_kwargs=True)


def test_masking_replaces_a_quarter_of_frames_and_never_touches_grounding(
    model: Ross3DModel, qa, ref
) -> None:
    seen, handle = _capture_frame_masks(model)
    try:
        torch.manual_seed(1)
        out = model(Ross3DBatch([qa, qa]), mask_views=True)
        assert [int(m.sum()) for m in seen] == [2, 2] and all(m.shape == (8,) for m in seen)
        assert float(out["loss_view"]) > 0 and float(out["masked_frames"]) == 4
        seen.clear()
        out = model(Ross3DBatch([ref]), mask_views=True)  # asked to mask a grounding batch: refused
        assert seen == [None]
        assert float(out["loss_view"]) == 0 and float(out["masked_frames"]) == 0
        assert float(out["loss_ground"]) > 0 and float(out["loss_bev"]) == 0  # no BEV loss on grounding
    finally:
        handle.remove()
    # A masked frame's tokens are the mask token + that frame's 3D embedding; the other frames are untouched.
    f = qa.frames
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[1, 6]] = True
    with torch.no_grad():
        plain = model.image(f.pixels, f.depth, f.intrinsics, f.cam_to_world).tokens.reshape(8, 4, -1)
        masked = model.image(f.pixels, f.depth, f.intrinsics, f.cam_to_world, frame_mask=mask).tokens.reshape(
            8, 4, -1
        )
        no_pos = model.image.projector(model.image.encoder(f.pixels))
    torch.testing.assert_close(masked[~mask], plain[~mask])
    torch.testing.assert_close(masked[mask], plain[mask] - no_pos[mask] + model.image.mask_token)


def test_batched_image_branch_call_equals_per_sample_calls(model: Ross3DModel, qa) -> None:
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[0, 5]] = True
    with torch.no_grad():
        batched = model._visual([qa, qa], [mask, None])
        single = [model._visual([qa], [m])[0] for m in (mask, None)]
    for b, s in zip(batched, single):
        torch.testing.assert_close(b.tokens, s.tokens)
        assert torch.equal(b.valid, s.valid) and b.num_frames == s.num_frames == 8
    assert not torch.allclose(batched[0].tokens, batched[1].tokens)  # only the first had masked frames


def test_box_membership_is_kept_per_frames_and_boxes_and_equals_a_fresh_computation(
    model: Ross3DModel, ref
) -> None:
    from core.models.common.pos3d import patch_box_fraction

    tokens = model._visual([ref], [None])[0]
    boxes = ref.proposals
    first = model._membership(ref, tokens, boxes)
    f, cfg = ref.frames, model.config.grounding
    fresh = patch_box_fraction(
        f.depth, f.intrinsics, f.cam_to_world, model.image.encoder.patch_grid, boxes,
        pool=model.config.image.vision.pool, pixel_stride=cfg.pixel_stride,
    )  # fmt: skip
    assert torch.equal(first, fresh.reshape(-1, boxes.shape[0]) >= cfg.min_fraction) and first.any()
    kept = len(f.memo)
    assert torch.equal(model._membership(ref, tokens, boxes), first) and len(f.memo) == kept
    # other boxes are another entry, not the kept answer
    one = model._membership(ref, tokens, boxes[1:2])
    assert len(f.memo) == kept + 1 and torch.equal(one[:, 0], first[:, 1])


def test_view_schedule_every_fourth_optimizer_step_and_counter_saved(model: Ross3DModel, qa, ref) -> None:
    m = Ross3DModel(tiny_config(view_every=2, grad_accum=2))
    m.train()
    seen, handle = _capture_frame_masks(m)
    try:
        batches = [Ross3DBatch([qa])] * 5 + [Ross3DBatch([ref])] + [Ross3DBatch([qa])] * 2
        for batch in batches:  # forwards 0..7 = optimizer steps 0,0,1,1,2,2,3,3
            m(batch)
    finally:
        handle.remove()
    masked = [mask is not None for mask in seen]
    # steps 0 and 2 mask (step % 2 == 0); forward 5 is a grounding batch on step 2: never masked
    assert masked == [True, True, False, False, True, False, False, False]
    assert int(m.view_step) == 8 and "view_step" in m.state_dict()
    m.eval()
    m(Ross3DBatch([qa]))  # evaluation forwards neither mask nor count
    assert int(m.view_step) == 8


# ------------------------------------------------------------------------------- BEV loss mask


def test_bev_loss_mask_is_the_empty_cells_of_the_render(model: Ross3DModel, scene: Scene, qa) -> None:
    size = model.config.targets.bev_size
    bev = MeshRenderer(scene.mesh).render_bev(image_size=size)
    empty = bev.empty.copy()
    empty[: size // 2, : size // 2] = True  # a hole (an unscanned quarter) the renderer reports as empty
    color = np.where(empty[..., None], 0, bev.color).astype(np.uint8)
    holed = BEVImage(color, bev.instance, bev.height, empty, bev.origin_xy, bev.metres_per_pixel)
    target, mask = bev_targets(model.vae, holed, model.config.targets)
    gh, gw = model.config.targets.bev_grid
    cells_empty = empty.reshape(gh, size // gh, gw, size // gw).all(axis=(1, 3)).reshape(-1)
    assert mask.numpy().tolist() == (~cells_empty).tolist() and cells_empty.sum() >= 4
    sample = qa.__class__(**{**qa.__dict__, "bev_target": target, "bev_mask": mask})
    m = Ross3DModel(tiny_config()).eval()
    with torch.no_grad():  # an untrained denoiser predicts exactly zero noise, whatever its input
        torch.nn.init.normal_(m.reconstruction.bev.final.linear.weight, std=0.5)

    def loss(t: torch.Tensor) -> float:
        torch.manual_seed(5)
        with torch.no_grad():
            s = sample.__class__(**{**sample.__dict__, "bev_target": t})
            return float(m(Ross3DBatch([s]), mask_views=False)["loss_bev"])

    base = loss(target)
    changed_empty = target.clone()
    changed_empty[~mask] += 5.0
    changed_full = target.clone()
    changed_full[mask.nonzero()[0]] += 5.0
    assert loss(changed_empty) == base  # empty cells are out of the loss
    assert loss(changed_full) != base


# ------------------------------------------------------------------------------- prompts and labels


def test_prompts_per_task_and_labels_only_on_the_answer(model: Ross3DModel, qa, ref) -> None:
    proc = model.processor
    tok = model.tokenizer
    sqa = qa.__class__(
        **{
            **qa.__dict__,
            "task": "sqa3d",
            "situation": "I am sitting on the bed.",
            "question": "What is in front of me?",
        }
    )
    cap = qa.__class__(
        **{
            **qa.__dict__,
            "task": "scan2cap",
            "question": "Describe it.",
            "targets": [2],
            "answer": "a wooden chair.",
        }
    )
    assert proc.user_text(qa) == "What is next to the bed? Answer the question using a single word or phrase."
    assert proc.user_text(sqa).startswith("I am sitting on the bed. What is in front of me?")
    box = qa.proposals[2].tolist()
    assert (
        proc.user_text(cap)
        == "Describe the object at <coord> [" + ", ".join(f"{v:.2f}" for v in box) + "] in the scene."
    )
    assert proc.user_text(ref) == "the large bed Which object does this description refer to?"
    for sample, answer in ((qa, "a lamp"), (ref, "It is <ground>."), (cap, "a wooden chair.")):
        text = proc.batch([sample])
        labelled = text.input_ids[0][text.labels[0] != IGNORE_INDEX]
        assert tok.decode(labelled) == answer + "<|im_end|>"
        prompt = tok.decode(text.input_ids[0][text.labels[0] == IGNORE_INDEX])
        assert prompt.count("<image>") == 1 and prompt.startswith("<|im_start|>user\n<image>")
    hostile = qa.__class__(**{**qa.__dict__, "question": "two <image> placeholders <image> and <ground>?"})
    assert "<image>" not in proc.user_text(hostile) and "<ground>" not in proc.user_text(hostile)
    with pytest.raises(ModelError, match="no answer"):
        proc.batch([qa.__class__(**{**qa.__dict__, "answer": None})])
    with pytest.raises(ModelError, match="one task per batch"):
        Ross3DBatch([qa, ref])


# ------------------------------------------------------------------------------- training


def test_every_parameter_gets_a_gradient_and_denoisers_have_their_own_prefix(
    model: Ross3DModel, qa, ref
) -> None:
    m = Ross3DModel(tiny_config()).train()
    for batch in (Ross3DBatch([qa]), Ross3DBatch([ref])):  # a step without masking, a grounding step
        m.zero_grad(set_to_none=True)
        m(batch, mask_views=False)["loss"].backward()
        missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
        assert missing == []
    names = [n for n, _ in m.named_parameters()]
    denoiser = [n for n in names if ".blocks." in n or ".pool." in n]
    assert denoiser and all(n.startswith(LR_PREFIX) for n in denoiser)
    groups = parameter_groups(m, TrainConfig(lr=1e-3, lr_multipliers={LR_PREFIX: 10.0}))
    assert sorted({g["lr"] for g in groups}) == pytest.approx([1e-3, 1e-2])


def _with_switches() -> Ross3DModel:
    """The tiny model with class agreement, colour agreement and the box size in the grounding head, the
    `<coord>` object feature and the caption copy."""
    torch.manual_seed(0)
    grounding = {
        "dim": 32,
        "class_match": True,
        "categories": ["bed", "lamp", "pillow"],
        "colour_weight": 1.0,
        "size_feature": True,
    }
    return Ross3DModel(tiny_config(coord_feature=True, caption_copy=True, grounding=grounding))


def _spliced_with_answers(m: Ross3DModel, samples: list, visual: list):
    text = m.processor.batch(samples, with_answers=True)
    return embed_with_prefix(
        m.llm,
        text.input_ids,
        [v.tokens for v in visual],
        m.ids.image,
        text.attention_mask,
        text.labels,
        m.ids.pad,
    )


def _record_generations(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every id tensor `Ross3DModel.answer` generates, in call order."""
    generated = []

    def recording(*args, **kwargs):
        generated.append(generate_with_prefix(*args, **kwargs))
        return generated[-1]

    monkeypatch.setattr(modeling_ross3d, "generate_with_prefix", recording)
    return generated


def _teacher_forced(m: Ross3DModel, cap, new_ids: torch.Tensor, visual_tokens: torch.Tensor):
    """The caption's prompt followed by generated ids [G], spliced with labels on those ids: the training
    path's view of what `answer` generated."""
    prompt = m.processor.batch([cap], with_answers=False)
    ids = torch.cat([prompt.input_ids[0], new_ids]).unsqueeze(0)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, prompt.input_ids.shape[1] :] = new_ids
    return embed_with_prefix(
        m.llm, ids, [visual_tokens], m.ids.image, torch.ones_like(ids), labels, m.ids.pad
    )


def test_coord_token_carries_the_box_object_feature(scene: Scene) -> None:
    m = _with_switches().eval()
    torch.nn.init.normal_(m.coord_proj[-1].weight)  # zero at start; any weights show the mechanism
    caps = [
        make_samples(m, scene, "scan2cap", "", "a bed.", FRAMES[:4], targets=[t], sample_id=f"c{t}")
        for t in (0, 5)
    ]
    with torch.no_grad():
        visual = m._visual(caps, [None, None])
        spliced = _spliced_with_answers(m, caps, visual)
        before = spliced.inputs_embeds.clone()
        m._add_coord_features(spliced, caps, visual)
        changed = (spliced.inputs_embeds != before).any(-1)
        coord = spliced.input_ids == m.ids.coord
        assert torch.equal(changed, coord) and int(coord.sum()) == 2  # only the <coord> token, one a sample
        for b, sample in enumerate(caps):
            box = sample.proposals[sample.targets[0]][None]
            expected = m.coord_proj(m._box_features(sample, visual[b], box)[0])[0]
            added = (spliced.inputs_embeds - before)[b][coord[b]][0]
            torch.testing.assert_close(added, expected, rtol=1e-5, atol=1e-6)


def test_every_step_coord_feature_reaches_each_caption_word_in_training_and_generation(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelError, match="coord_every_step needs coord_feature"):
        tiny_config(coord_every_step=True)
    torch.manual_seed(0)
    m = Ross3DModel(tiny_config(coord_feature=True, coord_every_step=True)).eval()
    torch.nn.init.normal_(m.coord_proj[-1].weight, std=0.5)  # zero at start; any weights show the mechanism
    caps = [
        make_samples(
            m, scene, "scan2cap", "", "a bed near the lamp.", FRAMES[:4], targets=[t], sample_id=f"c{t}"
        )
        for t in (0, 5)
    ]
    with torch.no_grad():
        visual = m._visual(caps, [None, None])
        spliced = _spliced_with_answers(m, caps, visual)
        before = spliced.inputs_embeds.clone()
        per_row = m._add_coord_features(spliced, caps, visual)
        added = spliced.inputs_embeds - before
        coord = spliced.input_ids == m.ids.coord
        predicts = torch.zeros_like(coord)
        predicts[:, :-1] = spliced.labels[:, 1:] != IGNORE_INDEX
        assert torch.equal(added.ne(0).any(-1), coord | predicts)  # nothing else moves
        for b in range(2):  # the same vector at the <coord> slot and before each answer token (and the end)
            rows = added[b][coord[b] | predicts[b]]
            torch.testing.assert_close(rows, per_row[b].expand_as(rows))
            assert int(predicts[b].sum()) == int((spliced.labels[b] != IGNORE_INDEX).sum())
        # generation feeds it the same way: teacher forcing the greedy ids through the training path (labels
        # given) reproduces them token by token
        generated = _record_generations(monkeypatch)
        answers = m.answer(Ross3DBatch(caps))
        assert answers[0] != answers[1]  # the two boxes' vectors steer the captions apart
        for cap, new_ids in zip(caps, generated[0]):
            one_visual = m._visual([cap], [None])
            forced = _teacher_forced(m, cap, new_ids, one_visual[0].tokens)
            m._add_coord_features(forced, [cap], one_visual)
            logits = forward_spliced(m.llm, forced).logits[0]
            where = (forced.labels[0] != IGNORE_INDEX).nonzero().flatten()
            assert len(where) == len(new_ids) > 0
            assert logits[where - 1].argmax(-1).tolist() == new_ids.tolist()


def test_class_hint_adds_the_name_the_object_classifier_reads(scene: Scene) -> None:
    grounding = {"dim": 32, "class_match": True, "categories": ["bed", "lamp", "pillow"]}
    with pytest.raises(ModelError, match="coord_class_hint needs"):
        tiny_config(coord_class_hint=True, grounding=grounding)
    torch.manual_seed(0)
    m = Ross3DModel(tiny_config(coord_feature=True, coord_class_hint=True, grounding=grounding)).eval()
    with torch.no_grad():  # a classifier sure of "lamp" (class 2) for any box
        m.grounding.object_class[-1].bias.zero_()
        m.grounding.object_class[-1].bias[2] = 50.0
    cap = make_samples(m, scene, "scan2cap", "", "a lamp.", FRAMES[:4], targets=[3], sample_id="c")
    with torch.no_grad():
        visual = m._visual([cap], [None])
        spliced = _spliced_with_answers(m, [cap], visual)
        before = spliced.inputs_embeds.clone()
        m._add_coord_features(spliced, [cap], visual)  # coord_proj is zero at start: only the hint is added
        added = (spliced.inputs_embeds - before)[spliced.input_ids == m.ids.coord][0]
        lamp = torch.tensor(m.tokenizer.encode(" lamp", add_special_tokens=False))
        expected = m.llm.get_input_embeddings()(lamp).mean(0)
    torch.testing.assert_close(added, expected, rtol=1e-4, atol=1e-5)
    assert float(added.norm()) > 0


def test_caption_copy_mixes_the_class_names_into_training_and_generation_alike(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    categories = ["bed", "office lamp", "lamp", "pillow"]
    with pytest.raises(ModelError, match="caption_copy needs grounding.class_match"):
        tiny_config(caption_copy=True)
    torch.manual_seed(0)
    grounding = {"dim": 32, "class_match": True, "categories": categories}
    m = Ross3DModel(tiny_config(caption_copy=True, grounding=grounding)).eval()
    head, vocab = m.caption_copy, m.llm.get_output_embeddings().weight.shape[0]
    # the copy distribution: "other" dropped, the rest renormalised onto each name's first token
    probs = torch.tensor([[0.5, 0.1, 0.2, 0.1, 0.1]])
    copy = head.distribution(probs, vocab)[0]
    first = {n: m.tokenizer.encode(" " + n, add_special_tokens=False)[0] for n in categories}
    assert first["office lamp"] != first["lamp"]
    torch.testing.assert_close(float(copy.sum()), 1.0)
    torch.testing.assert_close(float(copy[first["office lamp"]]), 0.4)
    assert int((copy > 0).sum()) == 4
    # the mixture is a distribution; a closed gate gives the LM, an open one the copy
    logits, hidden = torch.randn(3, vocab), torch.randn(3, m.hidden)
    mixed = head.log_probs(logits, hidden, copy.expand(3, -1))
    torch.testing.assert_close(mixed.logsumexp(-1), torch.zeros(3), atol=1e-5, rtol=0)
    with torch.no_grad():
        head.gate.bias.fill_(-40.0)
        torch.testing.assert_close(head.log_probs(logits, hidden, copy[None]), logits.log_softmax(-1))
        head.gate.bias.fill_(40.0)
        opened = head.log_probs(logits, hidden, copy[None]).exp()
        torch.testing.assert_close(opened, copy.expand(3, -1), atol=1e-6, rtol=0)
        head.gate.bias.fill_(0.0)
        torch.nn.init.normal_(head.gate.weight, std=2.0)  # a gate that differs position by position
        m.grounding.object_class[-1].bias.zero_()
        m.grounding.object_class[-1].bias[3] = 50.0  # a classifier sure of "lamp" for any box
    cap = make_samples(m, scene, "scan2cap", "", "a lamp by the bed.", FRAMES[:4], targets=[3], sample_id="c")
    qa_sample = make_samples(
        m, scene, "scanqa", "What is next to the bed?", "a lamp", FRAMES[:4], sample_id="q"
    )
    # training: the caption's loss is the mixture's negative log-likelihood of its answer tokens
    with torch.no_grad():
        out = m(Ross3DBatch([cap]), mask_views=False)
        visual = m._visual([cap], [None])
        spliced = _spliced_with_answers(m, [cap], visual)
        with modeling_ross3d.lm_head_inputs(m.llm) as seen:
            logits = forward_spliced(m.llm, spliced).logits
        where = (spliced.labels[0] != IGNORE_INDEX).nonzero().flatten()
        copy_row = head.distribution(
            m.grounding.object_class(m._caption_objects([cap], visual)[1]).softmax(-1), vocab
        )
        lp = head.log_probs(logits[0, where - 1], seen[-1][0, where - 1], copy_row)
        expected = -lp.gather(1, spliced.labels[0, where][:, None]).mean()
        torch.testing.assert_close(out["loss_lm"], expected, rtol=1e-5, atol=1e-6)
        plain = forward_spliced(m.llm, spliced, labels=spliced.labels).loss
        assert abs(float(out["loss_lm"]) - float(plain)) > 1e-3  # the copy changed the caption's loss
        # a QA batch keeps the LM's own answer distribution
        assert torch.allclose(
            m(Ross3DBatch([qa_sample]), mask_views=False)["loss_lm"],
            m._run([qa_sample], [None], True)[0].loss,
        )
    # generation: greedy over the same mixture, so teacher forcing its ids back gives the same argmax
    generated = _record_generations(monkeypatch)
    qa_answer = m.answer(Ross3DBatch([qa_sample]))
    m.answer(Ross3DBatch([cap]))
    new_ids = generated[-1][0]
    with torch.no_grad():
        forced = _teacher_forced(m, cap, new_ids, visual[0].tokens)
        with modeling_ross3d.lm_head_inputs(m.llm) as seen:
            logits = forward_spliced(m.llm, forced).logits[0]
        where = (forced.labels[0] != IGNORE_INDEX).nonzero().flatten()
        lp = head.log_probs(logits[where - 1], seen[-1][0, where - 1], copy_row)
    assert lp.argmax(-1).tolist() == new_ids.tolist()
    # with the gate wide open the caption is the classifier's class name; the QA row is untouched by it
    with torch.no_grad():
        head.gate.weight.zero_()
        head.gate.bias.fill_(40.0)
    assert m.answer(Ross3DBatch([cap]))[0].split()[0] == "lamp"
    assert m.answer(Ross3DBatch([qa_sample])) == qa_answer


def test_switched_on_parts_train_and_save_load_identically(scene: Scene, qa, tmp_path: Path) -> None:
    m = _with_switches().train()
    cap = make_samples(m, scene, "scan2cap", "", "a bed.", FRAMES[:4], targets=[0], sample_id="c0")
    ref = make_samples(m, scene, "scanrefer", "the large bed", None, FRAMES[:4], targets=[0], sample_id="r")
    ref.proposal_labels = [o.label for o in scene.objects()]
    with torch.no_grad():  # a target some patch sees (object 0, the floor, has no patch inside its box)
        _, shares = m._box_features(ref, m._visual([ref], [None])[0], ref.proposals, colours=True)
    ref.targets = [int(shares.sum(-1).nonzero()[0])]
    for batch in (Ross3DBatch([qa]), Ross3DBatch([cap]), Ross3DBatch([ref])):
        m.zero_grad(set_to_none=True)
        out = m(batch, mask_views=False)
        out["loss"].backward()
        assert [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None] == []
        if batch.task == "scan2cap":  # the zero-initialised output layer learns from the caption loss
            assert float(m.coord_proj[-1].weight.grad.abs().sum()) > 0
    assert float(out["loss_class"]) > 0  # the grounding batch trained both classifiers
    assert float(m.grounding.query_class[-1].weight.grad.abs().sum()) > 0
    assert float(m.grounding.query_colour[-1].weight.grad.abs().sum()) > 0  # the colour classifier too
    m.eval()
    assert float(m.caption_copy.gate.weight.grad.abs().sum()) == 0  # the grounding batch left it alone
    loaded = Ross3DModel.from_pretrained(m.save_pretrained(tmp_path / "ckpt"))
    assert loaded.config.grounding.categories == ["bed", "lamp", "pillow"] and loaded.config.coord_feature
    torch.testing.assert_close(loaded.caption_copy.gate.bias, m.caption_copy.gate.bias)
    assert loaded.grounding.size_proj is not None
    assert loaded.answer(Ross3DBatch([cap])) == m.answer(Ross3DBatch([cap]))
    torch.testing.assert_close(loaded.ground(Ross3DBatch([ref]))[0], m.ground(Ross3DBatch([ref]))[0])


def test_overfitting_one_sample_learns_its_answer(qa) -> None:
    torch.manual_seed(0)
    m = Ross3DModel(tiny_config()).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    batch = Ross3DBatch([qa])
    first = None
    for _ in range(30):
        out = m(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["loss_lm"])
    assert float(out["loss_lm"]) < 0.1 * first
    m.eval()
    assert m.answer(batch) == ["a lamp"]


@pytest.mark.slow
def test_overfitting_one_scene_drives_the_view_and_bev_losses_down(qa) -> None:
    torch.manual_seed(0)
    m = Ross3DModel(tiny_config()).train()
    recon = [p for n, p in m.named_parameters() if n.startswith(LR_PREFIX)]
    rest = [p for n, p in m.named_parameters() if not n.startswith(LR_PREFIX)]
    opt = torch.optim.AdamW([{"params": rest, "lr": 3e-3}, {"params": recon, "lr": 1e-2}], weight_decay=0.0)
    history = []
    for _ in range(120):
        out = m(Ross3DBatch([qa]), mask_views=True)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append([float(out[k]) for k in ("loss_lm", "loss_view", "loss_bev")])
    first, last = np.mean(history[:20], axis=0), np.mean(history[-20:], axis=0)
    assert (last < 0.7 * first).all(), (first, last)


# ------------------------------------------------------------------------------- save / load


def test_save_load_gives_identical_outputs(model: Ross3DModel, qa, ref, tmp_path: Path) -> None:
    folder = model.save_pretrained(tmp_path / "ckpt")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vae/config.json"):
        assert (folder / name).is_file(), name
    loaded = Ross3DModel.from_pretrained(folder)
    saved_vae, vae = loaded.vae.vae.state_dict(), model.vae.vae.state_dict()
    assert saved_vae.keys() == vae.keys() and all(torch.equal(saved_vae[k], vae[k]) for k in vae)
    assert loaded.answer(Ross3DBatch([qa])) == model.answer(Ross3DBatch([qa]))
    for a, b in zip(loaded.ground(Ross3DBatch([ref])), model.ground(Ross3DBatch([ref]))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    losses = []
    for m in (model, loaded):
        torch.manual_seed(3)
        with torch.no_grad():
            losses.append({k: float(v) for k, v in m(Ross3DBatch([qa]), mask_views=True).items()})
    assert losses[0] == losses[1]
    r0 = model.reconstruct(Ross3DBatch([qa]), steps=4, seed=2).samples[0]
    r1 = loaded.reconstruct(Ross3DBatch([qa]), steps=4, seed=2).samples[0]
    torch.testing.assert_close(r0.bev, r1.bev, rtol=0, atol=0)


def test_mismatched_checkpoint_is_one_clear_error(model: Ross3DModel, tmp_path: Path) -> None:
    folder = model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())

    def variant(name: str, edit) -> Path:
        other = tmp_path / name
        shutil.copytree(folder, other)
        data = json.loads(json.dumps(config))
        edit(data)
        (other / "config.json").write_text(json.dumps(data))
        return other

    bad = variant("dim", lambda d: d["grounding"].update(dim=16))
    with pytest.raises(ModelError) as err:
        Ross3DModel.from_pretrained(bad)
    assert err.value.path == bad / "model.safetensors"
    assert "does not match the weights" in str(err.value) and "grounding." in str(err.value)
    bad = variant("ratio", lambda d: d.update(mask_ratio=1.5))
    with pytest.raises(ModelError) as err:
        Ross3DModel.from_pretrained(bad)
    assert err.value.path == bad / "config.json" and "mask_ratio" in str(err.value)
    bad = variant("grid", lambda d: d["recon"]["view"].update(grid=[3, 3]))
    with pytest.raises(ModelError, match="grid"):
        Ross3DModel.from_pretrained(bad)
    novae = tmp_path / "novae"
    shutil.copytree(folder, novae)
    shutil.rmtree(novae / "vae")
    with pytest.raises(ModelError) as err:
        Ross3DModel.from_pretrained(novae)
    assert err.value.path == novae / "vae"


# ------------------------------------------------------------------------------- reconstruct()


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_reconstruct_returns_images_of_the_right_shapes_and_finite_scores(
    model: Ross3DModel, qa, sampler: str
) -> None:
    out = model.reconstruct(Ross3DBatch([qa, qa]), steps=5, sampler=sampler, seed=1)
    assert len(out.samples) == 2
    for item in out.samples:
        assert item.bev.shape == (3, 64, 64) and item.bev_reference.shape == (3, 64, 64)
        assert item.bev_latents.shape == (16, 32)
        assert len(item.masked_frames) == 2
        assert item.views.shape == (2, 3, 32, 32) and item.view_references.shape == (2, 3, 32, 32)
        assert item.view_latents.shape == (2, 4, 32)
        assert float(item.bev.min()) >= -1 and float(item.bev.max()) <= 1
        for score in (
            item.bev_psnr,
            item.bev_mean_psnr,
            item.bev_latent_mse,
            item.view_psnr,
            item.view_latent_mse,
        ):
            assert score is not None and math.isfinite(score)
    again = model.reconstruct(Ross3DBatch([qa, qa]), steps=5, sampler=sampler, seed=1)
    torch.testing.assert_close(again.samples[0].bev, out.samples[0].bev, rtol=0, atol=0)
    assert again.samples[0].masked_frames == out.samples[0].masked_frames
    assert set(out.summary()) >= {"bev_psnr", "view_psnr", "bev_latent_mse"}


def test_default_config_fits_together_and_stays_small() -> None:
    config = Ross3DConfig()
    m = Ross3DModel(config)
    assert m.image.grid == (7, 7) == config.recon.view.grid == config.targets.view_grid
    assert config.image.vision.pool == 2 and config.image.mask_token and config.mask_ratio == 0.25
    assert config.grounding.temperature == 0.07 and config.grounding.cumulative == 0.4
    fp16_mib = (sum(p.numel() for p in m.parameters()) + sum(p.numel() for p in m.vae.vae.parameters())) * 2
    assert fp16_mib / 2**20 < 25  # the shipped default's budget, VAE included
    with pytest.raises(ModelError, match="recon.view.grid"):
        tiny_config(targets={"view_grid": [3, 3], "view_size": 32, "bev_size": 64, "bev_grid": [4, 4]})
    one = {**TINY["recon"], "view": {**TINY["recon"]["view"], "grid": [1, 1]}}
    config = tiny_config(recon=one, targets={**TINY["targets"], "view_grid": [1, 1]})
    with pytest.raises(ModelError, match="token grid"):  # 32 px in 8 px patches pooled 2x2: a 2x2 grid
        Ross3DModel(config)
