"""Import and export: the round trip back into training data (read back by `core.data`), idempotent
re-imports that keep human work, malformed files rejected whole, and the `python -m review` commands."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from test_review_data import BACKENDS, PASSWORD, add_users, database_url, make_records, write_annotations

from core.data.densescan import DenseScanRecord, read_densescan
from core.text import scanrefer_tokens as tokenize
from review import Edit, ItemKey, QueueFilter, ReviewConfig, ReviewError, ReviewService, ReviewStatus
from review.cli import main
from review.schema import Decision, Item, Revision


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, tmp_path)


def key() -> str:
    return uuid.uuid4().hex


def read_export(path: Path) -> list[DenseScanRecord]:
    """Read an export with the training loaders' DenseScan reader (it validates the ScanRefer fields)."""
    records = read_densescan(path)
    for r in records:
        assert r.revision is not None and r.revision >= 1 and r.source and r.confidence is not None
        assert r.review_status != "rejected" and isinstance(r.edited, bool)
        assert set(r.extra) <= {"image"}  # provenance and evidence are typed; only the unknown field stays
    return records


def by_key(records: list[DenseScanRecord]) -> dict[ItemKey, DenseScanRecord]:
    return {ItemKey(r.scene_id, r.level, r.object_id, r.ann_id): r for r in records}


def test_round_trip_import_decide_export_read_back(url: str, tmp_path: Path) -> None:
    service = ReviewService(url, ReviewConfig(double_review_rate=0.0))
    service.import_annotations(write_annotations(tmp_path / "ann", make_records(scenes=2)))
    add_users(service, ["alice", "bob"])
    approved, edited, rejected = [], {}, []
    for i in range(12):
        item = service.next_item("alice")
        if i % 3 == 0:
            service.approve("alice", item.id, item.head_revision, key())
            approved.append(item.key)
        elif i % 3 == 1:
            text = Edit(
                f"A Red, wooden {item.object_name} (it's #{i})!", item.text.question, item.text.answer
            )
            result = service.edit_and_approve("alice", item.id, item.head_revision, text, key())
            service.approve("bob", item.id, result.item.head_revision, key())
            edited[item.key] = text.description
        else:
            service.reject("alice", item.id, item.head_revision, "hallucination", key())
            rejected.append(item.key)
    scenario = service.next_item("bob", QueueFilter(levels=("scenario",)))
    qa = Edit(scenario.text.description, "Where is the lamp?", "on the desk")
    done = service.edit_and_approve("bob", scenario.id, scenario.head_revision, qa, key())
    service.approve("alice", scenario.id, done.item.head_revision, key())

    report = service.export(tmp_path / "export.json")
    records = by_key(read_export(tmp_path / "export.json"))
    assert (
        report.records == len(records) == len(approved) + len(edited) + 1 and report.edited == len(edited) + 1
    )
    assert not set(rejected) & set(records)
    for k, text in edited.items():
        record = records[k]
        assert record.description == text and record.token == tokenize(text)
        assert record.token[:4] == ["a", "red", ",", "wooden"] and "'s" in record.token
        assert record.reviewer == "bob" and record.edited and record.revision == 3
        original = service.get_item(service.find_item(k).id).revisions[0].text.description
        assert record.pipeline_description == original != text
    for k in approved:
        original = service.get_item(service.find_item(k).id).revisions[0].text.description
        assert records[k].description == original and records[k].reviewer == "alice"
        assert records[k].revision == 2 and not records[k].edited and records[k].pipeline_description is None
    object_records = [r for r in records.values() if r.level == "object"]
    assert object_records and all(r.claims for r in object_records)  # the evidence travels through
    qa_record = records[scenario.key]
    assert (qa_record.question, qa_record.answer) == ("Where is the lamp?", "on the desk")
    assert qa_record.answer_object_ids == scenario.answer_object_ids

    everything = by_key(read_export(service.export(tmp_path / "all.json", status="all").path))
    assert len(everything) == len(make_records(scenes=2)) - len(rejected)
    assert {r.review_status for r in everything.values()} == {"approved", "pending"}


def test_reimport_updates_pipeline_fields_and_keeps_human_decisions(url: str, tmp_path: Path) -> None:
    records = make_records(scenes=2)
    service = ReviewService(url, ReviewConfig(double_review_rate=0.0, second_approval=False))
    folder = write_annotations(tmp_path / "ann", records)
    first = service.import_annotations(folder)
    assert first.added == len(records) and first.updated == 0
    again = service.import_annotations(folder)
    assert (again.added, again.updated, again.unchanged, again.conflicts) == (0, 0, len(records), [])

    add_users(service, ["alice"])
    reviewed = service.next_item("alice")
    service.edit_and_approve("alice", reviewed.id, reviewed.head_revision, Edit("A human caption."), key())
    keys = [ItemKey(r["scene_id"], r["level"], r["object_id"], r["ann_id"]) for r in records]
    rerun = copy.deepcopy(records)
    untouched = next(i for i, k in enumerate(keys) if k != reviewed.key and rerun[i]["level"] == "object")
    rerun[untouched]["description"] = "A newer pipeline caption."
    rerun[untouched] |= {"confidence": 0.01, "status": "accepted"}  # accepted but unsure: priority 1
    rerun[keys.index(reviewed.key)]["description"] = "The pipeline changed its mind."
    rerun[keys.index(reviewed.key)]["status"] = "flagged"
    rerun.append({**records[0], "ann_id": "99"})
    dropped = rerun.pop(len(rerun) - 2)
    report = service.import_annotations(write_annotations(tmp_path / "rerun", rerun))

    assert report.added == 1 and report.updated == 2 and report.text_updated == 1 and report.missing == 1
    assert [c.key for c in report.conflicts] == [reviewed.key]
    kept = service.find_item(reviewed.key)
    assert kept.text.description == "A human caption." and kept.review_status == ReviewStatus.APPROVED
    assert kept.pipeline_text.description == "The pipeline changed its mind." and kept.pipeline_changed
    assert kept.pipeline_status == "flagged"
    newer = service.get_item(service.find_item(keys[untouched]).id)
    assert newer.item.text.description == "A newer pipeline caption." and newer.item.priority == 1
    assert [(r.number, r.kind, r.author) for r in newer.revisions] == [
        (1, "pipeline", None),
        (2, "pipeline", None),
    ]
    assert service.find_item(
        ItemKey(dropped["scene_id"], dropped["level"], dropped["object_id"], dropped["ann_id"])
    )


