"""Name the dominant color of an object from its pixels or mesh-vertex colors.

Used on real scans and on rendered crops, where one object mixes its own color with shading, highlights
and bits of background. So every sample gets a word on its own, by lightness, chroma and hue in CIE Lab
(D65), and the words vote: a mostly blue chair with white legs is "blue", where the mean color of its
samples would be a washed-out grey-blue that names nothing.
"""

from __future__ import annotations

import numpy as np

# Reference sRGB values: the generator paints objects with these, and each is named back as itself.
COLOR_WORDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "brown": (120, 72, 36),
    "beige": (222, 204, 165),
    "red": (200, 30, 35),
    "orange": (240, 130, 30),
    "yellow": (240, 210, 50),
    "green": (50, 150, 60),
    "blue": (40, 80, 190),
    "purple": (120, 50, 150),
    "pink": (235, 140, 175),
}

ACHROMATIC_CHROMA = 10.0  # below this Lab chroma a sample is white, gray or black
WHITE_L = 85.0  # lightness at or above which an achromatic sample is white
BLACK_L = 30.0  # lightness below which an achromatic sample is black
VERY_DARK_L = 15.0  # any sample this dark reads as black, whatever its hue

_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] to CIE Lab (D65): L in [0, 100]."""
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _D65_WHITE
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def as_unit_rgb(rgb_samples: np.ndarray) -> np.ndarray:
    """(N, 3) float RGB in [0, 1] from uint8 / 0-255 / 0-1 samples or an (H, W, 3) image; drops NaN rows."""
    rgb = np.asarray(rgb_samples)
    if rgb.ndim < 2 or rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB samples of shape (N, 3) or (H, W, 3), got {rgb.shape}")
    rgb = rgb.reshape(-1, 3).astype(np.float64)
    rgb = rgb[np.isfinite(rgb).all(axis=1)]
    if np.asarray(rgb_samples).dtype.kind in "ui" or (len(rgb) and rgb.max() > 1.0):
        rgb = rgb / 255.0
    return rgb


_WORDS = tuple(COLOR_WORDS)


def _word_indices(lightness: np.ndarray, chroma: np.ndarray, hue: np.ndarray) -> np.ndarray:
    """Index into `COLOR_WORDS` of every sample, by Lab lightness, chroma and hue angle (degrees)."""
    w = {word: i for i, word in enumerate(_WORDS)}
    L, C, h = lightness, chroma, hue
    light_pink = np.where(L >= 55, w["pink"], w["red"])
    grey = np.where(L >= WHITE_L, w["white"], np.where(L < BLACK_L, w["black"], w["gray"]))
    rules = [
        (L < VERY_DARK_L, w["black"]),
        (C < ACHROMATIC_CHROMA, grey),
        ((h >= 345) | (h < 20), light_pink),
        (h < 50, np.where((L >= 68) & (C < 55), w["pink"], w["red"])),
        (h < 75, np.where(L < 58, w["brown"], np.where(C < 40, w["beige"], w["orange"]))),
        (h < 110, np.where(L < 55, w["brown"], np.where(C < 45, w["beige"], w["yellow"]))),
        (h < 195, w["green"]),
        (h < 310, w["blue"]),
    ]
    conditions = [np.broadcast_to(c, L.shape) for c, _ in rules]
    choices = [np.broadcast_to(v, L.shape) for _, v in rules]
    return np.select(conditions, choices, default=np.where(L >= 70, w["pink"], w["purple"])).astype(np.int64)


def sample_word_indices(rgb_samples: np.ndarray) -> np.ndarray:
    """(N,) index into `COLOR_WORDS` of every sample (vectorised; see the module docstring)."""
    lab = srgb_to_lab(as_unit_rgb(rgb_samples))
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360
    return _word_indices(lab[:, 0], chroma, hue)


def sample_color_words(rgb_samples: np.ndarray) -> list[str]:
    """The color word of every sample (see the module docstring for the rules)."""
    return [_WORDS[i] for i in sample_word_indices(rgb_samples)]


def color_votes(rgb_samples: np.ndarray) -> dict[str, float]:
    """Fraction of samples per color word, largest first (empty for no samples)."""
    index = sample_word_indices(rgb_samples)
    if not len(index):
        return {}
    counts = np.bincount(index, minlength=len(_WORDS)) / len(index)
    found = {_WORDS[i]: float(counts[i]) for i in range(len(_WORDS)) if counts[i] > 0}
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def color_name(rgb_samples: np.ndarray) -> str:
    """The dominant color word of an object's samples: the most voted word (ties: `COLOR_WORDS` order)."""
    votes = color_votes(rgb_samples)
    if not votes:
        raise ValueError("no valid RGB samples to name a color from")
    return next(iter(votes))


