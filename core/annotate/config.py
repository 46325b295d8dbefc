"""Parameters of the DenseScan pipeline in one dataclass, so a run is reproducible from its settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.annotate.errors import AnnotateError

HIGHLIGHT_STYLES = ("outline", "tint", "box")
BACKGROUNDS = ("mask", "blur")


@dataclass
class AnnotateConfig:
    """Everything that changes the output of a scene (the captioner aside)."""

    top_k: int = 8  # views per object (8 in the paper)
    # Depth test (REFERENCE §6): 0.05 m in ScanRefer, 0.2 m in OpenMask3D; real depth is noisy, so between.
    tolerance: float = 0.1
    near: float = 0.1
    far: float = 4.0
    min_visible_vertices: int = 20  # a frame below this never counts as a view of the object
    min_pixels: int = 60  # rendered object pixels (at work resolution) a chosen view must show
    min_view_angle: float = 20.0  # degrees between the viewing directions of two chosen views, or
    min_view_distance: float = 0.5  # metres between their camera centres (see core.annotate.views)
    min_frame_gap: int = 5  # and always at least this many frames apart
    work_scale: float = 0.5  # color frames are processed at this fraction of their resolution
    crop_scales: tuple[float, ...] = (1.1, 1.5)  # box expansions of the multi-scale crops
    crop_size: int = 224  # longest side of a saved crop, pixels
    background: str = "mask"  # how isolated crops suppress the background: mask or blur
    highlight: str = "outline"  # how highlighted frames mark the object: outline, tint or box
    max_relations: int = 3  # relations per view / caption
    frame_descriptions: int = 6  # frame-level descriptions per scene
    scenario_questions: int = 8  # scenario questions per scene (at most)
    color_samples: int = 400  # object pixels per view that vote for its color
    seed: int = 0
    skip_labels: tuple[str, ...] = field(default=("wall", "floor", "ceiling"))  # structure: not captioned

    def __post_init__(self) -> None:
        if self.highlight not in HIGHLIGHT_STYLES:
            raise AnnotateError(f"highlight must be one of {HIGHLIGHT_STYLES}, got {self.highlight!r}")
        if self.background not in BACKGROUNDS:
            raise AnnotateError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.min_frame_gap < 1 or self.min_view_distance < 0 or self.min_view_angle < 0:
            raise AnnotateError("min_frame_gap must be >= 1, min_view_distance and min_view_angle >= 0")
        if self.top_k < 1 or not 0 < self.work_scale <= 1:
            raise AnnotateError("top_k must be >= 1 and work_scale in (0, 1]")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
