"""A light description of one annotated object, shared by the generator, the relations and the captioners."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjectInfo:
    """One instance of a scene, in the axis-aligned frame.

    `box` is the axis-aligned box `[cx, cy, cz, dx, dy, dz]` of the object's mesh vertices; `color_name`
    and `attributes` are known for synthetic scenes and estimated (or absent) for real scans.
    """

    object_id: int
    label: str
    box: np.ndarray
    color_name: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.box[:3], dtype=np.float64)

    @property
    def size(self) -> np.ndarray:
        return np.asarray(self.box[3:6], dtype=np.float64)

    @property
    def bottom(self) -> float:
        return float(self.box[2] - self.box[5] / 2)

    @property
    def top(self) -> float:
        return float(self.box[2] + self.box[5] / 2)
