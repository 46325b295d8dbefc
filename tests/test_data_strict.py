"""core.data's JSON readers on hostile files: every failure is one `DataError` naming the file, no casts.

Deep nesting and integers of thousands of digits used to escape as RecursionError / ValueError
tracebacks; a DenseScan `revision` of 2.7 was truncated to 2 and a `confidence` of NaN passed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data.densescan import read_densescan
from core.data.errors import DataError
from core.data.jsonio import read_json
from core.data.llava import read_conversations

DEEP = "[" * 100_000 + "]" * 100_000  # json's recursive decoder gives up long before this depth


@pytest.mark.parametrize(
    "text, reason",
    [(DEEP, "nested too deeply"), ("[" + "9" * 5000 + "]", "cannot read")],
    ids=["deep", "huge_integer"],
)
def test_json_reader_names_the_file(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "scanrefer.json"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_json(path)
    assert info.value.path == path and reason in str(info.value)


def test_llava_jsonl_reader_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": "a"}\n' + DEEP + "\n")
    with pytest.raises(DataError, match="line 2: malformed JSON \\(nested too deeply\\)"):
        read_conversations(path)


def densescan_row(**extra) -> dict:
    row = {"scene_id": "scene0000_00", "object_id": "3", "object_name": "chair", "ann_id": "0"}
    row |= {"description": "a red chair.", "token": ["a", "red", "chair", "."], "level": "object"}
    return row | extra


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("revision", 2.7, "expected an integer, found float 2.7"),
        ("revision", 2.0, "expected an integer, found float 2.0"),
        ("revision", True, "expected an integer, found bool True"),
        ("confidence", float("nan"), "expected a finite number, found nan"),
        ("confidence", float("inf"), "expected a finite number, found inf"),
    ],
)
def test_densescan_numbers_are_not_cast(tmp_path: Path, field: str, value, reason: str) -> None:
    path = tmp_path / "densescan.json"
    path.write_text(json.dumps([densescan_row(), densescan_row(**{field: value})]))  # NaN as json writes it
    with pytest.raises(DataError) as info:
        read_densescan(path)
    assert info.value.path == path and info.value.index == 1 and info.value.field == field
    assert reason in str(info.value)


def test_densescan_good_numbers_still_read(tmp_path: Path) -> None:
    path = tmp_path / "densescan.json"
    path.write_text(json.dumps([densescan_row(revision=3, confidence=0.25)]))
    (item,) = read_densescan(path)
    assert item.revision == 3 and type(item.revision) is int and item.confidence == 0.25
