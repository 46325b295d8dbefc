"""The label table reader (real ScanNet ids, error reporting) and the dominant-color namer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.scene.colors import COLOR_WORDS, color_name, color_votes
from core.scene.errors import SceneError
from core.scene.labels import DEFAULT_TABLE, SCANNET20_NYU40_IDS, SCANNET200_IDS, LabelMap
from core.synth.annotations import OBJECT_CATEGORIES

REAL_HEADER = (
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\teigen13class\tModelNet40\t"
    "ModelNet10\tShapeNetCore55\tsynsetoffset\twnsynsetid\twnsynsetkey\tmpcat40\tmpcat40index"
)
GOOD_ROW = "\t".join(
    ["2", "chair", "chair", "4646", "5", "4", "chair", "chair", "Chair", "chair", "chair", "chair", "3001627"]
    + ["n03001627", "chair.n.01", "chair", "3"]
)


@pytest.fixture(scope="module")
def labels() -> LabelMap:
    return LabelMap.default()


# (raw, nyu40 id, nyu40 class, ScanNet200 id) as in ScanNet's scannetv2-labels.combined.tsv
KNOWN = [
    ("wall", 1, "wall", 1),
    ("floor", 2, "floor", 3),
    ("chair", 5, "chair", 2),
    ("office chair", 5, "chair", 10),
    ("couch", 6, "sofa", 6),
    ("door", 8, "door", 5),
    ("window", 9, "window", 16),
    ("kitchen counter", 12, "counter", 159),
    ("monitor", 40, "otherprop", 19),
    ("tv", 25, "television", 33),
    ("trash can", 39, "otherfurniture", 56),
    ("nightstand", 32, "night stand", 34),
    ("laptop", 40, "otherprop", 77),
]


@pytest.mark.parametrize(("raw", "nyu40", "nyu40_name", "scannet200"), KNOWN)
def test_real_ids(labels: LabelMap, raw: str, nyu40: int, nyu40_name: str, scannet200: int) -> None:
    assert labels.nyu40_id(raw) == nyu40
    assert labels.nyu40_name(raw) == nyu40_name
    assert labels.scannet200_id(raw) == scannet200


def test_shipped_table_has_the_real_layout_and_every_category(labels: LabelMap) -> None:
    lines = DEFAULT_TABLE.read_text().splitlines()
    assert lines[0] == REAL_HEADER
    assert all(len(line.split("\t")) == 17 for line in lines)
    for raw in (*OBJECT_CATEGORIES, "wall", "floor", "door", "window"):
        assert raw in labels, raw
        assert labels.scannet200_id(raw) in SCANNET200_IDS


def test_constants() -> None:
    assert len(SCANNET200_IDS) == 200 and len(set(SCANNET200_IDS)) == 200
    assert SCANNET200_IDS[:3] == (1, 2, 3) and SCANNET200_IDS[-1] == 1191 and 12 not in SCANNET200_IDS
    assert SCANNET20_NYU40_IDS == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)


def test_unknown_and_normalized_labels(labels: LabelMap) -> None:
    assert labels.nyu40_id("flux capacitor") == 0
    assert labels.scannet200_id("flux capacitor") == 0
    assert labels.nyu40_name("flux capacitor") == "otherprop"
    assert labels.nyu40_id("Office_Chair ") == 5
    assert labels.scanrefer_class("couch") == "sofa"
    assert labels.scanrefer_class("kitchen counter") == "counter"
    assert labels.scanrefer_class("lamp") == "others"


def test_ids_outside_scannet200_map_to_zero(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    row = "12\tcounter\tcounter\t104\t12\t6\tcounter\tcounter\tFurniture\t\t\t\t\t\t\tcounter\t26"
    path.write_text(f"{REAL_HEADER}\n{GOOD_ROW}\n{row}\n\n")
    table = LabelMap.from_tsv(path)
    assert len(table) == 2
    assert table.nyu40_id("counter") == 12 and table.scannet200_id("counter") == 0
    assert table.row("counter").extra["mpcat40"] == "counter"


BAD_NUMBER_ROW = GOOD_ROW.replace("chair", "stool").replace("\t5\t4", "\tfive\t4")
OUT_OF_RANGE_ROW = GOOD_ROW.replace("\t5\t4", "\t41\t4")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            f"{REAL_HEADER}\n{GOOD_ROW}\n{BAD_NUMBER_ROW}\n",
            "line 3, column 'nyu40id': 'five' is not an integer",
        ),
        (
            REAL_HEADER.replace("nyu40id", "nyu40") + f"\n{GOOD_ROW}\n",
            "line 1: header lacks column 'nyu40id'",
        ),
        (f"{REAL_HEADER}\n{GOOD_ROW}\textra\n", "line 2: 18 fields"),
        (f"{REAL_HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n", "line 3: raw_category 'chair' repeats line 2"),
        (f"{REAL_HEADER}\n2\tchair\tchair\n", "line 2: column 'nyu40id' is missing"),
        (f"{REAL_HEADER}\n{OUT_OF_RANGE_ROW}\n", "line 2, column 'nyu40id': 41 is outside"),
        ("", "line 1: empty"),
    ],
)
def test_malformed_table_names_the_line(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(SceneError) as info:
        LabelMap.from_tsv(path)
    assert needle in str(info.value)
    assert info.value.path == path


def test_missing_table_is_a_scene_error(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match="cannot read"):
        LabelMap.from_tsv(tmp_path / "absent.tsv")


# ----------------------------------------------------------------------------------------------- colors


@pytest.mark.parametrize("word", list(COLOR_WORDS))
def test_reference_colors_name_themselves(word: str) -> None:
    rgb = np.array(COLOR_WORDS[word])
    rng = np.random.default_rng(0)
    assert color_name(np.tile(rgb, (20, 1)).astype(np.uint8)) == word
    assert color_name(np.tile(rgb / 255.0, (20, 1))) == word  # floats in [0, 1]
    noisy = np.clip(rgb + rng.normal(0, 10, (500, 3)), 0, 255)
    assert color_name(noisy) == word
    shaded = np.clip(rgb * rng.uniform(0.85, 1.05, (500, 1)), 0, 255)  # soft shading
    assert color_name(shaded) == word


def test_vote_beats_the_mean_on_a_two_colored_object() -> None:
    red, green = np.array(COLOR_WORDS["red"]), np.array(COLOR_WORDS["green"])
    samples = np.vstack([np.tile(red, (60, 1)), np.tile(green, (40, 1))]).astype(np.uint8)
    assert color_name(samples) == "red"
    assert color_name(samples.mean(axis=0, keepdims=True)) != "red"  # the mean is a muddy brown
    votes = color_votes(samples)
    assert votes["red"] == pytest.approx(0.6) and votes["green"] == pytest.approx(0.4)


def test_image_shaped_input_and_errors() -> None:
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 2] = 200  # blue channel
    assert color_name(image) == "blue"
    with pytest.raises(ValueError):
        color_name(np.zeros((0, 3)))
    with pytest.raises(ValueError):
        color_name(np.zeros((5, 4)))
