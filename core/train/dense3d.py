"""Dense3D's training task: preset + dataset root -> the two stages of `python -m core train dense3d`.

Stage 1 (when the preset has a `pretrain` part and no `--init` is given) pretrains the sparse U-Net on the
train scenes' semantic and instance labels into `OUT/backbone/`; stage 2 trains the whole model on the
referring samples (ScanRefer, Multi3DRefer and any DenseScan files named in the preset or `data`), its
U-Net starting from stage 1. `--init CHECKPOINT` fine-tunes a trained Dense3D instead (e.g. on reviewed
records) and skips stage 1. Both stages run through `core.train.loop.train`, so both resume exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from core.data.datasets import (
    RefSegDataset,
    SceneCache,
    SceneCacheConfig,
    SceneDataset,
    collate,
    load_samples,
)
from core.data.datasets.refseg import read_split, summarize
from core.models.common.backbone_pretrain import BackbonePretrainConfig, BackbonePretrainer
from core.models.common.categories import build_vocabulary
from core.models.common.image_tokens import FrameInputs
from core.models.common.pretrained import config_from_dict
from core.models.dense3d.configuration_dense3d import Dense3DConfig
from core.models.dense3d.modeling_dense3d import Dense3DInputs, Dense3DModel
from core.models.errors import ModelError
from core.train.config import TrainConfig
from core.train.loop import TrainJob, pretrain_stage, train

DATA_KEYS = {"split", "sources", "densescan", "levels", "cache_dir", "max_samples", "group_by_scene"}


class FramesDataset(Dataset):
    """Referring items with their scene's frames (chosen and preprocessed once per scene), for a model with
    an image branch. The frames of the `memory_scenes` most recent scenes stay in memory (about 5 MB each:
    the depth maps are kept at full size); batches grouped by scene make that enough."""

    def __init__(self, items: RefSegDataset, model: Dense3DModel, root: Path, memory_scenes: int = 32):
        self.items, self.model, self.root = items, model, root
        self.memory_scenes = memory_scenes
        self._frames: OrderedDict[str, FrameInputs] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, scene_id: str) -> FrameInputs:
        if scene_id in self._frames:
            self._frames.move_to_end(scene_id)
            return self._frames[scene_id]
        from core.scene.scannet import load_scene

        frames = self._frames[scene_id] = self.model.image.select_and_load(load_scene(self.root, scene_id))
        while len(self._frames) > self.memory_scenes:
            self._frames.popitem(last=False)
        return frames

    def __getitem__(self, index: int):
        item = self.items[index]
        return item, self.frames(item.scene.scene_id)


def collate_with_frames(pairs: list) -> Dense3DInputs:
    return Dense3DInputs(collate([item for item, _ in pairs]), [frames for _, frames in pairs])


def collate_inputs(items: list) -> Dense3DInputs:
    return Dense3DInputs(collate(items))


def _data_options(preset: dict[str, Any]) -> dict[str, Any]:
    data = dict(preset["data"])
    unknown = sorted(set(data) - DATA_KEYS)
    if unknown:
        raise ModelError(
            preset.get("source"), f"data: unknown key(s) {', '.join(unknown)} (known: {sorted(DATA_KEYS)})"
        )
    return data


def _cache(root: Path, out: Path, voxel_size: float, options: dict[str, Any]) -> SceneCache:
    return SceneCache(
        root, Path(options.get("cache_dir") or out / "scene_cache"), SceneCacheConfig(voxel_size=voxel_size)
    )


def train_vocabulary(cache: SceneCache, scenes: list[str], min_count: int) -> list[str]:
    """The raw-label classes of the train scenes (`core.models.common.categories`)."""
    return build_vocabulary(
        (label for scene in scenes for label in cache.get(scene).object_labels), min_count
    )


def backbone_job(preset: dict[str, Any], root: Path, out: Path) -> TrainJob:
    """Stage 1: the U-Net with semantic and offset heads (and, with class matching, the raw-label class
    head) over the train scenes."""
    options = _data_options(preset)
    model_config = config_from_dict(Dense3DConfig, preset["model"], preset.get("source"))
    scenes = read_split(root, options.get("split", "train"))
    cache = _cache(root, out, model_config.voxel_size, options)
    matching = model_config.class_match
    config = BackbonePretrainConfig(
        unet=model_config.unet,
        voxel_size=model_config.voxel_size,
        categories=train_vocabulary(cache, scenes, matching.min_count) if matching else [],
    )
    dataset = SceneDataset(scenes, cache)
    train_config = TrainConfig.from_dict(preset["pretrain"], "pretrain")
    recipe = {"stage": "backbone", "preset": preset.get("source"), "data": str(root), "scenes": scenes}
    return TrainJob(BackbonePretrainer(config), dataset, collate, train_config, out, recipe)


def refseg_job(
    preset: dict[str, Any], root: Path, out: Path, init: Path | None, backbone: Path | None
) -> TrainJob:
    """Stage 2: the whole model on the referring samples of the split."""
    options = _data_options(preset)
    if init is not None:
        model = Dense3DModel.from_pretrained(init)
        model.train()
    else:
        config = config_from_dict(Dense3DConfig, preset["model"], preset.get("source"))
        pretrained = BackbonePretrainer.from_pretrained(backbone) if backbone is not None else None
        if config.class_match is not None and not config.class_match.categories:
            # the classes of stage 1 when it learned them, else the train scenes' own
            config.class_match.categories = (
                list(pretrained.config.categories)
                if pretrained is not None and pretrained.config.categories
                else train_vocabulary(
                    _cache(root, out, config.voxel_size, options),
                    read_split(root, options.get("split", "train")),
                    config.class_match.min_count,
                )
            )
        model = Dense3DModel(config)
        if pretrained is not None:
            model.backbone.load_state_dict(pretrained.backbone.state_dict())
    samples = load_samples(
        root,
        options.get("split", "train"),
        sources=options.get("sources", ("scanrefer", "multi3drefer")),
        densescan=options.get("densescan", ()),
        levels=options.get("levels", ("object", "scenario")),
    )
    if options.get("max_samples"):
        samples = samples[: int(options["max_samples"])]
    if not samples:
        raise ModelError(root, f"no referring samples in split {options.get('split', 'train')!r}")
    items = RefSegDataset(samples, _cache(root, out, model.config.voxel_size, options))
    if model.image is not None:
        dataset, collate_fn = FramesDataset(items, model, root), collate_with_frames
    else:
        dataset, collate_fn = items, collate_inputs
    recipe = {
        "stage": "dense3d",
        "preset": preset.get("source"),
        "data": str(root),
        "init": str(init) if init else None,
        "backbone": str(backbone) if backbone else None,
        "samples": summarize(samples),
        "densescan": [str(p) for p in options.get("densescan", ())],
        "reviewed_records": sum(1 for s in samples if s.provenance.get("review_status")),
        "reviewed_edited": sum(1 for s in samples if s.provenance.get("edited")),
    }
    train_config = TrainConfig.from_dict(preset["train"], "train")
    groups = [s.scene_id for s in samples] if options.get("group_by_scene", True) else None
    return TrainJob(
        model, dataset, collate_fn, train_config, out, recipe, [s.to_json() for s in samples], groups
    )


def run(
    preset: dict[str, Any], root: Path, out: Path, init: Path | None, resume: bool, stop_after: int | None
):
    """Both stages; returns the final model folder (None when `stop_after` ended the run early)."""
    torch.manual_seed(TrainConfig.from_dict(preset["train"], "train").seed)
    backbone = None
    if init is None and preset.get("pretrain"):
        stage = out / "backbone"
        backbone = pretrain_stage(stage, lambda: backbone_job(preset, root, stage), resume)
    job = refseg_job(preset, root, out, init, backbone)
    return train(job, resume=resume, stop_after=stop_after)
