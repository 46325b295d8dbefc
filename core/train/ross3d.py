"""Ross3D's training task: preset + dataset root -> `python -m core train ross3d`.

Stage 1 (when the preset has a `pretrain` part and no `--init` is given) trains the vision tower
on every frame of the train scenes, per token, to name the object under it and its colour
(`core.models.common.vision_pretrain`), into `OUT/vision/`: the stand-in for the pretrained SigLIP the
paper starts from. Stage 2 loads that tower into the image branch (frozen when `vision.freeze` is set, as
in the paper) and trains the rest.

Stage 2 runs through `core.train.loop.train` (so `--resume` continues exactly, as stage 1 does): the
split's benchmark files become LLaVA records (`core.data.datasets.ross3d_samples`, written to
`OUT/records_<split>.json` for inspection), each joined with its scene's frames, ground-truth proposals
and VAE-encoded view / BEV targets (cached once per scene under `OUT/target_cache`, or the preset's
`data.cache_dir`). Batches hold one task each. The loop calls `model(batch)`: the model's own step
counter masks 25% of the frames on optimizer steps where step % view_every == 0 (never on grounding
batches), counting `model.grad_accum` = the preset's `train.grad_accum` forwards per step. The denoisers
learn at their own rate through `train.lr_multipliers` (`"reconstruction."`, `denoiser.LR_PREFIX`).

Preset `data` keys: `split` (train), `tasks` (all five), `max_per_task` (all), `blank_frames` (false:
true zeroes every frame, the text-only run), `cache_dir`, `memory_scenes`. The model's `use_view_recon` /
`use_bev_recon` switch the reconstruction losses off (the Table 4 ablation); no targets are computed then.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from core.data.datasets.ross3d_samples import (
    TASKS,
    Ross3DDataset,
    SceneStore,
    build_records,
    collate,
    record_task,
    task_batches,
)
from core.data.llava import write_conversations
from core.models.common.pretrained import config_from_dict
from core.models.errors import ModelError
from core.train.config import TrainConfig
from core.train.loop import TrainJob, pretrain_stage, train

DATA_KEYS = {"split", "tasks", "max_per_task", "blank_frames", "cache_dir", "memory_scenes"}


def data_options(preset: dict[str, Any]) -> dict[str, Any]:
    data = dict(preset.get("data", {}))
    unknown = sorted(set(data) - DATA_KEYS)
    if unknown:
        raise ModelError(
            preset.get("source"), f"data: unknown key(s) {', '.join(unknown)} (known: {sorted(DATA_KEYS)})"
        )
    tasks = data.get("tasks", list(TASKS))
    bad = sorted(set(tasks) - set(TASKS))
    if bad or not tasks:
        raise ModelError(preset.get("source"), f"data.tasks: expected some of {list(TASKS)}, got {tasks}")
    return data


def vision_job(preset: dict[str, Any], root: Path, out: Path) -> TrainJob:
    """Stage 1: the vision tower with per-token class and colour heads over every frame of the split."""
    from core.data.datasets.refseg import read_split
    from core.data.datasets.vision_frames import VisionFramesDataset, collate_frames
    from core.models.common.categories import build_vocabulary
    from core.models.common.vision_pretrain import VisionPretrainConfig, VisionPretrainer
    from core.models.ross3d.configuration_ross3d import Ross3DConfig
    from core.scene.scannet import load_scene

    options = data_options(preset)
    stage = dict(preset["pretrain"])
    min_count = int(stage.pop("min_count", 2))
    augment = {key: stage.pop(key) for key in ("flip", "class_balance") if key in stage}
    source = Path(preset.get("source") or "preset")
    model_config = config_from_dict(Ross3DConfig, preset.get("model", {}), source)
    scenes = read_split(root, options.get("split", "train"))
    labels = (inst.label for s in scenes for inst in load_scene(root, s, with_frames=False).instances)
    config = VisionPretrainConfig(
        vision=replace(model_config.image.vision, freeze=False),
        categories=build_vocabulary(labels, min_count),
        **augment,
    )
    model = VisionPretrainer(config)
    from accelerate import PartialState

    dataset = VisionFramesDataset(root, scenes, model.encoder, config, PartialState().is_local_main_process)
    model.set_class_frequencies(dataset.classes)
    recipe = {
        "stage": "vision",
        "preset": preset.get("source"),
        "data": str(root),
        "scenes": scenes,
        "frames": len(dataset),
        "labelled_tokens": round(dataset.labelled_fraction(), 4),
    }
    return TrainJob(model, dataset, collate_frames, TrainConfig.from_dict(stage, "pretrain"), out, recipe)


def train_categories(preset: dict[str, Any], root: Path, min_count: int = 2) -> list[str]:
    """The raw-label vocabulary of the split's scenes (`core.models.common.categories`)."""
    from core.data.datasets.refseg import read_split
    from core.models.common.categories import build_vocabulary
    from core.scene.scannet import load_scene

    scenes = read_split(root, data_options(preset).get("split", "train"))
    return build_vocabulary(
        (inst.label for s in scenes for inst in load_scene(root, s, with_frames=False).instances), min_count
    )


