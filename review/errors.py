"""The one exception type of `review`: every error names the file or item it is about and the reason."""

from __future__ import annotations

from pathlib import Path


class ReviewError(Exception):
    """A request the review store refuses, or an input it cannot read.

    `where` is the offending file (for imports) or item key (for service calls), `reason` says what is
    wrong, and `code` is a short machine-readable tag (`not_found`, `forbidden`, `leased`, `invalid`,
    `input`, `conflict`) so that the app can pick a message without parsing text.
    """

    def __init__(self, where: str | Path | object | None, reason: str, code: str = "invalid"):
        self.where = str(where) if where is not None else None
        self.reason = reason
        self.code = code
        super().__init__(f"{self.where}: {reason}" if self.where else reason)

    def __reduce__(self) -> tuple[type[ReviewError], tuple[str | None, str, str]]:
        return (type(self), (self.where, self.reason, self.code))  # so it crosses process boundaries
