"""A response cache on disk, so that a rerun after a crash never asks a model the same question twice.

The key is a sha256 of everything that decides the answer (model, messages with their image bytes,
sampling parameters); the value is the response text, one small file per key, written atomically.
A blank text is never a caption worth keeping: it is not stored, and a blank file (written by an older
version) reads as a miss, so the question is asked again instead of rebuilding the same empty output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """A stable hash of a question: canonical JSON, so dict order never changes the key."""
    blob = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Response texts under `root/<key[:2]>/<key>.txt`; two levels keep folders small at ScanNet scale."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.txt"

    def get(self, key: str) -> str | None:
        """The cached text, or None when there is none (or only a blank one)."""
        path = self._path(key)
        if not path.is_file():
            return None
        text = path.read_text(encoding="utf-8")
        return text if text.strip() else None

    def put(self, key: str, text: str) -> None:
        """Store `text` under `key`; a blank text is not stored (the next run asks again)."""
        if not isinstance(text, str):
            raise TypeError(f"a cached response must be a str, got {type(text).__name__}")
        if text.strip():
            atomic_write_text(self._path(key), text)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.txt")) if self.root.is_dir() else 0
