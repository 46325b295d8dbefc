"""Settings of the review workflow, with the defaults the app and the CLI use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from review.records import ItemKey


@dataclass(frozen=True)
class ReviewConfig:
    lease_minutes: float = 15.0  # an abandoned item returns to the queue after this long
    second_approval: bool = True  # an edit counts only once another person approves it
    double_review_rate: float = 0.1  # share of items (chosen at import) that two people review
    low_confidence: float = 0.5  # below this confidence an item is reviewed before the accepted ones
    sample_salt: str = "densescan-review"  # changes which items the double-review sample picks

    @property
    def lease(self) -> timedelta:
        return timedelta(minutes=self.lease_minutes)

    def reviews_required(self, key: ItemKey) -> int:
        """1, or 2 for the double-review sample; a hash of the key, so a re-import picks the same items."""
        digest = hashlib.sha256(f"{self.sample_salt}|{key}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return 2 if fraction < self.double_review_rate else 1

    def priority(self, pipeline_status: str, confidence: float) -> int:
        """Queue order (lower first): flagged, then low confidence, then pipeline-rejected, then accepted."""
        if pipeline_status == "flagged":
            return 0
        if confidence < self.low_confidence:
            return 1
        if pipeline_status == "rejected":
            return 2
        return 3
