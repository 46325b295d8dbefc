"""The prompts of every stage, in one readable place, for vision-language model backends.

Each function returns the text sent with the stage's images. The object's category is given as a hint
(the annotation knows it; the model should confirm what it sees, not guess the class). Answers are asked
for in plain sentences, except verification (a keyword first) and scenario questions (one line).
"""

from __future__ import annotations

from core.text import indefinite

SYSTEM = (
    "You describe objects in indoor 3D scans for a dataset. Say only what the images show. Be concrete: "
    "color, shape, material, size, and where the object is relative to other named objects."
)


def isolated_view(label: str) -> str:
    return (
        f"The image shows one object, {indefinite(label)}, with its background removed. Describe its "
        "appearance in one or two sentences: color, shape, material, notable parts. Do not describe the "
        "background."
    )


def highlighted_view(label: str, neighbours: list[str]) -> str:
    names = ", ".join(neighbours) if neighbours else "none named"
    return (
        f"The {label} marked in red is in its room. Describe in one or two sentences where it is relative "
        f"to the objects around it (visible nearby: {names}). Use phrases like 'on', 'next to', 'between', "
        "'against the wall', 'to the left of'. Start with 'The " + label + "'."
    )


def fusion(label: str, view_texts: list[str], recurring: list[str]) -> str:
    listing = "\n".join(f"- view {i + 1}: {t}" for i, t in enumerate(view_texts))
    keep = "; ".join(recurring) if recurring else "none"
    return (
        f"Here are descriptions of one {label} seen from several views:\n{listing}\n"
        f"Details that recur across views: {keep}.\n"
        "Write one description of the object (two to three sentences) keeping what the views agree on and "
        "leaving out what only one view claims. Mention its color and its position relative to named objects."
    )


def verification(label: str, view_texts: list[str]) -> str:
    listing = "\n".join(f"- view {i + 1}: {t}" for i, t in enumerate(view_texts))
    return (
        f"These descriptions should all be of the same {label}:\n{listing}\n"
        "Do they agree on its category, color and position? Answer with CONSISTENT or INCONSISTENT first, "
        "then one sentence naming any disagreement."
    )


def frame(highlighted: str, visible: list[str]) -> str:
    names = ", ".join(visible) if visible else "no labelled objects"
    return (
        f"Describe what this frame of an indoor scan shows in two or three sentences. The {highlighted} is "
        f"marked in red; other objects in view: {names}. Say how they are arranged."
    )


def narrative(room_hint: str, objects: list[str]) -> str:
    return (
        "Write a short paragraph describing this room for someone who cannot see it: the kind of room "
        f"(it may be {indefinite(room_hint)}), its layout, the main objects and how they are arranged. "
        f"Objects in the room: {', '.join(objects)}."
    )


def scenario(need: str, answers: list[str]) -> str:
    return (
        f"Write one question that a person in this room might ask when they want to {need}, so that the "
        f"answer is: {', '.join(answers)}. Do not name the answer in the question. One line."
    )