def build_model(
    preset: dict[str, Any],
    root: Path,
    init: Path | None,
    grad_accum: int,
    vision: Path | None = None,
):
    """A fresh model from the preset's `model` part (its vision tower from stage 1 when given), or a trained
    checkpoint (`--init`) to fine-tune."""
    from core.models.ross3d.configuration_ross3d import Ross3DConfig
    from core.models.ross3d.modeling_ross3d import Ross3DModel

    if init is not None:
        model = Ross3DModel.from_pretrained(init)
        model.config.grad_accum = grad_accum
        model.train()
        return model
    from core.models.common.vision_pretrain import VisionPretrainer

    config = config_from_dict(Ross3DConfig, preset.get("model", {}), Path(preset.get("source") or "preset"))
    config.grad_accum = grad_accum
    tower = VisionPretrainer.from_pretrained(vision) if vision is not None else None
    if config.grounding.class_match and not config.grounding.categories:
        # the vision stage's classes when it ran, else the train scenes' own
        config.grounding.categories = (
            list(tower.config.categories) if tower is not None else train_categories(preset, root)
        )
    model = Ross3DModel(config)
    if tower is not None:
        model.image.encoder.load_state_dict(tower.encoder.state_dict())
    return model


def scene_store(
    model, root: Path, cache_dir: Path | None, blank_frames: bool = False, memory: int = 64
) -> SceneStore:
    """Frames, proposals and (for the losses the config keeps) targets of each scene."""
    from core.models.ross3d.targets import SceneTargetCache

    config = model.config
    views, bev = bool(config.use_view_recon), bool(config.use_bev_recon)
    targets = SceneTargetCache(cache_dir, model.vae, config.targets) if views or bev else None
    return SceneStore(root, model.image, targets, views, bev, blank_frames, memory)


def prepare(store: SceneStore, scene_ids: list[str], progress: bool = True) -> None:
    """Load every scene (and encode its targets) up front: bad scenes fail before training starts, and
    the first steps are not slowed by target encoding."""
    for scene_id in tqdm(scene_ids, desc="scenes", unit="scene", disable=not progress):
        store.get(scene_id)


def job(
    preset: dict[str, Any], root: Path, out: Path, init: Path | None = None, vision: Path | None = None
) -> TrainJob:
    options = data_options(preset)
    train_config = TrainConfig.from_dict(preset.get("train", {}), "train")
    model = build_model(preset, root, init, train_config.grad_accum, vision)
    split = options.get("split", "train")
    records = build_records(root, split, options.get("tasks", TASKS), options.get("max_per_task"))
    if not records:
        raise ModelError(root, f"no Ross3D training record in split {split!r}")
    out.mkdir(parents=True, exist_ok=True)
    write_conversations(out / f"records_{split}.json", records)
    blank_frames = bool(options.get("blank_frames", False))
    cache_dir = Path(options.get("cache_dir") or out / "target_cache")
    store = scene_store(model, root, cache_dir, blank_frames, int(options.get("memory_scenes", 64)))
    from accelerate import PartialState

    prepare(store, sorted({r.scene_id for r in records}), PartialState().is_local_main_process)
    tasks = [record_task(r) for r in records]
    order, groups = task_batches(tasks, train_config.batch_size, train_config.seed)
    recipe = {
        "stage": "ross3d",
        "preset": preset.get("source"),
        "data": str(root),
        "split": split,
        "init": str(init) if init else None,
        "vision": str(vision) if vision else None,
        "samples": dict(Counter(tasks)),
        "blank_frames": blank_frames,
        "use_view_recon": model.config.use_view_recon,
        "use_bev_recon": model.config.use_bev_recon,
    }
    training_set = [{"id": r.id, "scene_id": r.scene_id, "task": t} for r, t in zip(records, tasks)]
    dataset = Ross3DDataset(records, store, order)
    return TrainJob(model, dataset, collate, train_config, out, recipe, training_set, groups)


def zero_stage() -> int:
    """The DeepSpeed ZeRO stage this process runs under (`accelerate launch` sets it), 0 without DeepSpeed."""
    import os

    from accelerate import PartialState
    from accelerate.utils import DistributedType

    if PartialState().distributed_type != DistributedType.DEEPSPEED:
        return 0
    return int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0") or 0)


def save_gathered(model, final: Path) -> None:
    """Under ZeRO-3 each process holds a shard of every weight, so the loop's save saw shards: gather the
    full weights on every process and save again from the main one. Not run here: DeepSpeed is not
    installed on this machine (see presets/accelerate-zero3.yaml)."""
    import deepspeed
    from accelerate import PartialState

    state = PartialState()
    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if state.is_main_process:
            model.save_pretrained(final)
    state.wait_for_everyone()


def run(
    preset: dict[str, Any], root: Path, out: Path, init: Path | None, resume: bool, stop_after: int | None
):
    """The whole run; returns the final model folder (None when `stop_after` ended it early)."""
    torch.manual_seed(TrainConfig.from_dict(preset.get("train", {}), "train").seed)
    root, out = Path(root), Path(out)
    vision = None
    if init is None and preset.get("pretrain"):
        stage = out / "vision"
        vision = pretrain_stage(stage, lambda: vision_job(preset, root, stage), resume)
    task = job(preset, root, out, init, vision)
    final = train(task, resume=resume, stop_after=stop_after)
    if final is not None and zero_stage() == 3:
        save_gathered(task.model, final)
    return final
