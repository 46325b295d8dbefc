"""Ross3D's vision stage: per-token labels from the scan, a tower that learns them, and the two-stage
`train ross3d` run that loads (and freezes) it."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from ross3d_tiny import PRESET
from safetensors.torch import load_file

from core.__main__ import main
from core.data.datasets.refseg import read_split
from core.data.datasets.vision_frames import VisionFramesDataset, collate_frames
from core.models.common.categories import IGNORE, build_vocabulary, class_id
from core.models.common.image_tokens import load_frames
from core.models.common.vision import VisionConfig
from core.models.common.vision_pretrain import (
    VisionPretrainConfig,
    VisionPretrainer,
    token_cells,
    token_classes,
    vertex_classes,
)
from core.scene.render import MeshRenderer
from core.scene.scannet import load_scene

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = VisionConfig(image_size=56, patch_size=8, hidden=32, layers=1, heads=2, pool=1)


def _vocabulary(root: Path) -> list[str]:
    return build_vocabulary(
        i.label for s in read_split(root, "train") for i in load_scene(root, s, with_frames=False).instances
    )


def test_token_labels_match_the_rendered_instance_image(synth_root):
    """The back-projected labels equal the majority class of the renderer's own per-pixel instance image."""
    vocabulary = _vocabulary(synth_root)
    scene = load_scene(synth_root, read_split(synth_root, "train")[0])
    config = VisionPretrainConfig(vision=SMALL, categories=vocabulary, pixel_stride=1)
    model = VisionPretrainer(config)
    frames = load_frames(scene, list(range(0, len(scene.frames.frames), 8)), model.encoder)
    cells = token_cells(*frames.depth.shape[-2:], model.encoder)
    got = token_classes(
        frames.depth,
        frames.intrinsics,
        frames.cam_to_world,
        cells,
        model.encoder.num_patches,
        scene.mesh.vertices,
        vertex_classes(scene, vocabulary),
        stride=1,
    )
    renderer = MeshRenderer(scene.mesh, scene.vertex_instance)
    labels = {inst.object_id: class_id(inst.label, vocabulary) for inst in scene.instances}
    height, width = frames.depth.shape[-2:]
    agree = total = 0
    for f in range(len(frames.frame_indices)):
        view = renderer.render(
            frames.cam_to_world[f].numpy(), frames.intrinsics[f].numpy(), width, height, color=False
        )
        pixel_class = np.array([labels.get(int(i), IGNORE) for i in view.instance.reshape(-1)])
        for token in range(model.encoder.num_patches):
            mine = pixel_class[(cells.numpy() == token) & (pixel_class != IGNORE)]
            if len(mine) == 0 or int(got[f, token]) == IGNORE:
                continue
            total += 1
            agree += int(np.bincount(mine).argmax() == int(got[f, token]))
    assert total > 100
    assert agree / total > 0.95, (agree, total)
    assert (got != IGNORE).float().mean() > 0.8  # most tokens see a labelled surface


def test_the_tower_learns_the_token_classes(synth_root):
    """A few dozen steps on the train frames beat always answering the most common class by far."""
    torch.manual_seed(0)
    config = VisionPretrainConfig(vision=SMALL, categories=_vocabulary(synth_root))
    model = VisionPretrainer(config)
    data = VisionFramesDataset(synth_root, read_split(synth_root, "train"), model.encoder, config, False)
    labelled = data.classes[data.classes != IGNORE]
    majority = float(torch.bincount(labelled).max()) / len(labelled)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    everything = collate_frames([data[i] for i in range(len(data))])
    first = model(everything)
    for _ in range(60):
        batch = collate_frames([data[i] for i in torch.randperm(len(data))[:16].tolist()])
        optimizer.zero_grad()
        model(batch)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        last = model(everything)
    assert float(last["accuracy"]) > majority + 0.15, (float(last["accuracy"]), majority)
    assert float(last["loss_colour"]) < 0.5 * float(first["loss_colour"])