def _malformed(records: list[dict[str, Any]]) -> list[tuple[str, Any, str]]:
    """(name, file content, what the error must say) for each kind of bad input."""
    cases: list[tuple[str, Any, str]] = [
        ("not json", "[{", "not valid JSON"),
        ("not a list", json.dumps({"records": records}), "expected a JSON list"),
        ("nan", json.dumps(records).replace('"confidence": 0.', '"confidence": NaN, "x": 0.', 1), "NaN"),
    ]
    for name, change, message in [
        ("missing scene", {"scene_id": None}, "`scene_id`"),
        ("bad level", {"level": "room"}, "`level` must be one of"),
        ("bad status", {"status": "maybe"}, "`status`"),
        ("confidence out of range", {"confidence": 1.5}, "`confidence`"),
        ("confidence text", {"confidence": "high"}, "`confidence`"),
        ("tokens not a list", {"token": "a chair"}, "`token`"),
        ("empty description", {"description": " "}, "`description`"),
    ]:
        bad = copy.deepcopy(records)
        bad[7].update(change)
        cases.append((name, json.dumps(bad), message))
    scenario = copy.deepcopy(records)
    index = next(i for i, r in enumerate(scenario) if r["level"] == "scenario")
    scenario[index]["answer_object_ids"] = ["1"]
    cases.append(("scenario ids", json.dumps(scenario), "`answer_object_ids`"))
    cases.append(("duplicate", json.dumps([*records, records[3]]), "same item key as record 3"))
    cases.append(("record not an object", json.dumps([*records, 5]), "must be a JSON object"))
    return cases


def test_malformed_files_are_refused_whole_with_the_reason(url: str, tmp_path: Path) -> None:
    records = make_records(scenes=2)
    service = ReviewService(url)
    service.import_annotations(write_annotations(tmp_path / "good", records[:10]))
    for name, content, message in _malformed(records):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        (folder / "densescan.json").write_text(content, encoding="utf-8")
        with pytest.raises(ReviewError) as error:
            service.import_annotations(folder)
        assert error.value.code == "input" and message in str(error.value), name
        assert str(folder / "densescan.json") in str(error.value), name
        assert len(service.list_items(limit=1000)) == 10, name  # nothing partial
    with pytest.raises(ReviewError, match="no annotation file"):
        service.import_annotations(tmp_path / "missing")


def test_an_import_failing_midway_writes_nothing(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import review.importer as importer

    service = ReviewService(url)
    original = importer._add

    def add_then_fail(*args: Any) -> None:
        original(*args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer, "_add", add_then_fail)
    with pytest.raises(RuntimeError):
        service.import_annotations(write_annotations(tmp_path / "ann", make_records()))
    with service.db.read() as session:
        counts = [session.scalar(select(func.count()).select_from(t)) for t in (Item, Revision, Decision)]
    assert counts == [0, 0, 0]


def test_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "review.db")
    folder = write_annotations(tmp_path / "ann", make_records())
    assert (
        main(["import", "--annotations", str(folder), "--db", db, "--quiet", "--double-review-rate", "0"])
        == 0
    )
    assert "45 added" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "alice", "--role", "reviewer", "--password-stdin", "--db", db]) == 0
    assert main(["users", "list", "--db", db]) == 0
    assert "alice" in capsys.readouterr().out and ReviewService(db).login("alice", PASSWORD) is not None

    service = ReviewService(db)
    item = service.next_item("alice")
    service.approve("alice", item.id, item.head_revision, key(), active_seconds=30)
    assert main(["export", "--db", db, "--out", str(tmp_path / "out.json")]) == 0
    assert "wrote 1 records" in capsys.readouterr().out
    assert len(read_export(tmp_path / "out.json")) == 1
    assert main(["stats", "--db", db, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["items"] == 45 and stats["annotators"][0]["name"] == "alice"
    assert main(["stats", "--db", db]) == 0
    assert "alice" in capsys.readouterr().out

    assert main(["stats", "--db", str(tmp_path / "typo.db")]) == 1
    assert "no review database" in capsys.readouterr().err and not (tmp_path / "typo.db").exists()
    (folder / "densescan.json").write_text("[1]")
    assert main(["import", "--annotations", str(folder), "--db", db, "--quiet"]) == 1
    assert "record 0" in capsys.readouterr().err
    help_text = subprocess.run(
        [sys.executable, "-m", "review", "--help"], capture_output=True, text=True, check=True
    )
    assert "export" in help_text.stdout
