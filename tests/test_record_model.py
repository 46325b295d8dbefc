"""One data model: one DenseScan record type from pipeline to review export, one tokenizer, and a typed
scene document whose misspelled or missing keys are errors naming the file and the key."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_app_data import annotated_demo

from app.context import AppContext
from core.annotate import stats
from core.annotate.document import SceneAnnotation, read_annotation
from core.annotate.errors import AnnotateError
from core.annotate.output import merge_records, write_scene
from core.annotate.records import WHY_FIELDS, scene_records
from core.data.densescan import (
    EVIDENCE_FIELDS,
    LEVELS,
    PROVENANCE_FIELDS,
    REVIEW_STATUSES,
    STATUSES,
    DenseScanRecord,
    read_densescan,
)
from core.data.errors import DataError
from core.text import scanrefer_tokens
from review import Edit, QueueFilter, ReviewConfig, ReviewError, ReviewService, ReviewStatus
from review.records import LEVELS as STORE_LEVELS
from review.records import PIPELINE_STATUSES

SENTENCE = "It's the L-shaped desk; it's next to the chair."
SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def demo_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo built over the session's synthetic scenes: a real pipeline run and review database."""
    return annotated_demo(synth_root, tmp_path_factory.mktemp("app"))


def _doc(demo_root: Path, scene_id: str = SCENE) -> Path:
    return demo_root / "densescan" / "scenes" / scene_id / "annotation.json"


def _service(folder: Path, db: Path) -> ReviewService:
    service = ReviewService(f"sqlite:///{db}", ReviewConfig(double_review_rate=0.0, second_approval=False))
    service.import_annotations(folder)
    service.add_user("rita", "correct horse battery", "reviewer")
    return service


# one record type --------------------------------------------------------------------------------------


def test_the_constants_are_defined_once_and_agree_with_the_store() -> None:
    assert STORE_LEVELS == LEVELS == ("object", "frame", "scene", "scenario")
    assert PIPELINE_STATUSES == STATUSES == ("accepted", "flagged", "rejected")
    assert set(REVIEW_STATUSES) == {s.value for s in ReviewStatus}
    assert set(WHY_FIELDS) <= set(EVIDENCE_FIELDS)


def test_pipeline_records_are_fully_typed(demo_root: Path) -> None:
    """Every field the pipeline writes is a field of the record type: nothing is left in `extra`, and every
    token list is core.text's."""
    records = read_densescan(demo_root / "densescan" / "densescan.json")
    assert {r.level for r in records} == set(LEVELS)
    for r in records:
        assert r.extra == {}, (r.key, r.extra)
        assert r.token == scanrefer_tokens(r.description)
        assert r.status in STATUSES and r.confidence is not None and r.source
    objects = [r for r in records if r.level == "object"]
    assert objects and all(r.flag_reasons is not None and r.claims is not None for r in objects)
    assert all(r.views is not None and r.views_requested is not None for r in objects)
    assert all(r.frame_id for r in records if r.level == "frame")


