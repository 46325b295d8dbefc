"""Ross3D's commands end to end on a generated dataset: `train ross3d` (checkpoint, exact resume, the
text-only and no-reconstruction switches, the cluster-7b code path), `predict ross3d` for all five tasks
scored by `core eval`, `reconstruct`, and one clear error for a bad checkpoint folder."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from ross3d_tiny import PRESET, denoiser
from safetensors.torch import load_file

from core.__main__ import main
from core.data.datasets import ross3d_samples as rs
from core.data.scanrefer import read_scanrefer
from core.eval import predict_ross3d
from core.models.ross3d.modeling_ross3d import GroundedAnswer, Ross3DModel
from core.train.cli import available_presets, load_preset

pytestmark = pytest.mark.usefixtures("one_thread")


def _preset(tmp_path: Path, name: str, change=None) -> Path:
    preset = copy.deepcopy(PRESET)
    if change:
        change(preset)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(preset))
    return path


def _train(preset: Path, root: Path, out: Path, *extra: str) -> int:
    return main(["train", "ross3d", "--config", str(preset), "--data", str(root), "--out", str(out), *extra])


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(synth_root, tmp_path_factory) -> Path:
    """The tiny preset trained 4 steps through the CLI (uninterrupted)."""
    tmp = tmp_path_factory.mktemp("ross3d_train")
    out = tmp / "run"
    assert _train(_preset(tmp, "tiny"), synth_root, out) == 0
    return out


def test_train_writes_a_checkpoint_records_and_curves(trained, synth_root):
    model_dir = trained / "model"
    for name in (
        "config.json",
        "model.safetensors",
        "training.json",
        "training_set.jsonl",
        "vae/config.json",
    ):
        assert (model_dir / name).is_file(), name
    assert (trained / "loss_curve.png").is_file() and (trained / "checkpoints").is_dir()
    records = json.loads((trained / "records_train.json").read_text())
    assert _task_counts(records) == {t: 3 for t in rs.TASKS}  # max_per_task 3, all five tasks
    rows = _rows(trained)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # one task per batch: a grounding step has a grounding loss and no reconstruction, and vice versa
    for r in rows:
        assert (r["loss_ground"] > 0) != (r["loss_bev"] > 0)
    # cross-view masking only on steps 0, 2 (view_every 2) that are not grounding batches
    masked = [r["step"] - 1 for r in rows if r["masked_frames"] > 0]
    assert masked and all(s % 2 == 0 for s in masked)
    assert all(r["loss_view"] > 0 for r in rows if r["masked_frames"] > 0)
    recipe = json.loads((model_dir / "training.json").read_text())
    assert recipe["samples"] == {t: 3 for t in rs.TASKS} and recipe["blank_frames"] is False
    assert recipe["train"]["lr_multipliers"] == {"reconstruction.": 10.0}
    assert len(list((trained / "target_cache").glob("*.safetensors"))) == 1  # the one train scene, once


def _task_counts(records: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r["metadata"]["dataset"]] = out.get(r["metadata"]["dataset"], 0) + 1
    return out


def test_resume_equals_uninterrupted_training(trained, synth_root, tmp_path, capsys):
    preset = _preset(tmp_path, "tiny")
    out = tmp_path / "resumed"
    assert _train(preset, synth_root, out, "--stop-after", "2") == 0
    assert "--resume" in capsys.readouterr().out and not (out / "model").exists()
    assert _train(preset, synth_root, out, "--resume") == 0
    a, b = _rows(trained), _rows(out)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for x, y in zip(a, b):
        for key in ("loss", "loss_lm", "loss_view", "loss_bev", "loss_ground", "masked_frames", "lr"):
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), (x["step"], key)
    wa, wb = (
        load_file(str(trained / "model/model.safetensors")),
        load_file(str(out / "model/model.safetensors")),
    )
    assert wa.keys() == wb.keys()
    for key in wa:
        if key.endswith("k_proj.bias"):
            # a key bias shifts every attention logit of a query equally: softmax cancels it, so its
            # gradient is rounding noise that AdamW scales up to lr-sized steps (differs between CPUs)
            continue
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)


def test_switches_text_only_and_no_reconstruction(synth_root, tmp_path, capsys):
    def text_only(p):
        p["model"].update(use_view_recon=False, use_bev_recon=False)
        p["data"].update(blank_frames=True, tasks=["scanqa", "scanrefer"], max_per_task=2)
        p["train"].update(steps=2)

    out = tmp_path / "text"
    assert _train(_preset(tmp_path, "text", text_only), synth_root, out) == 0
    rows = _rows(out)
    assert all(r["loss_view"] == 0 and r["loss_bev"] == 0 and r["masked_frames"] == 0 for r in rows)
    assert not (out / "target_cache").exists()  # no target is encoded when both losses are off
    recipe = json.loads((out / "model/training.json").read_text())
    assert recipe["blank_frames"] is True and recipe["samples"] == {"scanqa": 2, "scanrefer": 2}
    model = Ross3DModel.from_pretrained(out / "model")
    predictor = predict_ross3d.Ross3DPredictor(model, synth_root)
    assert predictor.blank_frames  # the text-only checkpoint is predicted on blank frames too
    records = rs.build_records(synth_root, "val", ("scanqa",), 1, predict=True)
    frames = predictor.store.get(records[0].scene_id).frames
    assert not frames.pixels.any() and not frames.depth.any()
    assert main(["train", "ross3d", "--config", str(tmp_path / "missing.json"), "--data", str(synth_root),
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "cannot read the preset" in capsys.readouterr().err


def _gt(root: Path, task: str) -> Path:
    return rs.gt_file(root, task, "val")


@pytest.mark.parametrize("task", rs.TASKS)
def test_predict_writes_what_eval_scores(trained, synth_root, tmp_path, task, capsys):
    pred = tmp_path / f"pred-{task}.json"
    details = tmp_path / f"details-{task}.json"
    argv = ["predict", "ross3d", "--task", task, "--checkpoint", str(trained / "model"), "--data",
            str(synth_root), "--out", str(pred), "--details", str(details), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert f"{task}: " in capsys.readouterr().out
    report = tmp_path / f"eval-{task}.json"
    assert main(["eval", task, "--gt", str(_gt(synth_root, task)), "--pred", str(pred), "--scans",
                 str(synth_root), "--no-meteor", "--out", str(report)]) == 0  # fmt: skip
    result = json.loads(report.read_text())
    expected = len(rs.build_records(synth_root, "val", (task,), predict=True))
    assert result["num_samples"] == expected
    if task != "scanrefer":  # a ScanRefer query answered "no object" has no box: counted as missing
        assert result["num_missing"] == 0
    shown = json.loads(details.read_text())
    assert len(shown) == expected
    if task not in rs.GROUNDING:  # where each answer came from
        assert all(
            d["answer_source"] in ("llm", "colour", "count") and "llm_answer" in d for d in shown.values()
        )
    if task in rs.GROUNDING:
        for d in shown.values():
            probs = torch.tensor(d["probs"])
            assert probs.sum() == pytest.approx(1.0, abs=1e-5)
            chosen = d["chosen_object_ids"]
            if task == "scanrefer":
                assert len(chosen) == (0 if int(probs.argmax()) == len(probs) - 1 else 1)


class _Oracle:
    """The trained model with its outputs replaced by the ground truth: what the writers make of a perfect
    model must score 100 in `core eval` (keys, boxes and formats exactly as the evaluator reads them)."""

    def __init__(self, model: Ross3DModel, records: list, references: dict[str, str]):
        self.model, self.references = model, references
        self.by_id = {r.id: r for r in records}

    def answer(self, batch):
        out = []
        for s in batch.samples:
            meta = self.by_id[s.sample_id].metadata
            out.append(meta["answers"][0] if "answers" in meta else self.references[meta["key"]])
        return out

    def answer_details(self, batch):
        return [GroundedAnswer(text, text) for text in self.answer(batch)]

    def ground(self, batch):
        out = []
        for s in batch.samples:
            probs = torch.zeros(len(s.proposal_ids) + 1)
            if s.targets:
                probs[s.targets] = 1.0 / len(s.targets)
            else:
                probs[-1] = 1.0
            out.append(probs)
        return out

    def select_proposals(self, probs, task):  # the oracle's own rule: every target (the 0.4 rule would
        return [] if probs[-1] > 0 else torch.nonzero(probs[:-1]).flatten().tolist()  # stop at 1 of 3)

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.mark.parametrize("task,metric", [("scanqa", ("all", "EM@1 raw")), ("sqa3d", ("all", "EM")),
    ("scanrefer", ("overall", "Acc@0.5")), ("multi3drefer", ("overall", "F1@0.5")),
    ("scan2cap", ("m@0.5IoU", "BLEU-1"))])  # fmt: skip
def test_a_perfect_model_scores_100(trained, synth_root, tmp_path, task, metric):
    model = Ross3DModel.from_pretrained(trained / "model")
    records = rs.build_records(synth_root, "val", (task,), predict=True)
    references = {}
    for r in read_scanrefer(_gt(synth_root, "scan2cap")):
        references.setdefault(f"{r.scene_id}|{r.object_id}", r.description)
    oracle = _Oracle(model, records, references)
    predictor = predict_ross3d.Ross3DPredictor(model, synth_root, batch_size=3)
    predictor.model = oracle
    run = predictor.run(records, task, progress=False)
    pred = predict_ross3d.write_predictions(tmp_path / "pred.json", run)
    report = tmp_path / "eval.json"
    assert main(["eval", task, "--gt", str(_gt(synth_root, task)), "--pred", str(pred), "--scans",
                 str(synth_root), "--no-meteor", "--out", str(report)]) == 0  # fmt: skip
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics[metric[0]][metric[1]] == pytest.approx(1.0, abs=1e-9)


def test_reconstruct_writes_pngs_and_scores(trained, synth_root, tmp_path, capsys):
    out = tmp_path / "rec"
    scene = (synth_root / "scannetv2_val.txt").read_text().split()[0]
    argv = ["reconstruct", "--checkpoint", str(trained / "model"), "--scans", str(synth_root), "--scene",
            scene, "--out", str(out), "--steps", "3", "--sampler", "ddpm"]  # fmt: skip
    assert main(argv) == 0
    assert "BEV PSNR" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["steps"] == 3 and scores["sampler"] == "ddpm" and len(scores["masked_frames"]) == 1
    for key in ("bev_psnr", "bev_mean_psnr", "bev_latent_mse", "view_psnr", "view_latent_mse"):
        assert math.isfinite(scores[key]), key
    assert scores["masked_frames"][0] in scores["frames"]
    bev = np.asarray(Image.open(out / "bev.png"))
    assert bev.shape == (64, 3 * 64 + 2 * 4, 3)  # truth | VAE decode | reconstruction at the BEV size
    view = out / f"view_{scores['masked_frames'][0]:05d}.png"
    assert view.is_file() and sorted(scores["files"]) == sorted(["bev.png", view.name])
    # seeded: the same call gives the same images
    assert main([*argv[:-6], "--out", str(tmp_path / "again"), "--steps", "3", "--sampler", "ddpm"]) == 0
    assert (tmp_path / "again/bev.png").read_bytes() == (out / "bev.png").read_bytes()


def test_bad_checkpoint_folder_is_one_clear_error(trained, synth_root, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((trained / "model/config.json").read_text())
    wrong = tmp_path / "dense3d_like"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"voxel_size": 0.1, "unet": {}}))
    cases = [
        (tmp_path / "nowhere", "checkpoint folder not found"),
        (empty, "config.json: missing"),
        (no_weights, "model.safetensors: missing"),
        (wrong, "unknown config key"),
    ]
    for folder, message in cases:
        for argv in (
            ["predict", "ross3d", "--task", "scanqa", "--checkpoint", str(folder), "--data", str(synth_root),
             "--out", str(tmp_path / "p.json")],
            ["reconstruct", "--checkpoint", str(folder), "--scans", str(synth_root), "--scene",
             "scene0000_00", "--out", str(tmp_path / "r")],
        ):  # fmt: skip
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert err.startswith("error: ") and "\n" not in err and message in err, err
            assert str(folder) in err
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "r").exists()
    assert main(["predict", "ross3d", "--checkpoint", str(trained / "model"), "--out", "x.json"]) == 2
    assert "--data" in capsys.readouterr().err


def test_shipped_presets_load_and_the_default_fits_the_size_budget():
    from core.models.common.pretrained import config_from_dict
    from core.models.ross3d.configuration_ross3d import Ross3DConfig

    assert available_presets("ross3d") == ["cluster-7b", "cpu-tiny", "gpu-small"]
    for name in available_presets("ross3d"):
        preset = load_preset("ross3d", name)
        config = config_from_dict(Ross3DConfig, preset["model"], Path(preset["source"]))
        assert config.view_every == 4 and config.mask_ratio == 0.25
        # the denoisers (no 2D-pretrained one exists here) learn faster than the LLM, in every preset
        assert set(preset["train"]["lr_multipliers"]) == {"reconstruction."}
        assert preset["train"]["lr_multipliers"]["reconstruction."] > 1
        assert set(preset["data"]) <= {"split", "tasks", "blank_frames", "memory_scenes"}
    tiny = load_preset("ross3d", "cpu-tiny")
    config = config_from_dict(Ross3DConfig, tiny["model"], Path("cpu-tiny.json"))
    if config.grounding.class_match:  # `train ross3d` fills the vocabulary; 100 classes is more than it finds
        config.grounding.categories = [f"class {i}" for i in range(100)]
    model = Ross3DModel(config)
    fp16_bytes = 2 * sum(p.numel() for p in model.parameters())
    vae_bytes = sum(p.numel() for p in model.vae.vae.parameters()) * 4
    assert fp16_bytes + vae_bytes < 25 * 2**20


# every size the cluster-7b preset sets, shrunk (the local folders below are tiny); nothing else changes
CLUSTER_SHRINK = {
    ("model", "llm", "dtype"): "float32",  # bf16 weights are for the GPU
    ("model", "image", "out_dim"): 64,
    ("model", "image", "num_frames"): 2,
    ("model", "vae_path"): None,  # the shipped VAE (8 latent channels: in_channels 32)
    ("model", "recon", "view"): denoiser([2, 2], cond_dim=64),
    ("model", "recon", "bev"): denoiser([4, 4], cond_dim=64),
    ("model", "targets"): {"view_grid": [2, 2], "view_size": 32, "bev_size": 64, "bev_grid": [4, 4]},
    ("model", "grounding", "dim"): 32,
    ("model", "max_new_tokens"): 4,
    ("model", "max_question_tokens"): 32,
    ("train", "steps"): 2,
    ("train", "grad_accum"): 2,
    ("train", "warmup_steps"): 1,
    ("train", "checkpoint_every"): 2,
    ("train", "log_every"): 1,
    ("train", "num_workers"): 0,
}


def test_cluster_preset_code_path_on_cpu(synth_root, tmp_path):
    """cluster-7b through the same code: local LLM and vision folders (a tiny Qwen2 whose tokenizer lacks
    <ground> / <coord>, a tiny SigLIP), full fine-tune with gradient checkpointing, a frozen tower, gradient
    accumulation; the result reloads and answers identically with the base folders gone."""
    from test_dense3d_cluster_path import _base_llm, _changed, _vision_tower

    from core.train import ross3d as task

    shipped = load_preset("ross3d", "cluster-7b")
    llm, vision = _base_llm(tmp_path / "qwen2-tiny"), _vision_tower(tmp_path / "siglip-tiny")
    preset = copy.deepcopy(shipped)
    for path, value in CLUSTER_SHRINK.items():
        parent = preset
        for key in path[:-1]:
            parent = parent[key]
        assert path[-1] in parent, f"cluster-7b.json no longer sets {'.'.join(path)}: update CLUSTER_SHRINK"
        parent[path[-1]] = value
    preset["model"]["llm"]["path"] = str(llm)
    preset["model"]["image"]["vision"]["path"] = str(vision)
    preset["data"]["max_per_task"] = 1
    allowed = {".".join(p) for p in CLUSTER_SHRINK} | {"model.llm.path", "model.image.vision.path"}
    allowed |= {"data.max_per_task"}
    for key in _changed(shipped, preset):  # a shrunk part's own fields count as that part
        assert any(key == a or key.startswith(a + ".") for a in allowed), key
    assert preset["model"]["llm"]["lora_r"] == 0 and preset["model"]["llm"]["gradient_checkpointing"]

    jobs = []
    real_train = task.train

    def spy(job, **kwargs):
        jobs.append(job)
        return real_train(job, **kwargs)

    task.train = spy
    try:
        final = task.run(preset, synth_root, tmp_path / "out", None, False, None)
    finally:
        task.train = real_train
    model = jobs[0].model
    assert model.config.grad_accum == 2 and model.config.image.vision.freeze
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("image.encoder.") for n in frozen)
    assert all(layer.gradient_checkpointing for layer in model.llm.model.layers)
    assert model.tokenizer.convert_tokens_to_ids("<ground>") >= 0
    saved = load_file(str(final / "model.safetensors"))
    tower = load_file(str(vision / "model.safetensors"))
    (key,) = [k for k in tower if k.endswith("encoder.layers.0.mlp.fc1.weight")]
    (mine,) = [k for k in saved if k.startswith("image.encoder.") and k.endswith(key)]
    torch.testing.assert_close(saved[mine], tower[key], rtol=0, atol=0)  # frozen: unchanged
    base = load_file(str(llm / "model.safetensors"))
    (norm,) = [k for k in saved if k.endswith("model.layers.0.mlp.down_proj.weight")]
    assert not torch.equal(saved[norm], base["model.layers.0.mlp.down_proj.weight"])  # full fine-tune

    records = rs.build_records(synth_root, "val", ("scanqa",), 2, predict=True)
    model.eval()
    store = rs.SceneStore(synth_root, model.image)
    samples = [rs.make_sample(r, store.get(r.scene_id), False) for r in records]
    before = model.answer(rs.collate(samples))
    (llm / "model.safetensors").unlink()
    (vision / "model.safetensors").unlink()
    after = Ross3DModel.from_pretrained(final).answer(rs.collate(samples))
    assert before == after


def test_predict_with_a_detectors_proposals(trained, synth_root, tmp_path, capsys):
    from core.eval.scenes import ScanTruth

    scene = (synth_root / "scannetv2_val.txt").read_text().split()[0]
    gt = ScanTruth(synth_root).scene(scene).boxes
    shifted = np.array([b + [0.01, 0, 0, 0, 0, 0] for b in gt.values()])  # not a ground-truth box
    by_scene = tmp_path / "proposals.json"
    by_scene.write_text(json.dumps({scene: shifted.tolist()}))
    for task in ("scanrefer", "multi3drefer"):
        pred = tmp_path / f"{task}.json"
        argv = ["predict", "ross3d", "--task", task, "--checkpoint", str(trained / "model"), "--data",
                str(synth_root), "--out", str(pred), "--proposals", str(by_scene)]  # fmt: skip
        assert main(argv) == 0
        values = json.loads(pred.read_text()).values()
        boxes = [b for v in values for b in ([v] if task == "scanrefer" else v)]
        assert boxes and all(np.isclose(shifted, b).all(axis=1).any() for b in boxes)

    # a Dense3D box file, keyed by query: pooled per scene, near-duplicates once
    queries = tmp_path / "dense3d.json"
    a, b = (box.tolist() for box in shifted[shifted[:, 3:].prod(axis=1) > 0.01][:2])  # not flat boxes
    queries.write_text(json.dumps({f"{scene}|1|0": a, f"{scene}|2|0": [a[0] + 1e-4, *a[1:]], "other|3|1": b}))
    pooled = predict_ross3d.read_proposal_boxes(queries)
    assert (
        sorted(pooled) == sorted([scene, "other"]) and len(pooled[scene]) == 1 and len(pooled["other"]) == 1
    )
    sets = tmp_path / "dense3d_sets.json"
    sets.write_text(json.dumps({f"{scene}|0": [a, b], f"{scene}|1": []}))
    assert len(predict_ross3d.read_proposal_boxes(sets)[scene]) == 2

    # a scene the file lacks is one error naming the file; a scene without proposals predicts nothing
    (tmp_path / "none.json").write_text(json.dumps({"scene9999_00": [a]}))
    argv[argv.index("--proposals") + 1] = str(tmp_path / "none.json")
    assert "predict multi3drefer: 100%" in capsys.readouterr().err  # the progress bar
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.json" in err and scene in err
    (tmp_path / "empty.json").write_text(json.dumps({scene: []}))
    argv[argv.index("--proposals") + 1] = str(tmp_path / "empty.json")
    assert main(argv) == 0
    assert all(v == [] for v in json.loads((tmp_path / "multi3drefer.json").read_text()).values())
