"""Read the checkable claims out of a caption: category, colors, size words and spatial relations.

A small pattern reader, not a parser: it finds the scene's object names in the text (longest first), the
color and size words, and the relation phrases of `core.scene.relations`, and ties each to the object it
is about. A color word belongs to the next object name within three words ("a brown bed", "next to the
gray pillow"), or to the subject when no name follows ("it is brown"). What it cannot tie is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.scene.colors import COLOR_WORDS
from core.scene.relations import _singular_phrase, called

SIZE_WORDS = {
    "small": "small",
    "little": "small",
    "tiny": "small",
    "large": "large",
    "big": "large",
    "huge": "large",
}
# Relation phrases as token sequences -> predicate of `core.scene.relations`; longest matched first.
RELATION_PHRASES: dict[tuple[str, ...], str] = {
    tuple(text.split()): predicate
    for text, predicate in [
        ("to the left of", "left of"),
        ("left of", "left of"),
        ("to the right of", "right of"),
        ("right of", "right of"),
        ("in front of", "in front of"),
        ("behind", "behind"),
        ("next to", "next to"),
        ("beside", "next to"),
        ("close to", "near"),
        ("near", "near"),
        ("closest to", "closest to"),
        ("nearest to", "closest to"),
        ("farthest from", "farthest from"),
        ("furthest from", "farthest from"),
        ("between", "between"),
        ("on top of", "on"),
        ("on", "on"),
        ("under", "under"),
        ("underneath", "under"),
        ("beneath", "under"),
        ("above", "above"),
        ("below", "below"),
        ("against the wall", "against the wall"),
        ("in the corner", "in the corner"),
        ("in the middle of the room", "in the middle of the room"),
        ("in the center of the room", "in the middle of the room"),
    ]
}
NO_ANCHOR = ("against the wall", "in the corner", "in the middle of the room")
SUPERLATIVES = ("largest", "smallest", "tallest", "shortest")
MAX_PHRASE = max(len(k) for k in RELATION_PHRASES)


@dataclass
class Claim:
    """One checkable statement: kind is category, color, size or relation."""

    kind: str
    text: str  # the words of the caption it comes from
    value: str = ""  # color / size word, predicate, or named category
    anchors: list[str] = field(default_factory=list)  # object names the relation points at


@dataclass
class Mention:
    start: int
    end: int
    name: str


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def find_mentions(tokens: list[str], names: set[str]) -> list[Mention]:
    """Object names in the token list, longest match first, singular or plural."""
    longest = max((len(n.split()) for n in names), default=1)
    out, i = [], 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            phrase = _singular_phrase(" ".join(tokens[i : i + n]))
            if phrase in names:
                out.append(Mention(i, i + n, phrase))
                i += n
                break
        else:
            i += 1
    return out


def scene_names(labels: list[str]) -> set[str]:
    """Every name the scene's labels can be called by: the label and its head noun, singular."""
    names = set()
    for label in labels:
        full = _singular_phrase(label)
        names.add(full)
        names.add(full.split()[-1])
    return {n for n in names if n}


def extract_claims(text: str, subject_label: str, labels: list[str]) -> list[Claim]:
    """The claims a caption of the object labelled `subject_label` makes (see the module docstring)."""
    tokens = tokenize(text)
    mentions = find_mentions(tokens, scene_names([*labels, subject_label]))
    at = {m.start: m for m in mentions}
    claims: list[Claim] = []
    about_subject = [m for m in mentions if called(subject_label, m.name)]
    if about_subject:
        claims.append(Claim("category", about_subject[0].name, about_subject[0].name))
    elif mentions and mentions[0].start <= 3:  # the caption opens by naming something else
        claims.append(Claim("category", mentions[0].name, mentions[0].name))

    used_as_anchor: set[int] = set()
    i = 0
    while i < len(tokens):
        predicate, length = _relation_at(tokens, i)
        if predicate is None:
            i += 1
            continue
        span_end = i + length
        if predicate in NO_ANCHOR:
            claims.append(Claim("relation", " ".join(tokens[i:span_end]), predicate))
            i = span_end
            continue
        wanted = 2 if predicate == "between" else 1
        anchors, j = [], span_end
        while len(anchors) < wanted and j < len(tokens) and j <= span_end + 3 + 4 * len(anchors):
            if j in at:
                anchors.append(at[j])
                used_as_anchor.add(j)
                j = at[j].end
            else:
                j += 1
        if len(anchors) == wanted:
            claims.append(Claim("relation", " ".join(tokens[i:j]), predicate, [m.name for m in anchors]))
            i = j
        else:
            i = span_end
    for k, token in enumerate(tokens):
        if token in SUPERLATIVES:
            following = [m for m in mentions if k < m.start <= k + 3]
            if following and called(subject_label, following[0].name):
                claims.append(Claim("relation", f"the {token} {following[0].name}", token))
        if token in COLOR_WORDS or token in SIZE_WORDS:
            owner = next((m for m in mentions if k < m.start <= k + 3), None)
            if owner is not None and (owner.start in used_as_anchor or not called(subject_label, owner.name)):
                continue  # describes another object
            kind = "color" if token in COLOR_WORDS else "size"
            claims.append(Claim(kind, token, token if kind == "color" else SIZE_WORDS[token]))
    return claims


def _relation_at(tokens: list[str], i: int) -> tuple[str | None, int]:
    for n in range(min(MAX_PHRASE, len(tokens) - i), 0, -1):
        predicate = RELATION_PHRASES.get(tuple(tokens[i : i + n]))
        if predicate is not None:
            return predicate, n
    return None, 0
