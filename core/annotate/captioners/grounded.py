"""`grounded`: the offline captioner. It writes what the 3D scene supports, with varied phrasing.

It reads only `request.facts` (category, color measured from the object's pixels, size class, shape
words, relations computed from geometry) and never looks at the images, so it is no vision-language
model: it is the honest baseline that makes the pipeline runnable and testable without a GPU, and its
captions are true by construction up to the measurement. Phrasing is drawn from a seeded generator keyed
by the request's `facts["key"]`, so a run is deterministic for a seed and independent of batch order. The
English (articles, plurals, counts, lists, agreement) is `core.text`'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from core.annotate.captioners.base import CaptionRequest
from core.text import be, count_phrase, indefinite, join_words, pronoun, sentence


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
        this, it = ("these are", "they are") if be(phrase) == "are" else ("this is", "it is")
        template = rng.choice([f"{this} {{p}}", "{p}", "the image shows {p}", f"{it} {{p}}"])
        return sentence(template.format(p=indefinite(phrase)))

    def _highlighted_view(self, facts: dict[str, Any], rng: random.Random) -> str:
        label, relations = facts["label"], facts.get("relations") or []
        is_, it = be(label), pronoun(label)
        if not relations:
            stand = "stand" if is_ == "are" else "stands"
            return sentence(f"the {label} {stand} apart from the other labelled objects in this view")
        first = sentence(f"the {label} {is_} {relations[0]}")
        rest = [sentence(f"{rng.choice([f'{it} {is_}', f'{it} {is_} also'])} {r}") for r in relations[1:]]
        return " ".join([first, *rest])

    def _fusion(self, facts: dict[str, Any], rng: random.Random) -> str:
        phrase, label = _noun_phrase(facts), facts["label"]
        is_, it, them = be(label), pronoun(label), pronoun(label, "object")
        this, there = ("these are", "there are") if is_ == "are" else ("this is", "there is")
        opening = rng.choice([f"{this} {{p}}", f"{there} {{p}}", "{p}", f"the object {is_} {{p}}"])
        parts = [sentence(opening.format(p=indefinite(phrase)))]
        for i, relation in enumerate(facts.get("relations") or []):
            options = [f"{it} {is_}", f"the {label} {is_}", f"you can find {them}"]
            lead = rng.choice(options) if i == 0 else f"{it} {is_}"
            if lead == f"you can find {them}" and relation.startswith("the "):
                lead = f"{it} {is_}"
            parts.append(sentence(f"{lead} {relation}"))
        return " ".join(parts)

    def _verification(self, facts: dict[str, Any], rng: random.Random) -> str:
        colors = facts.get("view_colors") or []
        if not colors:
            return "CONSISTENT. There is only one view to compare."
        counts = {c: colors.count(c) for c in dict.fromkeys(colors)}
        top = max(counts.values())
        if top >= 0.6 * len(colors):
            return "CONSISTENT. The views agree on the object and its color."
        listing = ", ".join(f"{c} in {count_phrase(n, 'view')}" for c, n in counts.items())
        return f"INCONSISTENT. The views disagree on the color ({listing})."

    # ----------------------------------------------------------------------------------------- scene

    def _frame(self, facts: dict[str, Any], rng: random.Random) -> str:
        main = facts["highlighted"]
        others = [_noun_phrase(o, with_size=False) for o in facts.get("visible") or []]
        phrase = _noun_phrase(main, with_size=False)
        opening = rng.choice(["the frame shows {p}", "this view is centred on {p}", "in view {is_} {p}"])
        parts = [sentence(opening.format(p=indefinite(phrase), is_=be(phrase)))]
        if others:
            parts.append(sentence(f"also visible: {join_words([indefinite(o) for o in others])}"))
        parts += [sentence(s) for s in facts.get("relations") or []]
        return " ".join(parts)

    def _narrative(self, facts: dict[str, Any], rng: random.Random) -> str:
        room = facts.get("room_type") or "room"
        w, d = facts.get("extent") or (0.0, 0.0)
        opening = rng.choice(["this is {r}", "the scan shows {r}", "the room is {r}"])
        parts = [sentence(opening.format(r=indefinite(room)))]
        if w and d:
            parts.append(sentence(f"it measures about {w:.1f} by {d:.1f} metres"))
        main = facts.get("main_objects") or []
        if main:
            names = [count_phrase(o["count"], o["label"]) if o["count"] > 1 else indefinite(o["label"])
                     for o in main]  # fmt: skip
            parts.append(sentence(f"it contains {join_words(names)}"))
        parts += [sentence(s) for s in facts.get("arrangement") or []]
        return " ".join(parts)

    def _scenario(self, facts: dict[str, Any], rng: random.Random) -> str:
        questions = facts.get("questions") or [f"I want to {facts['need']}. What in this room can I use?"]
        return rng.choice(questions)
