"""Atomically written files get the mode a plain open() would give them (umask for new files, the old
mode for replaced ones), not the 0600 of the temp file they are written through."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.atomic import atomic_write_json, atomic_write_text, current_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_new_files_follow_the_umask(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    assert current_umask() == 0o022
    atomic_write_text(tmp_path / "a.txt", "a")
    assert mode(tmp_path / "a.txt") == 0o644
    os.umask(0o027)
    assert current_umask() == 0o027
    atomic_write_json(tmp_path / "sub" / "b.json", {"b": 1})
    assert mode(tmp_path / "sub" / "b.json") == 0o640
    os.umask(0o002)
    atomic_write_text(tmp_path / "c.txt", "c")
    assert mode(tmp_path / "c.txt") == 0o664
    with open(tmp_path / "plain.txt", "w") as f:  # the reference: what open() does under this umask
        f.write("p")
    assert mode(tmp_path / "c.txt") == mode(tmp_path / "plain.txt")


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask: None) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    secret.chmod(0o600)
    atomic_write_json(secret, {"token": "x"})
    assert mode(secret) == 0o600
    assert secret.read_text() == '{"token": "x"}'
    shared = tmp_path / "shared.txt"
    shared.write_text("old")
    shared.chmod(0o664)
    atomic_write_text(shared, "new")
    assert mode(shared) == 0o664 and shared.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
