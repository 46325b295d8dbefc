"""Every frame of a split's scenes with per-token class and colour labels, for the vision tower's stage 1
(`core.models.common.vision_pretrain`).

Frames are read once (all of a scene's frames, not the k the LLM sees) and kept in memory as the encoder's
preprocessed pixels: about 150 kB per frame at 112 px, 140 MB for 38 scenes of 24 frames.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from core.models.common.image_tokens import load_frames
from core.models.common.vision import VisionEncoder
from core.models.common.vision_pretrain import (
    VisionPretrainConfig,
    token_cells,
    token_classes,
    token_colours,
    vertex_classes,
)
from core.models.errors import ModelError


class VisionFramesDataset(Dataset):
    def __init__(
        self,
        root: Path,
        scene_ids: list[str],
        encoder: VisionEncoder,
        config: VisionPretrainConfig,
        progress: bool = True,
    ):
        from core.scene.scannet import load_scene

        pixels, classes, colours, self.frame_keys = [], [], [], []
        for scene_id in tqdm(scene_ids, desc="label frames", unit="scene", disable=not progress):
            scene = load_scene(root, scene_id)
            if scene.frames is None or not scene.frames.frames:
                raise ModelError(scene.folder, f"scene {scene_id} has no RGB-D frames to pretrain on")
            frames = load_frames(scene, list(range(len(scene.frames.frames))), encoder)
            cells = token_cells(*frames.depth.shape[-2:], encoder)
            classes.append(
                token_classes(
                    frames.depth,
                    frames.intrinsics,
                    frames.cam_to_world,
                    cells,
                    encoder.num_patches,
                    scene.mesh.vertices,
                    vertex_classes(scene, config.categories),
                    config.max_distance,
                    config.pixel_stride,
                )
            )
            pixels.append(frames.pixels)
            colours.append(token_colours(frames.pixels, encoder))
            self.frame_keys += [(scene_id, i) for i in frames.frame_indices]
        if not self.frame_keys:
            raise ModelError(root, "vision pretraining: no scenes given")
        self.pixels = torch.cat(pixels)
        self.classes = torch.cat(classes)
        self.colours = torch.cat(colours)

    def __len__(self) -> int:
        return len(self.frame_keys)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"pixels": self.pixels[index], "classes": self.classes[index], "colours": self.colours[index]}

    def labelled_fraction(self) -> float:
        return float((self.classes >= 0).float().mean())


def collate_frames(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}