def test_round_trip_pipeline_review_decisions_export(demo_root: Path, tmp_path: Path) -> None:
    """pipeline -> densescan.json -> review import -> decisions -> export -> read_densescan: the export is
    the same record type, with the review's provenance in typed fields and the evidence carried through."""
    pipeline = {r.key + "|" + r.level: r for r in read_densescan(demo_root / "densescan" / "densescan.json")}
    service = _service(demo_root / "densescan", tmp_path / "review.db")
    try:
        approved = service.next_item("rita", QueueFilter(levels=("object",)))
        service.approve("rita", approved.id, approved.head_revision, uuid.uuid4().hex)
        edited = service.next_item("rita", QueueFilter(levels=("object",)))
        service.edit_and_approve("rita", edited.id, edited.head_revision, Edit(SENTENCE), uuid.uuid4().hex)
        gone = service.next_item("rita", QueueFilter(levels=("frame",)))
        service.reject("rita", gone.id, gone.head_revision, "hallucination", uuid.uuid4().hex)
        scenario = service.next_item("rita", QueueFilter(levels=("scenario",)))
        qa = Edit(scenario.text.description, "Where can I sit down?", "on the chair")
        service.edit_and_approve("rita", scenario.id, scenario.head_revision, qa, uuid.uuid4().hex)
        report = service.export(tmp_path / "reviewed.json", status="all")
    finally:
        service.close()

    exported = {r.key + "|" + r.level: r for r in read_densescan(report.path)}
    assert len(exported) == len(pipeline) - 1 and report.edited == 2
    assert all(r.extra == {} for r in exported.values())  # provenance is typed, not in extra
    raw = json.loads(report.path.read_text())
    assert all({"revision", "review_status", "edited"} <= r.keys() for r in raw)
    assert all(set(PROVENANCE_FIELDS) & r.keys() for r in raw)

    def key(item: Any) -> str:
        return f"{item.key.scene_id}|{item.key.object_id}|{item.key.ann_id}|{item.key.level}"

    def of(item: Any) -> tuple[DenseScanRecord, DenseScanRecord]:
        return pipeline[key(item)], exported[key(item)]

    before, after = of(approved)
    assert (after.review_status, after.edited, after.reviewer) == ("approved", False, "rita")
    assert after.revision == 2  # an approval is a revision of its own
    assert after.pipeline_description is None and after.token == before.token
    # unchanged pipeline fields: the export is the pipeline's record plus provenance
    provenance = {name: getattr(after, name) for name in PROVENANCE_FIELDS}
    assert replace(after, **{name: None for name in provenance}) == before

    before, after = of(edited)
    assert (after.description, after.edited) == (SENTENCE, True)
    assert after.pipeline_description == before.description != SENTENCE
    assert after.token == scanrefer_tokens(SENTENCE) and after.revision == 2 and after.reviewer == "rita"
    assert after.claims == before.claims and after.flag_reasons == before.flag_reasons

    before, after = of(scenario)
    assert (after.question, after.answer) == ("Where can I sit down?", "on the chair")
    assert (after.pipeline_question, after.pipeline_answer) == (before.question, before.answer)
    assert after.answer_object_ids == before.answer_object_ids

    assert key(gone) in pipeline and key(gone) not in exported  # rejected items are never exported
    pending = [r for r in exported.values() if r.review_status == "pending"]
    assert pending and all(r.reviewer is None and r.edited is False and r.revision == 1 for r in pending)


# one tokenizer ----------------------------------------------------------------------------------------


def test_the_same_text_has_the_same_tokens_from_the_pipeline_and_from_a_reviewer_edit(
    demo_root: Path, tmp_path: Path
) -> None:
    """The pipeline writes SENTENCE as one object's caption; a reviewer types SENTENCE as another object's
    caption; the export carries identical tokens for both ("it", "'s", never "it's")."""
    doc = read_annotation(_doc(demo_root))
    captioned = [o for o in doc.objects if o.caption]
    assert len(captioned) >= 2
    captioned[0].caption = SENTENCE
    out = tmp_path / "run"
    write_scene(out, SCENE, doc, scene_records(doc), {"scene_id": SCENE})
    assert merge_records(out) > 0
    from_pipeline = next(r for r in read_densescan(out / "densescan.json") if r.description == SENTENCE)
    assert from_pipeline.token == scanrefer_tokens(SENTENCE)
    assert from_pipeline.token[:3] == ["it", "'s", "the"] and "it's" not in from_pipeline.token

    service = _service(out, tmp_path / "review.db")
    try:
        other = service.find_item(_key(service, SCENE, str(captioned[1].object_id)))
        service.edit_and_approve("rita", other.id, other.head_revision, Edit(SENTENCE), uuid.uuid4().hex)
        first = service.find_item(_key(service, SCENE, str(captioned[0].object_id)))
        service.approve("rita", first.id, first.head_revision, uuid.uuid4().hex)
        exported = read_densescan(service.export(tmp_path / "reviewed.json").path)
    finally:
        service.close()
    same = [r for r in exported if r.description == SENTENCE]
    assert len(same) == 2 and {r.edited for r in same} == {True, False}
    assert same[0].token == same[1].token == from_pipeline.token


def _key(service: ReviewService, scene_id: str, object_id: str) -> Any:
    items = service.list_items(QueueFilter(scene_ids=(scene_id,), levels=("object",)), limit=5000)
    return next(i.key for i in items if i.key.object_id == object_id)


# typed fields refuse bad values -----------------------------------------------------------------------


def _pipeline_rows(demo_root: Path) -> list[dict[str, Any]]:
    return json.loads((demo_root / "densescan" / "densescan.json").read_text())


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("flag_reasons", "color_contradicted", "expected a list of strings"),
        ("claims", ["supported"], "expected a list of objects"),
        ("views", -1, "expected a count"),
        ("edited", "yes", "expected true or false"),
        ("review_status", "maybe", "is not one of"),
        ("confidence", 1.5, "0..1"),
    ],
)
def test_a_bad_typed_field_names_the_file_record_and_field(
    demo_root: Path, tmp_path: Path, field: str, value: Any, reason: str
) -> None:
    rows = _pipeline_rows(demo_root)
    index = next(i for i, r in enumerate(rows) if r["level"] == "object")
    rows[index][field] = value
    path = tmp_path / "densescan.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError) as error:
        read_densescan(path)
    assert (error.value.path, error.value.index, error.value.field) == (path, index, field)
    assert reason in str(error.value) and "\n" not in str(error.value)


