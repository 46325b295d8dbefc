"""Short-answer matching for ScanQA and SQA3D: answer cleaning, exact match and refined exact match.

`clean_answer` is the normalisation of LEO's evaluators, which SQA3D / ScanQA results of the 3D-LLM papers
(LEO, Video-3D-LLM, Ross3D) use: lowercase, trim, drop characters other than letters, digits and
`, ' - :` and whitespace, fix common annotation typos, spell the numbers 0-20 (and 23, and "none" as
"zero") as words, drop a trailing digit glued to a word ("mat2" -> "mat"), and drop the articles a / an /
the before a word. The rules run in the reference's order, since later ones see earlier results.

Refined EM also accepts a prediction when, with all whitespace removed, one string contains the other. An
empty string is contained in every string, which the reference code counts as correct; here an empty
prediction (or reference) never matches, in either measure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.text import SPELLED_IN_ANSWERS, number_word

# Applied in order after lower-casing, each as re.sub(pattern, replacement).
_RULES: list[tuple[str, str]] = [
    (r"[ ]+$", ""),
    (r"^[ ]+", ""),
    (r" {2,}", " "),
    (r"\.[ ]{2,}", ". "),
    (r"[^a-zA-Z0-9,'\s\-:]+", ""),
    ("ç", "c"),
    ("’", "'"),
    # annotation typos
    (r"\bletf\b", "left"),
    (r"\blet\b", "left"),
    (r"\btehre\b", "there"),
    (r"\brigth\b", "right"),
    (r"\brght\b", "right"),
    (r"\bbehine\b", "behind"),
    (r"\btv\b", "TV"),
    (r"\bchai\b", "chair"),
    (r"\bwasing\b", "washing"),
    (r"\bwaslked\b", "walked"),
    (r"\boclock\b", "o'clock"),
    (r"\bo'[ ]+clock\b", "o'clock"),
    # numbers as words ("none" counts as zero)
    (r"\b0\b", "zero"),
    (r"\bnone\b", "zero"),
    *[(rf"\b{n}\b", number_word(n)) for n in SPELLED_IN_ANSWERS if n > 0],
    # a digit glued to a word ("no1", "mat2"), then articles before a word
    (r"\b([a-zA-Z]+)([0-9])\b", r"\g<1>"),
    (r"\ba\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\ban\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\bthe\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\bbackwards\b", "backward"),
]
_COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in _RULES]


def clean_answer(text: str) -> str:
    """LEO's answer normalisation (see the module docstring)."""
    text = text.lower()
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text


def _squeeze(text: str) -> str:
    return "".join(text.split())


def exact_match(prediction: str, references: Sequence[str]) -> bool:
    """The prediction equals one reference; an empty prediction is wrong."""
    return bool(prediction) and prediction in references


def refined_match(prediction: str, references: Sequence[str]) -> bool:
    """Exact match, or one whitespace-free string inside the other; empty strings never match."""
    pred = _squeeze(prediction)
    if not pred:
        return False
    if prediction in references:
        return True
    return any(ref and (pred in ref or ref in pred) for ref in map(_squeeze, references))
