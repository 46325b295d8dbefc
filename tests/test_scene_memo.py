"""SceneMemo: computes only what is missing, keeps the most recently used, never mixes keys."""

import pytest

from core.models.dense3d.scene_memo import SceneMemo


def test_computes_only_missing_scenes_and_evicts_least_recent():
    calls = []

    def compute(missing):
        calls.append(dict(missing))
        return {sid: f"value-{sid}-{b}" for sid, b in missing.items()}

    memo = SceneMemo(2)
    assert memo.get({"a": "a:1"}, {"a": 0}, compute) == {"a": "value-a-0"}
    # "a" is cached: only "b" is computed, and with its own batch item
    assert memo.get({"a": "a:1", "b": "b:1"}, {"a": 3, "b": 4}, compute) == {
        "a": "value-a-0",
        "b": "value-b-4",
    }
    assert calls == [{"a": 0}, {"b": 4}]
    memo.get({"a": "a:1"}, {"a": 0}, compute)  # "a" becomes the most recent: "b" is dropped next
    memo.get({"c": "c:1"}, {"c": 0}, compute)
    assert len(memo) == 2
    memo.get({"b": "b:1"}, {"b": 0}, compute)
    assert calls[-1] == {"b": 0}  # recomputed after eviction
    memo.get({"c": "c:1"}, {"c": 0}, compute)
    assert calls[-1] == {"b": 0}  # still cached


def test_same_scene_id_with_another_key_is_recomputed_and_clear_empties():
    memo = SceneMemo(4)
    assert memo.get({"s": "s:10"}, {"s": 0}, lambda m: {"s": 1}) == {"s": 1}
    assert memo.get({"s": "s:11"}, {"s": 0}, lambda m: {"s": 2}) == {"s": 2}
    memo.clear()
    assert len(memo) == 0
    with pytest.raises(ValueError, match="capacity"):
        SceneMemo(0)