def test_train_ross3d_runs_the_vision_stage_and_freezes_its_tower(synth_root, tmp_path):
    preset = copy.deepcopy(PRESET)
    preset["model"]["image"]["vision"]["freeze"] = True
    preset["pretrain"] = {"steps": 3, "batch_size": 8, "lr": 0.003, "warmup_steps": 1, "log_every": 1}
    path = tmp_path / "preset.json"
    path.write_text(json.dumps(preset))
    out = tmp_path / "run"
    args = ["train", "ross3d", "--config", str(path), "--data", str(synth_root), "--out", str(out)]
    assert main(args) == 0
    stage = out / "vision" / "model"
    recipe = json.loads((stage / "training.json").read_text())
    assert recipe["stage"] == "vision" and recipe["labelled_tokens"] > 0.5
    assert json.loads((out / "model" / "training.json").read_text())["vision"] == str(stage)
    tower = load_file(stage / "model.safetensors")
    trained = load_file(out / "model" / "model.safetensors")
    keys = [k for k in tower if k.startswith("encoder.")]
    assert keys
    for key in keys:  # loaded into the image branch, and frozen there through stage 2
        assert torch.equal(trained["image." + key], tower[key]), key
    stamp = (stage / "model.safetensors").stat().st_mtime_ns
    assert main(args + ["--resume"]) == 0  # a finished stage 1 is not trained again
    assert (stage / "model.safetensors").stat().st_mtime_ns == stamp


def test_mirrored_frames_keep_their_token_labels(synth_root):
    """The flip moves pixels and labels together: the tower's output for a mirrored frame, mirrored back,
    is scored against the frame's own labels, so a labels-not-flipped bug shows as a changed loss."""
    torch.manual_seed(0)
    config = VisionPretrainConfig(vision=SMALL, categories=_vocabulary(synth_root), flip=True)
    model = VisionPretrainer(config)
    data = VisionFramesDataset(synth_root, read_split(synth_root, "train")[:1], model.encoder, config, False)
    batch = collate_frames([data[i] for i in range(8)])
    torch.manual_seed(1)
    mirrored = model._mirror(batch)
    chosen = ~torch.all(mirrored["pixels"] == batch["pixels"], dim=(1, 2, 3))
    assert 0 < int(chosen.sum()) < 8  # a random half, not all or none
    gh, gw = model.encoder.grid
    for key, shape in (("classes", (gh, gw)), ("colours", (gh, gw, 3))):
        flipped = mirrored[key][chosen].view(-1, *shape).flip(2)
        assert torch.equal(flipped.reshape(batch[key][chosen].shape), batch[key][chosen]), key
        assert torch.equal(mirrored[key][~chosen], batch[key][~chosen])
    assert torch.equal(mirrored["pixels"][chosen].flip(-1), batch["pixels"][chosen])
    # the colour target still matches the (mirrored) pixels it is read from
    from core.models.common.vision_pretrain import token_colours

    torch.testing.assert_close(token_colours(mirrored["pixels"], model.encoder), mirrored["colours"])
    with pytest.raises(Exception, match="flip needs"):
        VisionPretrainer(replace(config, vision=replace(SMALL, image_size=56, patch_size=8, pool=3)))


def test_class_balance_weights_rare_classes_up(synth_root):
    config = VisionPretrainConfig(vision=SMALL, categories=_vocabulary(synth_root), class_balance=0.5)
    model = VisionPretrainer(config)
    labels = torch.tensor([1] * 100 + [2] * 25 + [IGNORE] * 50)
    model.set_class_frequencies(labels)
    weights = model.class_weights
    assert float(weights[2] / weights[1]) == pytest.approx(2.0)  # (25 / 100) ^ -0.5
    assert float(weights[3]) == pytest.approx(float(weights[2]))  # absent: as the rarest present class
    assert float(weights[1:3].mean()) == pytest.approx(1.0)
    plain = VisionPretrainer(replace(config, class_balance=0.0))
    plain.set_class_frequencies(labels)
    assert torch.equal(plain.class_weights, torch.ones_like(plain.class_weights))
    # the weights reach the model's class loss (a rare class's error counts twice a common one's)
    model.eval()
    batch = {
        "pixels": torch.randn(2, 3, SMALL.image_size, SMALL.image_size),
        "classes": torch.full((2, model.encoder.num_patches), IGNORE),
        "colours": torch.zeros(2, model.encoder.num_patches, 3),
    }
    batch["classes"][0, :5], batch["classes"][1, :3] = 1, 2
    with torch.no_grad():
        logits = model.classes(model.encoder(batch["pixels"]))
        named = batch["classes"] != IGNORE
        weighted = torch.nn.functional.cross_entropy(logits[named], batch["classes"][named], weight=weights)
        unweighted = torch.nn.functional.cross_entropy(logits[named], batch["classes"][named])
        got = model(batch)["loss_class"]
    torch.testing.assert_close(got, weighted)
    assert abs(float(got - unweighted)) > 1e-4
