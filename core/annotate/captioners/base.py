"""The one interface every captioner implements, so the pipeline never knows which backend it talks to.

A request carries what a vision-language model needs (a prompt and images) and the 3D facts the offline
`grounded` captioner describes from (category, measured color, size, relations...). VLM backends send
the prompt and images; the facts travel only to captioners that ask for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

STAGES = (
    "isolated_view",  # stage 1: one isolated crop of the object
    "highlighted_view",  # stage 2: a full frame with the object marked
    "fusion",  # stage 3: fuse per-view descriptions into one caption
    "verification",  # stage 4a: are the per-view descriptions consistent?
    "frame",  # a frame-level description
    "narrative",  # a scene-level narrative
    "scenario",  # scenario-driven questions
)


@dataclass
class CaptionRequest:
    """One question to a captioner."""

    stage: str
    prompt: str
    images: list[np.ndarray] = field(default_factory=list)  # RGB uint8 (H, W, 3)
    facts: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable 3D facts
    max_tokens: int = 256
    temperature: float = 0.0


@runtime_checkable
class Captioner(Protocol):
    """Answers a batch of requests; backends may run them concurrently. Same order out as in."""

    name: str

    def caption(self, requests: list[CaptionRequest]) -> list[str]: ...
