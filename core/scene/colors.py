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


def _chromatic_word(lightness: float, chroma: float, hue: float) -> str:
    """Word for a sample with visible chroma, by Lab hue angle (degrees) and lightness."""
    if hue >= 345 or hue < 20:
        return "pink" if lightness >= 55 else "red"
    if hue < 50:
        return "pink" if lightness >= 68 and chroma < 55 else "red"
    if hue < 75:
        if lightness < 58:
            return "brown"
        return "beige" if chroma < 40 else "orange"
    if hue < 110:
        if lightness < 55:
            return "brown"
        return "beige" if chroma < 45 else "yellow"
    if hue < 195:
        return "green"
    if hue < 310:
        return "blue"
    return "pink" if lightness >= 70 else "purple"


def sample_color_words(rgb_samples: np.ndarray) -> list[str]:
    """The color word of every sample (see the module docstring for the rules)."""
    lab = srgb_to_lab(as_unit_rgb(rgb_samples))
    lightness = lab[:, 0]
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360
    words = []
    for L, C, h in zip(lightness, chroma, hue):
        if L < VERY_DARK_L:
            words.append("black")
        elif C < ACHROMATIC_CHROMA:
            words.append("white" if L >= WHITE_L else "black" if L < BLACK_L else "gray")
        else:
            words.append(_chromatic_word(float(L), float(C), float(h)))
    return words


def color_votes(rgb_samples: np.ndarray) -> dict[str, float]:
    """Fraction of samples per color word, largest first (empty for no samples)."""
    words = sample_color_words(rgb_samples)
    if not words:
        return {}
    counts = {word: words.count(word) / len(words) for word in COLOR_WORDS if word in words}
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def color_name(rgb_samples: np.ndarray) -> str:
    """The dominant color word of an object's samples: the most voted word (ties: `COLOR_WORDS` order)."""
    votes = color_votes(rgb_samples)
    if not votes:
        raise ValueError("no valid RGB samples to name a color from")
    return next(iter(votes))
