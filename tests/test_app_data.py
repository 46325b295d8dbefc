"""The app's demo build and its data helpers; also the shared helper that annotates the session's
synthetic scenes once for every app test module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.context import AppContext
from app.demo import DEMO_PASSWORD, DEMO_USERS, build_demo, create_review_db
from review import ReviewService

_BUILT: dict[Path, Path] = {}


def annotated_demo(synth_root: Path, workdir: Path) -> Path:
    """`build_demo` over the session's scenes, once per session; returns the demo root."""
    if synth_root not in _BUILT:
        root = workdir / "demo"
        build_demo(root, scans=synth_root, progress=False)
        _BUILT[synth_root] = root
    return _BUILT[synth_root]


def fresh_db(demo_root: Path, target: Path, edit=None) -> str:
    """A new review database with the demo's annotations (optionally rewritten by `edit(records)`)."""
    annotations = demo_root / "densescan"
    if edit is not None:
        copy = target.parent / f"{target.stem}-annotations"
        copy.mkdir(parents=True, exist_ok=True)
        records = json.loads((annotations / "densescan.json").read_text())
        (copy / "densescan.json").write_text(json.dumps(edit(records)))
        annotations = copy
    url = f"sqlite:///{target}"
    create_review_db(url, annotations, progress=False)
    return url


@pytest.fixture(scope="session")
def demo_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return annotated_demo(synth_root, tmp_path_factory.mktemp("app"))


def test_build_demo_writes_annotations_db_and_users(demo_root: Path, synth_root: Path) -> None:
    assert (demo_root / "densescan" / "densescan.json").is_file()
    assert (demo_root / "review.db").is_file()
    service = ReviewService(f"sqlite:///{demo_root / 'review.db'}")
    try:
        assert {u.username: u.role.value for u in service.list_users()} == DEMO_USERS
        assert service.login("annotator", DEMO_PASSWORD) is not None
        assert service.stats().items == len(
            json.loads((demo_root / "densescan" / "densescan.json").read_text())
        )
    finally:
        service.close()


def test_build_demo_is_idempotent(demo_root: Path, synth_root: Path) -> None:
    before = (demo_root / "review.db").stat().st_mtime_ns
    build_demo(demo_root, scans=synth_root, progress=False)
    assert (demo_root / "review.db").stat().st_mtime_ns == before


def test_context_answers_item_questions(demo_root: Path, synth_root: Path, tmp_path: Path) -> None:
    service = ReviewService(fresh_db(demo_root, tmp_path / "r.db"))
    ctx = AppContext(service, synth_root, demo_root / "densescan")
    try:
        assert ctx.scene_ids() == ["scene0000_00", "scene0001_00"]
        items = service.list_items(limit=500)
        framed = {(i.key.scene_id, i.key.object_id) for i in items if i.key.level == "frame"}  # frame centres
        key = lambda i: (i.key.scene_id, i.key.object_id)  # noqa: E731
        obj = next(i for i in items if i.key.level == "object" and key(i) in framed)
        crops, highlights = ctx.images(obj)
        assert crops and highlights and all(Path(p).is_file() for p, _ in crops + highlights)
        claims = ctx.claims(obj)
        assert claims and {c["verdict"] for c in claims} <= {"supported", "contradicted", "unverifiable"}
        assert any(level.startswith("frame") or level == "scene" for level, _ in ctx.other_levels(obj))
        scene_item = next(i for i in items if i.key.level == "scene")
        assert ctx.images(scene_item) == ([], [])
        frame_item = next(i for i in items if i.key.level == "frame")
        assert ctx.images(frame_item)[1][0][1].endswith("(this caption)")
        assert ctx.loaded("scene0000_00") is ctx.loaded("scene0000_00")
        assert ctx.bev("scene0000_00").color.shape[2] == 3
    finally:
        service.close()


def test_context_without_scans(demo_root: Path, tmp_path: Path) -> None:
    annotations = tmp_path / "ann"
    shutil.copytree(demo_root / "densescan" / "scenes", annotations / "scenes")
    service = ReviewService(fresh_db(demo_root, tmp_path / "r.db"))
    try:
        ctx = AppContext(service, None, annotations)
        assert ctx.scene_ids() == ["scene0000_00", "scene0001_00"]
        assert ctx.loaded("scene0000_00") is None
    finally:
        service.close()


def test_context_names_the_file_of_a_scene_that_cannot_load(
    demo_root: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken scene shows why (the file and the reason) instead of an empty view, is not re-read on
    every request, and loads once the file is fixed."""
    import app.context as context
    from app.explorer_tab import object_panel

    scans = tmp_path / "scans"
    shutil.copytree(synth_root / "scans" / "scene0000_00", scans / "scene0000_00")
    segs = scans / "scene0000_00" / "scene0000_00_vh_clean_2.0.010000.segs.json"
    good = segs.read_bytes()
    segs.write_text('{"segIndices": [0, 1')  # cut off mid-write
    service = ReviewService(fresh_db(demo_root, tmp_path / "r.db"))
    try:
        ctx = AppContext(service, scans, demo_root / "densescan")
        assert ctx.loaded("scene0000_00") is None
        problem = ctx.scene_error("scene0000_00")
        assert problem is not None and segs.name in problem
        panel, frames = object_panel(ctx, "scene0000_00", None)
        assert segs.name in panel and "msg-error" in panel and frames == []
        segs.write_bytes(good)
        assert ctx.loaded("scene0000_00") is None  # within the retry interval: the failure stands
        monkeypatch.setattr(context, "SCENE_RETRY_S", 0.0)
        assert ctx.loaded("scene0000_00") is not None
        assert ctx.scene_error("scene0000_00") is None
    finally:
        service.close()
