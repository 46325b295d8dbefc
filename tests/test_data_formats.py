"""Benchmark formats: readers, writers, round trips, and errors that name file, record and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.data.densescan import read_densescan, write_densescan
from core.data.errors import DataError
from core.data.llava import read_conversations, write_conversations
from core.data.multi3drefer import read_multi3drefer, write_multi3drefer
from core.data.predictions import (
    CaptionProposal,
    read_answers,
    read_box_sets,
    read_boxes,
    read_proposals,
    read_texts,
    read_vertex_sets,
    write_answers,
    write_box_sets,
    write_boxes,
    write_proposals,
    write_vertex_sets,
)
from core.data.scan2cap import caption_targets
from core.data.scanqa import read_scanqa, write_scanqa
from core.data.scanrefer import (
    read_scanrefer,
    read_unique_multiple_lookup,
    unique_multiple,
    write_scanrefer,
)
from core.data.sqa3d import read_sqa3d, write_sqa3d
from core.scene.labels import LabelMap


def dump(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def refer(scene: str, obj, name: str, ann, text: str = "a thing.", **extra) -> dict:
    return {
        "scene_id": scene,
        "object_id": obj,
        "object_name": name,
        "ann_id": ann,
        "description": text,
        "token": text.replace(".", " .").split(),
        **extra,
    }


# --------------------------------------------------------------------------------------------- ScanRefer


def test_scanrefer_round_trip_keeps_extra_fields(tmp_path: Path) -> None:
    rows = [refer("scene0000_00", "3", "office_chair", "0", color="red"), refer("scene0000_00", 4, "desk", 1)]
    items = read_scanrefer(dump(tmp_path / "sr.json", rows))
    assert items[0].key == "scene0000_00|3|0" and items[0].extra == {"color": "red"}
    assert items[1].object_id == "4" and items[1].ann_id == "1"  # integer ids read as strings
    write_scanrefer(tmp_path / "out.json", items)
    again = json.loads((tmp_path / "out.json").read_text())
    assert again[0] == rows[0] and again[1]["object_id"] == "4"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"description": None}, "description"),
        ({"object_id": 1.5}, "object_id"),
        ({"token": "a b"}, "token"),
        ({"scene_id": ""}, "scene_id"),
    ],
)
def test_scanrefer_errors_name_file_record_and_field(tmp_path: Path, bad: dict, field: str) -> None:
    rows = [refer("scene0000_00", "1", "chair", "0"), {**refer("scene0000_00", "2", "chair", "0"), **bad}]
    with pytest.raises(DataError) as err:
        read_scanrefer(dump(tmp_path / "broken.json", rows))
    assert err.value.index == 1 and err.value.field == field
    assert "broken.json" in str(err.value) and "record 1" in str(err.value) and field in str(err.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_scanrefer(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('[{"scene_id": ')
    with pytest.raises(DataError, match="line 1"):
        read_scanrefer(tmp_path / "bad.json")
    with pytest.raises(DataError, match="list of records"):
        read_scanrefer(dump(tmp_path / "obj.json", {"a": 1}))
    with pytest.raises(DataError, match="record 0"):
        read_scanrefer(dump(tmp_path / "num.json", [3]))


def test_unique_multiple_follows_scanrefer(tmp_path: Path) -> None:
    """Unique: no other object described in the scene has the same ScanRefer class (chair family here:
    chair and office chair are both NYU40 'chair'); classes outside the 17 pool into 'others'."""
    rows = [
        refer("s1", "0", "chair", "0"),
        refer("s1", "0", "chair", "1"),
        refer("s1", "1", "office_chair", "0"),
        refer("s1", "2", "table", "0"),
        refer("s1", "3", "lamp", "0"),
        refer("s1", "4", "plant", "0"),
        refer("s2", "0", "chair", "0"),
    ]
    items = read_scanrefer(dump(tmp_path / "sr.json", rows))
    split = unique_multiple(items, LabelMap.default())
    assert [split[r.key] for r in items] == [
        "multiple",
        "multiple",
        "multiple",
        "unique",
        "multiple",  # lamp and plant are both "others"
        "multiple",
        "unique",
    ]
    lookup = read_unique_multiple_lookup(dump(tmp_path / "lookup.json", {"s1": {"0": 1, "2": 0}}))
    assert lookup == {("s1", "0"): "multiple", ("s1", "2"): "unique"}
    with pytest.raises(DataError, match="0 or 1"):
        read_unique_multiple_lookup(dump(tmp_path / "bad.json", {"s1": {"0": 2}}))


def test_scan2cap_targets_gather_descriptions(tmp_path: Path) -> None:
    rows = [
        refer("s", "1", "chair", "0", "one."),
        refer("s", "2", "desk", "0"),
        refer("s", "1", "chair", "1", "two."),
    ]
    targets = caption_targets(read_scanrefer(dump(tmp_path / "sr.json", rows)))
    assert [t.key for t in targets] == ["s|1", "s|2"]
    assert targets[0].references == ["one.", "two."]


# --------------------------------------------------------------------------------------------- DenseScan


def densescan_rows() -> list[dict]:
    return [
        refer("s", "1", "chair", "0", level="object", status="accepted", confidence=0.9, source="fusion"),
        refer(
            "s",
            "-1",
            "scene",
            "0",
            "a bedroom.",
            level="scene",
            status="flagged",
            confidence=0.4,
            source="llm",
        ),
        {
            **refer("s", "-1", "scene", "1", "where can I sit?"),
            "level": "scenario",
            "status": "accepted",
            "question": "where can I sit?",
            "answer": "on the chair",
            "answer_object_ids": [1],
            "revision": 3,
            "reviewer": "ana",
            "note": "kept",
        },
    ]


def test_densescan_reads_as_scanrefer_and_as_itself(tmp_path: Path) -> None:
    path = dump(tmp_path / "densescan.json", densescan_rows())
    as_refer = read_scanrefer(path)  # a ScanRefer loader reads it unchanged
    assert [r.object_id for r in as_refer] == ["1", "-1", "-1"]
    assert as_refer[0].extra["level"] == "object"
    items = read_densescan(path)
    assert items[2].answer == "on the chair" and items[2].answer_object_ids == [1]
    assert items[2].revision == 3 and items[2].reviewer == "ana" and items[2].extra == {"note": "kept"}
    write_densescan(tmp_path / "out.json", items)
    assert json.loads((tmp_path / "out.json").read_text()) == densescan_rows()
    write_scanrefer(tmp_path / "as_refer.json", as_refer)  # and writes it back unchanged
    assert json.loads((tmp_path / "as_refer.json").read_text()) == densescan_rows()


def test_densescan_rejects_unknown_level(tmp_path: Path) -> None:
    rows = densescan_rows()
    rows[1]["level"] = "room"
    with pytest.raises(DataError, match="level"):
        read_densescan(dump(tmp_path / "d.json", rows))


# ------------------------------------------------------------------------------------------ Multi3DRefer


def multi_row(ann, ids, eval_type, **extra) -> dict:
    return {
        "scene_id": "s",
        "object_name": "chair",
        "ann_id": ann,
        "description": "the chairs.",
        "object_ids": ids,
        "eval_type": eval_type,
        **extra,
    }


def test_multi3drefer_round_trip_and_checks(tmp_path: Path) -> None:
    rows = [
        multi_row(0, [], "zt_w_d", spatial=False),
        multi_row(1, [2, 5], "mt", token=["the", "chairs", "."]),
    ]
    items = read_multi3drefer(dump(tmp_path / "m.json", rows))
    assert [r.key for r in items] == ["s|0", "s|1"] and items[1].object_ids == [2, 5]
    assert items[0].extra == {"spatial": False} and items[1].token == ["the", "chairs", "."]
    write_multi3drefer(tmp_path / "out.json", items)
    assert read_multi3drefer(tmp_path / "out.json")[1].object_ids == [2, 5]
    with pytest.raises(DataError, match="eval_type"):
        read_multi3drefer(dump(tmp_path / "bad.json", [multi_row(0, [1], "zero")]))
    with pytest.raises(DataError, match="contradict"):
        read_multi3drefer(dump(tmp_path / "bad.json", [multi_row(0, [1], "zt_wo_d")]))


# --------------------------------------------------------------------------------------------- QA files


def test_scanqa_round_trip(tmp_path: Path) -> None:
    rows = [
        {
            "question_id": "val-scene0000-0",
            "scene_id": "scene0000_00",
            "question": "What color is the chair?",
            "answers": ["brown", "dark brown"],
            "object_ids": [3],
            "object_names": ["chair"],
        },
        {"question_id": "test-scene0001-0", "scene_id": "scene0001_00", "question": "Where is it?"},
    ]
    items = read_scanqa(dump(tmp_path / "qa.json", rows))
    assert items[0].answers == ["brown", "dark brown"] and items[1].answers == []  # test split: no answers
    write_scanqa(tmp_path / "out.json", items)
    assert json.loads((tmp_path / "out.json").read_text())[0] == rows[0]


def sqa3d_release(tmp_path: Path) -> tuple[Path, Path]:
    questions = {
        "questions": [
            {
                "question_id": 100,
                "scene_id": "s",
                "situation": "I sit on the bed.",
                "alternative_situation": ["The bed is under me."],
                "question": "What is on my left?",
            }
        ]
    }
    annotations = {
        "annotations": [
            {
                "question_id": 100,
                "scene_id": "s",
                "question_type": "N/A",
                "answer_type": "other",
                "answers": [{"answer": "lamp", "answer_confidence": "yes", "answer_id": 1}],
                "position": {"x": 1, "y": 2, "z": 0},
                "rotation": {"_w": 1, "_x": 0, "_y": 0, "_z": 0},
            }
        ]
    }
    q = dump(tmp_path / "v1_balanced_questions_test_scannetv2.json", questions)
    a = dump(tmp_path / "v1_balanced_sqa_annotations_test_scannetv2.json", annotations)
    return q, a


def test_sqa3d_release_pair_from_either_file_and_flat(tmp_path: Path) -> None:
    q, a = sqa3d_release(tmp_path)
    for path in (q, a):
        (item,) = read_sqa3d(path)
        assert item.question_id == "100" and item.answers == ["lamp"] and item.question_type == "what"
        assert item.alternative_situation == ["The bed is under me."] and item.position == {
            "x": 1,
            "y": 2,
            "z": 0,
        }
    write_sqa3d(tmp_path / "flat.json", read_sqa3d(q))
    (flat,) = read_sqa3d(tmp_path / "flat.json")
    assert flat.answers == ["lamp"] and flat.situation == "I sit on the bed."


def test_sqa3d_errors(tmp_path: Path) -> None:
    q, a = sqa3d_release(tmp_path)
    a.unlink()
    with pytest.raises(DataError, match="sqa_annotations"):
        read_sqa3d(q)
    dump(a, {"annotations": []})
    with pytest.raises(DataError, match="no annotation"):
        read_sqa3d(q)


# --------------------------------------------------------------------------------------------- LLaVA


def test_llava_records_json_and_jsonl(tmp_path: Path) -> None:
    rows = [
        {
            "id": "scanrefer_0",
            "video": "scannet/scene0000_00",
            "conversations": [
                {"from": "human", "value": "<image>\nFind the red chair."},
                {"from": "gpt", "value": "<ground>"},
            ],
            "metadata": {"dataset": "scanrefer", "question_type": "grounding"},
            "box": [1, 2, 0.5, 0.6, 0.6, 1.0],
        }
    ]
    items = read_conversations(dump(tmp_path / "train.json", rows))
    assert items[0].scene_id == "scene0000_00" and items[0].conversations[1].text == "<ground>"
    write_conversations(tmp_path / "out.json", items)
    assert json.loads((tmp_path / "out.json").read_text())[0]["box"] == [1.0, 2.0, 0.5, 0.6, 0.6, 1.0]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_conversations(tmp_path / "train.jsonl")[0].metadata["dataset"] == "scanrefer"
    bad = [dict(rows[0], conversations=[{"from": "bot", "value": "x"}])]
    with pytest.raises(DataError, match="conversations"):
        read_conversations(dump(tmp_path / "bad.json", bad))
    with pytest.raises(DataError, match="box"):
        read_conversations(dump(tmp_path / "bad.json", [dict(rows[0], box=[1, 2, 3])]))


# ------------------------------------------------------------------------------------------ predictions


def test_prediction_round_trips(tmp_path: Path) -> None:
    write_answers(tmp_path / "qa.json", {"q1": ["a", "b"], "q2": []})
    assert read_answers(tmp_path / "qa.json") == {"q1": ["a", "b"], "q2": []}
    write_answers(tmp_path / "sqa.json", {"7": ["yes"]}, top10=False)
    assert json.loads((tmp_path / "sqa.json").read_text()) == [{"question_id": "7", "answer": "yes"}]
    assert read_answers(tmp_path / "sqa.json") == {"7": ["yes"]}

    b = np.array([1.0, 2, 3, 0.5, 0.5, 0.5])
    write_boxes(tmp_path / "boxes.json", {"s|1|0": b})
    np.testing.assert_array_equal(read_boxes(tmp_path / "boxes.json")["s|1|0"], b)
    write_box_sets(tmp_path / "sets.json", {"s|0": np.zeros((0, 6)), "s|1": np.stack([b, b])})
    sets = read_box_sets(tmp_path / "sets.json")
    assert sets["s|0"].shape == (0, 6) and sets["s|1"].shape == (2, 6)

    write_vertex_sets(tmp_path / "seg.json", {"s|1|0": np.array([5, 1, 1])})
    assert read_vertex_sets(tmp_path / "seg.json")["s|1|0"].indices.tolist() == [1, 5]
    mask = np.zeros(8, dtype=bool)
    mask[[2, 3]] = True
    write_vertex_sets(tmp_path / "seg.npz", {"s|1|0": mask, "s|2|0": np.array([7])})
    npz = read_vertex_sets(tmp_path / "seg.npz")
    assert npz["s|1|0"].indices.tolist() == [2, 3] and npz["s|1|0"].mask_size == 8
    assert npz["s|2|0"].indices.tolist() == [7] and npz["s|2|0"].mask_size is None

    write_proposals(tmp_path / "cap.json", [CaptionProposal("s", b, "a chair")])
    (p,) = read_proposals(tmp_path / "cap.json")
    assert p.caption == "a chair" and p.box.tolist() == b.tolist()


@pytest.mark.parametrize(
    ("reader", "text", "match"),
    [
        (read_boxes, '{"k": [1, 2, 3]}', "6 finite numbers"),
        (read_boxes, '{"k": [0, 0, 0, -1, 1, 1]}', "non-negative"),
        (read_boxes, '{"k": [0, 0, 0, 1, 1, 1], "k": [0, 0, 0, 1, 1, 1]}', "more than once"),
        (read_box_sets, '{"k": [0, 0, 0, 1, 1, 1]}', "6 finite numbers"),
        (read_vertex_sets, '{"k": [1, 2.5]}', "integer vertex indices"),
        (read_vertex_sets, '{"k": [1, -2]}', "negative"),
        (read_answers, '[{"question_id": "q"}]', "answer_top10"),
        (
            read_answers,
            '[{"question_id": "q", "answer": "a"}, {"question_id": "q", "answer": "b"}]',
            "more than once",
        ),
        (read_texts, '{"k": 3}', "string"),
    ],
)
def test_prediction_errors_name_the_key(tmp_path: Path, reader, text: str, match: str) -> None:
    path = tmp_path / "pred.json"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        reader(path)
    assert "pred.json" in str(err.value)