def test_a_scenario_record_needs_its_question_and_answer(tmp_path: Path) -> None:
    row = {"scene_id": "s", "object_id": "1", "object_name": "chair", "ann_id": "0", "description": "Where?"}
    row |= {"token": ["where", "?"], "level": "scenario", "question": "Where?", "answer_object_ids": [1]}
    with pytest.raises(DataError, match="field 'answer': missing"):
        DenseScanRecord.from_json(row, tmp_path / "d.json", 0)


def test_the_review_import_refuses_malformed_evidence(demo_root: Path, tmp_path: Path) -> None:
    """A string where the flag reasons list belongs would make the reason filter and the why panel disagree:
    the import refuses it, naming the record and the field, and imports nothing."""
    rows = _pipeline_rows(demo_root)
    index = next(i for i, r in enumerate(rows) if r["level"] == "object")
    rows[index]["flag_reasons"] = "color_contradicted"
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "densescan.json").write_text(json.dumps(rows))
    service = ReviewService(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(ReviewError) as error:
            service.import_annotations(folder)
        message = str(error.value)
        assert f"record {index} (" in message and "`flag_reasons` expected a list" in message
        assert service.list_items(limit=10) == []
    finally:
        service.close()


# the typed scene document -----------------------------------------------------------------------------


def test_the_scene_document_round_trips_unchanged(demo_root: Path) -> None:
    for folder in sorted((demo_root / "densescan" / "scenes").iterdir()):
        raw = json.loads((folder / "annotation.json").read_text())
        doc = SceneAnnotation.from_json(raw)
        assert doc.to_json() == raw
        assert SceneAnnotation.from_json(doc.to_json()) == doc


def _break(raw: dict[str, Any], change: str) -> tuple[dict[str, Any], str]:
    """A copy of the document with one key misspelled, missing or of the wrong type; and where the error
    must point."""
    bad = copy.deepcopy(raw)
    i = next(n for n, o in enumerate(bad["objects"]) if o.get("caption"))
    obj = bad["objects"][i]
    if change == "misspelled caption":
        obj["captoin"] = obj.pop("caption")
        return bad, f"objects[{i}]: unknown key 'captoin'"
    if change == "missing status":
        del obj["verification"]["status"]
        return bad, f"objects[{i}].verification: missing key 'status'"
    if change == "misspelled top key":
        bad["narative"] = bad.pop("narrative")
        return bad, "the document: unknown key 'narative'"
    if change == "frame id as a list":
        bad["frames"][0]["object_id"] = [1]
        return bad, "frames[0].object_id: expected int"
    if change == "bad status":
        obj["verification"]["status"] = "fine"
        return bad, f"objects[{i}].verification.status: 'fine' is not one of"
    raise AssertionError(change)


@pytest.mark.parametrize(
    "change",
    ["misspelled caption", "missing status", "misspelled top key", "frame id as a list", "bad status"],
)
def test_a_bad_key_in_annotation_json_is_a_one_line_error_naming_file_and_key(
    demo_root: Path, tmp_path: Path, change: str
) -> None:
    bad, where = _break(json.loads(_doc(demo_root).read_text()), change)
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(AnnotateError) as error:
        read_annotation(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and where in message and "\n" not in message, message


def test_every_reader_of_the_document_goes_through_the_type(demo_root: Path, tmp_path: Path) -> None:
    """The app's context, the stats and the records read the typed document: a misspelled key in the
    verification is an error there too, where it used to read as "no claims" / None."""
    annotations = tmp_path / "densescan"
    (annotations / "scenes" / SCENE).mkdir(parents=True)
    raw = json.loads(_doc(demo_root).read_text())
    good = SceneAnnotation.from_json(raw)
    assert stats.claim_verdicts([good]) and scene_records(good)
    bad = copy.deepcopy(raw)
    obj = next(o for o in bad["objects"] if o.get("caption"))
    obj["verification"]["claim"] = obj["verification"].pop("claims")
    (annotations / "scenes" / SCENE / "annotation.json").write_text(json.dumps(bad))
    service = ReviewService(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(AnnotateError, match="verification: unknown key 'claim'"):
            AppContext(service, None, annotations).object_entry(SCENE, obj["object_id"])
        entry = AppContext(service, None, demo_root / "densescan").object_entry(SCENE, obj["object_id"])
        assert entry is not None and entry.verification is not None and entry.verification.claims
    finally:
        service.close()
