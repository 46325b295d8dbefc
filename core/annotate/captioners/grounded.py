"""`grounded`: the offline captioner. It writes what the 3D scene supports, with varied phrasing.

It reads only `request.facts` (category, color measured from the object's pixels, size class, shape
words, relations computed from geometry) and never looks at the images, so it is no vision-language
model: it is the honest baseline that makes the pipeline runnable and testable without a GPU, and its
captions are true by construction up to the measurement. Phrasing is drawn from a seeded generator keyed
by the request's `facts["key"]`, so a run is deterministic for a seed and independent of batch order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from core.annotate.captioners.base import CaptionRequest


def _article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"


def _noun_phrase(facts: dict[str, Any], with_size: bool = True) -> str:
    """'small brown box': size, shape and color words before the label, where known."""
    words = []
    if with_size and facts.get("size"):
        words.append(facts["size"])
    words += facts.get("shape") or []
    if facts.get("color"):
        words.append(facts["color"])
    words.append(facts["label"])
    return " ".join(words)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


@dataclass
class GroundedCaptioner:
    """Template captions from 3D facts; deterministic for a seed."""

    seed: int = 0
    name: str = "grounded"

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return [self.answer(r) for r in requests]

    def answer(self, request: CaptionRequest) -> str:
        facts = request.facts
        rng = random.Random(f"{self.seed}|{request.stage}|{facts.get('key', '')}")
        write = getattr(self, f"_{request.stage}", None)
        if write is None:
            raise ValueError(f"grounded captioner: unknown stage {request.stage!r}")
        return write(facts, rng)

    # --------------------------------------------------------------------------------------- objects

    def _isolated_view(self, facts: dict[str, Any], rng: random.Random) -> str:
        phrase = _noun_phrase(facts)
        template = rng.choice(["this is {a} {p}", "{a} {p}", "the image shows {a} {p}", "it is {a} {p}"])
        return _sentence(template.format(a=_article(phrase), p=phrase))

    def _highlighted_view(self, facts: dict[str, Any], rng: random.Random) -> str:
        label, relations = facts["label"], facts.get("relations") or []
        if not relations:
            return _sentence(f"the {label} stands apart from the other labelled objects in this view")
        first = _sentence(f"the {label} is {relations[0]}")
        rest = [_sentence(f"{rng.choice(['it is', 'it is also'])} {r}") for r in relations[1:]]
        return " ".join([first, *rest])

    def _fusion(self, facts: dict[str, Any], rng: random.Random) -> str:
        phrase = _noun_phrase(facts)
        opening = rng.choice(["this is {a} {p}", "there is {a} {p}", "{a} {p}", "the object is {a} {p}"])
        parts = [_sentence(opening.format(a=_article(phrase), p=phrase))]
        for i, relation in enumerate(facts.get("relations") or []):
            lead = rng.choice(["it is", "the {l} is", "you can find it"]) if i == 0 else "it is"
            if lead == "you can find it" and relation.startswith("the "):
                lead = "it is"
            parts.append(_sentence(f"{lead.format(l=facts['label'])} {relation}"))
        return " ".join(parts)

    def _verification(self, facts: dict[str, Any], rng: random.Random) -> str:
        colors = facts.get("view_colors") or []
        if not colors:
            return "CONSISTENT. There is only one view to compare."
        counts = {c: colors.count(c) for c in dict.fromkeys(colors)}
        top = max(counts.values())
        if top >= 0.6 * len(colors):
            return "CONSISTENT. The views agree on the object and its color."
        listing = ", ".join(f"{c} in {n} view{'s' if n > 1 else ''}" for c, n in counts.items())
        return f"INCONSISTENT. The views disagree on the color ({listing})."

    # ----------------------------------------------------------------------------------------- scene

    def _frame(self, facts: dict[str, Any], rng: random.Random) -> str:
        main = facts["highlighted"]
        others = [_noun_phrase(o, with_size=False) for o in facts.get("visible") or []]
        phrase = _noun_phrase(main, with_size=False)
        opening = rng.choice(
            ["the frame shows {a} {p}", "this view is centred on {a} {p}", "in view is {a} {p}"]
        )
        parts = [_sentence(opening.format(a=_article(phrase), p=phrase))]
        if others:
            listed = ", ".join(f"{_article(o)} {o}" for o in others[:-1])
            tail = f"{_article(others[-1])} {others[-1]}"
            parts.append(_sentence(f"also visible: {listed + ' and ' + tail if listed else tail}"))
        parts += [_sentence(s) for s in facts.get("relations") or []]
        return " ".join(parts)

    def _narrative(self, facts: dict[str, Any], rng: random.Random) -> str:
        room = facts.get("room_type") or "room"
        w, d = facts.get("extent") or (0.0, 0.0)
        opening = rng.choice(["this is {a} {r}", "the scan shows {a} {r}", "the room is {a} {r}"])
        parts = [_sentence(opening.format(a=_article(room), r=room))]
        if w and d:
            parts.append(_sentence(f"it measures about {w:.1f} by {d:.1f} metres"))
        main = facts.get("main_objects") or []
        if main:
            names = [
                f"{o['count']} {o['label']}s" if o["count"] > 1 else f"{_article(o['label'])} {o['label']}"
                for o in main
            ]
            listed = ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]
            parts.append(_sentence(f"it contains {listed}"))
        parts += [_sentence(s) for s in facts.get("arrangement") or []]
        return " ".join(parts)

    def _scenario(self, facts: dict[str, Any], rng: random.Random) -> str:
        questions = facts.get("questions") or [f"I want to {facts['need']}. What in this room can I use?"]
        return rng.choice(questions)
