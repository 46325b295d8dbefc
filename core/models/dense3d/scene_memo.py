"""Per-scene values a model computes once and reuses: a bounded, least-recently-used map.

Dense3D keeps two such values per scene (frozen U-Net features, object proposals); both are keyed the
same way and evicted the same way, so the rule lives here once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class SceneMemo(Generic[V]):
    """Cache key -> value, at most `capacity` entries, the least recently used dropped first."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._values: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values.clear()

    def get(
        self, keys: dict[str, str], items: dict[str, int], compute: Callable[[dict[str, int]], dict[str, V]]
    ) -> dict[str, V]:
        """Scene id -> value for every scene of `keys` (scene id -> cache key); `compute` is called once
        with the scenes not cached yet (scene id -> its batch item, from `items`) and must return theirs."""
        missing = {sid: items[sid] for sid, key in keys.items() if key not in self._values}
        if missing:
            computed = compute(missing)
            for sid in missing:
                self._values[keys[sid]] = computed[sid]
        out = {}
        for sid, key in keys.items():
            self._values.move_to_end(key)
            out[sid] = self._values[key]
        while len(self._values) > self.capacity:
            self._values.popitem(last=False)
        return out
