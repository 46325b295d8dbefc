"""ScanRefer-style tokens, the one definition every writer of `token` fields uses."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*|'(?:s|re|ve|ll|d|m|t)\b|[^\sa-z0-9]")


def scanrefer_tokens(text: str) -> list[str]:
    """Lower-case words (hyphenated ones kept whole), with punctuation and clitics ("'s") as tokens of
    their own: "It's the L-shaped desk." -> it 's the l-shaped desk ."""
    return _TOKEN.findall(text.lower())
