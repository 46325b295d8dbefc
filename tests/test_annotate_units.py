"""Small parts of the pipeline: view selection, crops and highlights, the grounded captioner, records."""

from __future__ import annotations

import numpy as np
import pytest

from core.annotate.captioners.base import Captioner, CaptionRequest
from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.config import AnnotateConfig
from core.annotate.images import highlighted_frame, isolated_crop, mask_bbox
from core.annotate.scene_text import guess_room_type
from core.annotate.views import select_views
from core.scene.visibility import VisibilityTable


def test_view_selection_ranks_and_spreads_viewpoints():
    counts = np.array([[100], [95], [90], [10], [60], [5]], dtype=np.int32)
    table = VisibilityTable([str(i) for i in range(6)], np.array([0]), counts, np.array([200]))
    poses = np.tile(np.eye(4), (6, 1, 1))
    # frames 0-2 look from the same side; 4 from another; 3 barely sees it; 5 is below the threshold
    poses[:, :3, 3] = [[0, -2, 1], [0.05, -2, 1], [0, -2.05, 1], [2, 0, 1], [-2, 0, 1], [0, 2, 1]]
    config = AnnotateConfig(top_k=2, min_visible_vertices=8, min_frame_gap=1)
    chosen = select_views(table, 0, poses, np.array([0.0, 0.0, 1.0]), config)
    assert [c.frame_index for c in chosen] == [0, 4]
    # No filling up with near-duplicates (frames 1 and 2 repeat frame 0): fewer than k distinct views
    # come back, best first. (The old rule padded the top-k with frames 1 and 2.)
    config = AnnotateConfig(top_k=10, min_visible_vertices=8, min_frame_gap=1)
    assert [c.frame_index for c in select_views(table, 0, poses, np.zeros(3), config)] == [0, 4, 3]


def test_crop_and_highlight_styles():
    color = np.full((60, 80, 3), 200, dtype=np.uint8)
    mask = np.zeros((60, 80), dtype=bool)
    mask[20:30, 30:50] = True
    box = mask_bbox(mask)
    assert box == (30, 20, 50, 30)
    crop = isolated_crop(color, mask, box, 1.5, "mask", 224)
    assert crop.shape[0] == crop.shape[1] == 30 and (crop == 128).all(axis=-1).any()
    assert isolated_crop(color, mask, box, 1.5, "blur", 16).shape[:2] == (16, 16)
    for style in ("outline", "tint", "box"):
        marked = highlighted_frame(color, mask, box, style)
        assert marked.shape == color.shape and (marked != color).any()
        assert (marked[0, 0] == color[0, 0]).all()


def test_grounded_is_a_captioner_and_deterministic():
    captioner = GroundedCaptioner(seed=1)
    assert isinstance(captioner, Captioner)
    facts = {
        "key": "s|1|0",
        "label": "chair",
        "color": "red",
        "size": None,
        "shape": [],
        "relations": ["next to the desk", "against the wall"],
    }
    requests = [
        CaptionRequest("fusion", "p", facts=facts),
        CaptionRequest("highlighted_view", "p", facts=facts),
    ]
    first = captioner.caption(requests)
    assert first == GroundedCaptioner(seed=1).caption(requests)
    assert first[::-1] == captioner.caption(requests[::-1])  # independent of batch order
    assert "red chair" in first[0].lower() and "next to the desk" in first[0]
    many = {GroundedCaptioner(seed=s).caption(requests[:1])[0].split(".")[0] for s in range(12)}
    assert len(many) > 1  # varied phrasing across seeds


def test_room_guess():
    assert guess_room_type(["bed", "lamp", "chair"]) == "bedroom"
    assert guess_room_type(["toilet", "sink"]) == "bathroom"
    assert guess_room_type(["box"]) == "room"


def test_words_per_caption_has_one_definition() -> None:
    """Words are core.text's tokens that start with a letter or digit: punctuation and clitics are not
    words, a hyphenated word is one, whether or not the record's own tokens were written by someone else."""
    from core.annotate import stats
    from core.annotate.document import Narrative, ObjectEntry, SceneAnnotation, Verification
    from core.data.densescan import DenseScanRecord

    words = stats.caption_words("It's the L-shaped desk, by 2 doors.")
    assert words == ["it", "the", "l-shaped", "desk", "by", "2", "doors"]

    def record(level: str, name: str, text: str, status: str | None, tokens: list[str]) -> DenseScanRecord:
        return DenseScanRecord("scene0000_00", "1", name, "0", text, tokens, level, status=status)

    records = [
        record("object", "chair", "a red chair", "accepted", ["a", "red", "chair"]),
        record("object", "chair", "It's a chair.", "flagged", ["it's", "a", "chair."]),  # split() tokens
        record("frame", "table", "one two three four", None, []),
    ]
    assert stats.words_per_caption(records) == {"object": [3, 3], "frame": [4]}
    assert stats.captions_per_level(records) == {"object": 2, "frame": 1}
    assert stats.categories(records) == {"chair": 2} and stats.category_count(records) == 1
    assert stats.status_counts(records, "object") == {"accepted": 1, "flagged": 1}
    assert stats.status_counts(records) == {"accepted": 1, "flagged": 1, "none": 1}
    summary = stats.summarize(records)
    assert summary["by_level"]["object"] == {"count": 2, "mean_words": 3.0}
    assert summary["vocabulary"] == len({"a", "red", "chair", "it", "one", "two", "three", "four"})
    check = Verification("Yes.", True, [{"kind": "color", "verdict": "supported"}], "accepted", 1.0)
    obj = ObjectEntry(1, "chair", [0.0] * 6, None, [], [], [], None, verification=check)
    docs = [SceneAnnotation("scene0000_00", "grounded", {}, [obj], [], Narrative("office", [], [], "x"), [])]
    assert stats.claim_verdicts(docs) == {"color": {"supported": 1}}


def test_annotate_errors_are_one_family() -> None:
    """A captioner failure is an AnnotateError, so one `except AnnotateError` covers the package."""
    from core.annotate.captioners.registry import CaptionerError as FromRegistry
    from core.annotate.captioners.registry import make_captioner
    from core.annotate.config import AnnotateConfig
    from core.annotate.errors import AnnotateError, CaptionerError

    assert FromRegistry is CaptionerError and issubclass(CaptionerError, AnnotateError)
    with pytest.raises(CaptionerError, match="unknown captioner 'nope'"):
        make_captioner("nope")
    with pytest.raises(AnnotateError, match="top_k must be >= 1"):
        AnnotateConfig(top_k=0)
