"""The "Ask the scene" tab's actions with tiny real checkpoints on a generated scene: the 3D view colours
exactly the points Dense3D predicts (the same mask `python -m core predict dense3d` writes), Ross3D's top
candidates are its k most probable objects in order, a picked candidate is boxed and its best frames are
outlined, a question gets the answer `python -m core predict ross3d` gives, reconstructions score as
`python -m core reconstruct` scores them, and a missing or broken checkpoint is a message, not an error."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from dense3d_trained import train_tiny_dense3d
from ross3d_tiny import tiny_config

from app.ask_tab import (
    BEST_FRAMES,
    MASK_COLOR,
    MASK_POINTS,
    answer_html,
    ask_panels,
    candidate_panels,
    recon_panels,
    status_html,
)
from app.context import AppContext
from core.annotate.config import AnnotateConfig
from core.annotate.images import downscale, highlighted_frame, load_color, mask_bbox
from core.annotate.views import select_views
from core.data.datasets.refseg import RefSegSample
from core.data.datasets.ross3d_samples import task_records
from core.eval.predict_dense3d import Dense3DPredictor
from core.eval.predict_ross3d import Ross3DPredictor
from core.models.dense3d.modeling_dense3d import Dense3DModel
from core.models.ross3d.modeling_ross3d import Ross3DModel
from core.models.ross3d.reconstruct_cli import reconstruct_scene
from core.scene.geometry import scale_intrinsics
from core.scene.render import MeshRenderer
from core.scene.scannet import load_scene
from core.scene.visibility import instance_visibility
from core.serve.ask import VIEW_SIDE, SceneModels
from review import ReviewService

pytestmark = pytest.mark.usefixtures("one_thread")


def build_checkpoints(root: Path, out: Path) -> dict[str, Path]:
    """A tiny Dense3D trained until it answers "It is [SEG]." (a non-empty mask) on two training queries,
    and a tiny Ross3D (untrained: its probabilities and answers are still real model outputs)."""
    model, samples = train_tiny_dense3d(root, out / "cache")
    torch.manual_seed(0)
    return {
        "dense3d": model.save_pretrained(out / "dense3d"),
        "ross3d": Ross3DModel(tiny_config()).save_pretrained(out / "ross3d"),
        "sentence": samples[0].question,
        "scene": samples[0].scene_id,
    }


@pytest.fixture(scope="module")
def checkpoints(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_checkpoints(synth_root, tmp_path_factory.mktemp("ask-checkpoints"))


def make_ctx(root: Path, db: Path, dense3d: Path | None, ross3d: Path | None) -> AppContext:
    service = ReviewService(f"sqlite:///{db}")
    return AppContext(service, root, None, models=SceneModels(root, dense3d, ross3d, threads=1))


@pytest.fixture(scope="module")
def ctx(synth_root: Path, checkpoints: dict, tmp_path_factory: pytest.TempPathFactory):
    context = make_ctx(
        synth_root, tmp_path_factory.mktemp("ask-db") / "r.db", checkpoints["dense3d"], checkpoints["ross3d"]
    )
    yield context
    context.service.close()


def traces(plot) -> list[dict]:
    return json.loads(plot.plot)["data"]


def decoded(trace: dict, axis: str) -> np.ndarray:
    spec = trace[axis]
    assert spec["dtype"] == "f4"
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.float32)


def test_the_mask_drawn_is_dense3d_s_mask(
    ctx: AppContext, checkpoints: dict, synth_root: Path, tmp_path
) -> None:
    scene_id, sentence = checkpoints["scene"], checkpoints["sentence"]
    panels = ask_panels(ctx, scene_id, sentence)
    # what the predict command computes for the same sentence
    model = Dense3DModel.from_pretrained(checkpoints["dense3d"])
    predictor = Dense3DPredictor(model, synth_root, tmp_path / "cache")
    sample = RefSegSample(f"{scene_id}|x|0", "scanrefer", scene_id, sentence, "", (), "", "")
    expected = predictor.run([sample], progress=False).outputs[0].vertices
    assert len(expected) > 0  # the trained checkpoint answers with a mask
    np.testing.assert_array_equal(panels.shown["mask"], expected)

    data = traces(panels.plot)
    masks = [t for t in data if t["name"].startswith("Dense3D mask")]
    assert len(masks) == 1 and masks[0]["marker"]["color"] == MASK_COLOR
    assert masks[0]["name"] == f"Dense3D mask · {len(expected)} points"
    vertices = ctx.loaded(scene_id).scene.mesh.vertices
    drawn = np.stack([decoded(masks[0], a) for a in "xyz"], axis=1)
    shown = expected[np.linspace(0, len(expected) - 1, min(len(expected), MASK_POINTS)).astype(np.int64)]
    np.testing.assert_allclose(drawn, np.round(vertices[shown], 3), atol=1e-6)
    # the rest of the room is dimmed and holds none of the mask's points
    (background,) = [t for t in data if t["name"] == "scene (dimmed)"]
    rest = np.stack([decoded(background, a) for a in "xyz"], axis=1)
    mask_points = {tuple(p) for p in np.round(vertices[expected], 3).astype(np.float32).tolist()}
    assert not mask_points & {tuple(p) for p in rest.tolist()}
    assert "coloraxis" in background["marker"]
    assert f'data-points="{len(expected)}"' in panels.status
    assert 'data-dense3d-ms="' in panels.timing and 'data-ross3d-ms="' in panels.timing
    assert json.loads(panels.plot.plot)["layout"]["meta"]["ask"] == sentence


def test_ross3d_candidates_are_its_top_k_in_order(ctx: AppContext, checkpoints: dict) -> None:
    scene_id, sentence = checkpoints["scene"], checkpoints["sentence"]
    panels = ask_panels(ctx, scene_id, sentence)
    found = panels.shown["ground"]
    choices = panels.candidates["choices"]
    assert len(choices) == len(found.candidates) == 5
    probs = [c.prob for c in found.candidates]
    assert probs == sorted(probs, reverse=True)
    # against the model's own probabilities over every object and "no object"
    model = ctx.models.model("ross3d")
    sample = ctx.models._sample(scene_id, "scanrefer", sentence)
    full = model.ground([sample])[0]
    assert abs(float(full.sum()) - 1.0) < 1e-5
    top = torch.argsort(full[:-1], descending=True, stable=True)[:5].tolist()  # ties: proposal order
    assert [sample.proposal_ids[i] for i in top] == [c.object_id for c in found.candidates]
    np.testing.assert_allclose(probs, full[top].numpy(), rtol=1e-5)
    assert abs(found.no_object - float(full[-1])) < 1e-6
    assert sum(probs) + found.no_object <= 1.0 + 1e-6
    assert [value for _, value in choices] == [c.object_id for c in found.candidates]
    assert panels.candidates["value"] == found.candidates[0].object_id
    assert f"{probs[0]:.1%}" in choices[0][0]
    # the top candidate is boxed in the first view
    boxes = [t for t in traces(panels.plot) if t.get("mode") == "lines"]
    assert len(boxes) == 1 and f"id {found.candidates[0].object_id} " in boxes[0]["name"]


def test_picking_a_candidate_boxes_it_over_the_same_mask_with_its_best_frames(
    ctx: AppContext, checkpoints: dict, synth_root: Path
) -> None:
    scene_id, sentence = checkpoints["scene"], checkpoints["sentence"]
    asked = ask_panels(ctx, scene_id, sentence)
    view = ctx.loaded(scene_id).view
    # the candidate whose object the frames see best (the largest object among them)
    pick = max(asked.shown["ground"].candidates, key=lambda c: np.prod(c.box[3:]))
    shown = candidate_panels(ctx, scene_id, pick.object_id, asked.shown)
    data = traces(shown.plot)
    (box,) = [t for t in data if t.get("mode") == "lines"]
    assert f"id {pick.object_id} " in box["name"]
    corners = np.array([p for p in zip(box["x"], box["y"], box["z"]) if p[0] is not None])
    centre, size = view.boxes[pick.object_id][:3], view.boxes[pick.object_id][3:6]
    np.testing.assert_allclose(corners.min(0), centre - size / 2, atol=2e-3)
    np.testing.assert_allclose(corners.max(0), centre + size / 2, atol=2e-3)
    (mask,) = [t for t in data if t["name"].startswith("Dense3D mask")]
    assert mask["name"] == f"Dense3D mask · {len(asked.shown['mask'])} points"
    assert json.loads(shown.plot.plot)["layout"]["meta"]["object"] == pick.object_id
    assert shown.frames, "a visible object has best frames"
    # the pipeline's view ranking and outline, on the object's rendered mask in each frame
    scene = load_scene(synth_root, scene_id)
    config = AnnotateConfig()
    table = instance_visibility(scene, config.tolerance, config.near, config.far)
    column = int(np.flatnonzero(table.object_ids == pick.object_id)[0])
    poses = np.stack([f.pose for f in scene.frames.frames])
    centre = next(o.center for o in scene.objects() if o.object_id == pick.object_id)
    ranked = [scene.frames.frames[c.frame_index] for c in select_views(table, column, poses, centre, config)]
    width, height = scene.frames.color_size
    size = (round(width * config.work_scale), round(height * config.work_scale))
    K = scale_intrinsics(scene.frames.color_intrinsics, size[0] / width, size[1] / height)
    renderer = MeshRenderer(scene.mesh, scene.vertex_instance)
    assert len(shown.frames) == min(BEST_FRAMES, len(ranked))
    for (image, caption), frame in zip(shown.frames, ranked):
        assert f"id {pick.object_id} · frame {frame.frame_id} ·" in caption
        mask = renderer.render(frame.pose, K, *size, color=False).instance == pick.object_id
        outlined = highlighted_frame(
            load_color(frame.color_path, size), mask, mask_bbox(mask), config.highlight
        )
        np.testing.assert_array_equal(image, downscale(outlined, VIEW_SIDE))
        assert not np.array_equal(image, downscale(load_color(frame.color_path, size), VIEW_SIDE))
    # a candidate from another sentence or scene changes nothing
    stale = candidate_panels(ctx, "scene9999_00", pick.object_id, asked.shown)
    assert stale.plot == gr.skip() and stale.frames == gr.skip()


def test_questions_get_the_answers_of_the_predict_command(ctx: AppContext, synth_root: Path) -> None:
    model = ctx.models.model("ross3d")
    predictor = Ross3DPredictor(model, synth_root)
    for task in ("scanqa", "sqa3d"):
        record = task_records(synth_root, task, "train", predict=True)[0]
        expected = predictor.run([record], task, progress=False).predictions[0].text
        meta = record.metadata
        html = answer_html(ctx, record.scene_id, meta["question"], meta.get("situation") or "")
        kind = "SQA3D" if task == "sqa3d" else "ScanQA"
        assert f'data-kind="{kind}"' in html
        from html import escape

        assert f'<span class="ask-answer-text">{escape(expected) or "(no answer)"}</span>' in html


def test_reconstructions_score_as_the_reconstruct_command(
    ctx: AppContext, checkpoints: dict, synth_root: Path, tmp_path: Path
) -> None:
    scene_id = checkpoints["scene"]
    panels = recon_panels(ctx, scene_id, 2, "ddim", 0)
    scores = reconstruct_scene(checkpoints["ross3d"], synth_root, scene_id, tmp_path, steps=2, seed=0)
    html = panels.scores
    assert (
        f'<tr data-score="bev-psnr"><td>BEV PSNR (non-empty pixels)</td><td>{scores["bev_psnr"]:.2f} dB'
        in html
    )
    assert f"<td>{scores['bev_latent_mse']:.2f}</td>" in html
    assert f"{scores['view_psnr']:.2f} dB" in html
    assert panels.bev_truth.shape == panels.bev.shape and panels.bev.dtype == np.uint8
    assert len(panels.views) == len(scores["masked_frames"])
    for (image, caption), frame in zip(panels.views, scores["masked_frames"]):
        assert caption.startswith(f"frame {frame}:") and image.shape[1] > image.shape[0]  # frame | recon


def test_a_missing_or_broken_checkpoint_is_a_message(
    synth_root: Path, checkpoints: dict, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    ctx = make_ctx(synth_root, tmp_path / "r.db", tmp_path / "nowhere", broken)
    try:
        scene_id = checkpoints["scene"]
        panels = ask_panels(ctx, scene_id, "the bed")
        assert "Dense3D: no checkpoint at" in panels.status and "config.json missing" in panels.status
        assert "Ross3D: cannot load" in panels.status and "config.json" in panels.status
        assert not [t for t in traces(panels.plot) if t["name"].startswith("Dense3D mask")]
        assert panels.candidates["choices"] == [] and panels.frames == []
        assert "Ross3D: cannot load" in answer_html(ctx, scene_id, "what is on the bed?")
        recon = recon_panels(ctx, scene_id, 2, "ddim", 0)
        assert recon.bev is None and "Ross3D: cannot load" in recon.scores
    finally:
        ctx.service.close()


def test_app_flags_choose_the_checkpoints(
    checkpoints: dict, synth_root: Path, tmp_path: Path, capsys
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_script", Path(__file__).parents[1] / "app.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.parse_args(["--dense3d", str(checkpoints["dense3d"]), "--ross3d", str(tmp_path / "x")])
    models = script.scene_models(args, synth_root)
    assert models.dense3d_dir == checkpoints["dense3d"].resolve() and models.missing("dense3d") is None
    assert "no checkpoint at" in models.missing("ross3d")
    printed = capsys.readouterr().out
    assert f"dense3d: {checkpoints['dense3d'].resolve()}" in printed
    assert "note: Ross3D: no checkpoint at" in printed


def test_without_ross3d_the_object_the_mask_lies_on_is_shown(
    synth_root: Path, checkpoints: dict, tmp_path: Path
) -> None:
    ctx = make_ctx(synth_root, tmp_path / "r.db", checkpoints["dense3d"], None)
    try:
        scene_id = checkpoints["scene"]
        asked = []
        segment = ctx.models.segment
        ctx.models.segment = lambda scene, text: asked.append((scene, text)) or segment(scene, text)
        ctx.models.warm(scene_id)  # loads what can run, skips the model without a checkpoint
        assert set(ctx.models._models) == {"dense3d"} and scene_id in ctx.models._views
        assert [scene for scene, _ in asked] == [scene_id]  # one real query paid the first-call costs
        ctx.models.warm_in_background(scene_id).join()  # the tab asks again after the app start did
        assert len(asked) == 1
        panels = ask_panels(ctx, scene_id, checkpoints["sentence"])
        assert "Ross3D: no checkpoint given" in panels.status
        vertices = panels.shown["mask"]
        instance = ctx.loaded(scene_id).scene.vertex_instance
        ids, counts = np.unique(instance[vertices][instance[vertices] >= 0], return_counts=True)
        most = int(ids[np.argmax(counts)])
        (box,) = [t for t in traces(panels.plot) if t.get("mode") == "lines"]
        assert box["name"].startswith("the mask lies mostly on:") and box["name"].endswith(f"id {most}")
        assert panels.candidates["choices"] == [] and panels.candidates["value"] is None
        assert json.loads(panels.plot.plot)["layout"]["meta"]["object"] == most
        assert 'data-dense3d-ms="' in panels.timing and "data-ross3d-ms" not in panels.timing
    finally:
        ctx.service.close()


def test_status_names_the_class_the_model_read():
    """With class matching the status says which class Dense3D read from the sentence; without, nothing."""
    from core.serve.ask import MaskResult

    mask = np.array([True, False, True])
    read = status_html(MaskResult(mask, "It is [SEG].", True, 0.8, 0.1, "office chair"), None, [])
    assert "reads the class <q>office chair</q>" in read and 'data-points="2"' in read
    plain = status_html(MaskResult(mask, "It is [SEG].", True, 0.8, 0.1), None, [])
    assert "reads the class" not in plain and "confidence 0.80" in plain
    near = status_html(MaskResult(mask, "It is [SEG].", True, 0.8, 0.1, "chair", "desk"), None, [])
    assert "reads the class <q>chair</q> near a <q>desk</q>" in near and " near a " not in read