# ------------------------------------------------------------------------------- what a camera sees
#
# One definition of an object's color, shared by the pipeline (`core.annotate`) and the synthetic ground
# truth (`core.synth`): each view of the object votes with up to `VIEW_SAMPLES` of its visible
# pixels (evenly strided, in image order), the views' vote shares are averaged (each view counts the
# same), and the color is the word with the largest mean share. Hidden faces (a bed's underside, a
# sofa's back against the wall) have no pixels, so they never vote.

VIEW_SAMPLES = 400  # visible pixels per view that vote
VIEW_MIN_PIXELS = 60  # at the pipeline's work resolution (half of 1296 x 968), as `AnnotateConfig.min_pixels`


def sample_pixels(pixels: np.ndarray, count: int = VIEW_SAMPLES) -> np.ndarray:
    """At most `count` evenly strided rows of (N, 3) pixels: deterministic and cheap to vote with."""
    if len(pixels) <= count:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, count).astype(np.int64)]


def pooled_votes(view_votes: list[dict[str, float]]) -> dict[str, float]:
    """Mean of per-view vote shares, largest first (ties by word), rounded to 4 places."""
    total: dict[str, float] = {}
    for votes in view_votes:
        for word, share in votes.items():
            total[word] = total.get(word, 0.0) + share
    n = max(len(view_votes), 1)
    return {w: round(v / n, 4) for w, v in sorted(total.items(), key=lambda item: (-item[1], item[0]))}


class VisibleColors:
    """Tallies the color votes of every object's visible pixels frame by frame (from frames already
    rendered with an instance image), then names each object's color over its best views: the
    `views` frames showing most of its pixels, at least `min_frame_gap` frames apart."""

    def __init__(self, views: int = 8, min_frame_gap: int = 5, min_pixels: int = VIEW_MIN_PIXELS):
        self.views, self.min_frame_gap, self.min_pixels = views, min_frame_gap, min_pixels
        self._seen: dict[int, list[tuple[int, int, dict[str, float]]]] = {}

    def add(self, frame: int, color: np.ndarray, instance: np.ndarray) -> None:
        """One frame: (H, W, 3) uint8 color and (H, W) int instance ids (-1: none) of the same pixels."""
        ids = instance.reshape(-1)
        rgb = color.reshape(-1, 3)
        order = np.argsort(ids, kind="stable")  # each object's pixels in image order
        found, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
        for oid, start, n in zip(found.tolist(), starts.tolist(), counts.tolist()):
            if oid < 0 or n < self.min_pixels:
                continue
            votes = color_votes(sample_pixels(rgb[order[start : start + n]]))
            self._seen.setdefault(oid, []).append((n, frame, votes))

    def votes(self, object_id: int) -> dict[str, float]:
        """Pooled votes of the object's chosen views (empty when no frame shows it)."""
        chosen: list[tuple[int, int, dict[str, float]]] = []
        for n, frame, votes in sorted(self._seen.get(object_id, []), key=lambda v: (-v[0], v[1])):
            if all(abs(frame - f) >= self.min_frame_gap for _, f, _ in chosen):
                chosen.append((n, frame, votes))
                if len(chosen) == self.views:
                    break
        return pooled_votes([v for *_, v in chosen])

    def color(self, object_id: int) -> str | None:
        """The dominant word of the object's visible pixels; None when no frame shows enough of it."""
        return next(iter(self.votes(object_id)), None)
