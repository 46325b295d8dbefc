"""SQA3D: a situation text, a question asked in that situation, and its answer.

The release splits each split into two files joined by `question_id`:
`v1_balanced_questions_<split>_scannetv2.json` (`{"questions": [{question_id, scene_id, situation,
alternative_situation, question}]}`) and `v1_balanced_sqa_annotations_<split>_scannetv2.json`
(`{"annotations": [{question_id, scene_id, question_type ("N/A"), answer_type, answers: [{answer, ...}],
position, rotation}]}`). `read_sqa3d` takes either file and finds its partner beside it; a flat JSON list
of records with `question_id, scene_id, situation, question, answers` (strings) reads too.

The release leaves `question_type` as "N/A": the evaluation types (what / is / how / can / which / other)
come from the question's first characters, as LEO and the 3D-LLM papers after it compute them
(`question_type`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.errors import DataError
from core.data.jsonio import Fields, read_json, read_json_list, records, release_id, write_json

QUESTION_TYPES = ("what", "is", "how", "can", "which", "other")
QUESTION_FIELDS = ("question_id", "scene_id", "situation", "alternative_situation", "question")
ANNOTATION_FIELDS = (
    "question_id",
    "scene_id",
    "question_type",
    "answer_type",
    "answers",
    "position",
    "rotation",
)


def question_type(question: str) -> str:
    """SQA3D's evaluation type: the question starts with what / is / how / can / which, else "other".

    A prefix test on the left-stripped, lower-cased question, as the reference evaluations do (so
    "Isn't ..." counts as "is").
    """
    q = question.lstrip().lower()
    return next((t for t in QUESTION_TYPES[:-1] if q.startswith(t)), "other")


@dataclass
class SQA3DRecord:
    question_id: str
    scene_id: str
    situation: str
    question: str
    answers: list[str]
    alternative_situation: list[str] = field(default_factory=list)
    answer_type: str | None = None
    position: dict | None = None
    rotation: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def question_type(self) -> str:
        return question_type(self.question)

    def to_json(self) -> dict[str, Any]:
        """The flat form (one record per question)."""
        out: dict[str, Any] = {
            "question_id": self.question_id,
            "scene_id": self.scene_id,
            "situation": self.situation,
            "alternative_situation": list(self.alternative_situation),
            "question": self.question,
            "answers": list(self.answers),
        }
        for name in ("answer_type", "position", "rotation"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return {**out, **self.extra}


def _partner(path: Path, own: str, other: str) -> Path:
    partner = path.with_name(path.name.replace(own, other))
    if partner == path or not partner.is_file():
        raise DataError(
            path, f"the matching '{other}' file was not found beside it (expected {partner.name})"
        )
    return partner


def _answers(f: Fields) -> list[str]:
    value = f.record.get("answers")
    if not isinstance(value, list):
        raise f.error("answers", "expected a list")
    out = []
    for a in value:
        text = a.get("answer") if isinstance(a, dict) else a
        if not isinstance(text, str):
            raise f.error("answers", f"expected strings or {{'answer': str}} objects, found {a!r}")
        out.append(text)
    return out


def _read_release(questions_path: Path, annotations_path: Path) -> list[SQA3DRecord]:
    questions, annotations = read_json(questions_path), read_json(annotations_path)
    return parse_sqa3d_release(questions_path, questions, annotations_path, annotations)


def parse_sqa3d_release(
    questions_path: str | Path, questions: Any, annotations_path: str | Path, annotations: Any
) -> list[SQA3DRecord]:
    """Validate the parsed pair of release files (the paths name them in errors) and join them."""
    questions_path, annotations_path = Path(questions_path), Path(annotations_path)
    if not isinstance(questions, dict) or "questions" not in questions:
        raise DataError(questions_path, "expected an object with a 'questions' list")
    if not isinstance(annotations, dict) or "annotations" not in annotations:
        raise DataError(annotations_path, "expected an object with an 'annotations' list")
    by_id: dict[str, Fields] = {}
    for f in records(annotations_path, read_json_list(annotations_path, annotations["annotations"])):
        by_id[f.ident("question_id")] = f
    out = []
    for q in records(questions_path, read_json_list(questions_path, questions["questions"])):
        qid = q.ident("question_id")
        a = by_id.pop(qid, None)
        if a is None:
            raise q.error("question_id", f"{qid} has no annotation in {annotations_path.name}")
        out.append(
            SQA3DRecord(
                question_id=qid,
                scene_id=q.ident("scene_id"),
                situation=q.text("situation"),
                question=q.text("question"),
                answers=_answers(a),
                alternative_situation=q.text_list("alternative_situation", required=False) or [],
                answer_type=a.text("answer_type", required=False),
                position=a.obj("position", required=False),
                rotation=a.obj("rotation", required=False),
                extra=q.extra(QUESTION_FIELDS),
            )
        )
    if by_id:
        first = next(iter(by_id.values()))
        raise first.error("question_id", f"annotation without a question in {questions_path.name}")
    return out


def _read_flat(path: Path, data: list[dict]) -> list[SQA3DRecord]:
    out = []
    for f in records(path, read_json_list(path, data)):
        out.append(
            SQA3DRecord(
                question_id=f.ident("question_id"),
                scene_id=f.ident("scene_id"),
                situation=f.text("situation"),
                question=f.text("question"),
                answers=_answers(f),
                alternative_situation=f.text_list("alternative_situation", required=False) or [],
                answer_type=f.text("answer_type", required=False),
                position=f.obj("position", required=False),
                rotation=f.obj("rotation", required=False),
                extra=f.extra(QUESTION_FIELDS + ANNOTATION_FIELDS),
            )
        )
    return out


def read_sqa3d(path: str | Path) -> list[SQA3DRecord]:
    """Records from the release's questions or annotations file (with its partner), or a flat list."""
    path = Path(path)
    data = read_json(path)
    if isinstance(data, list):
        return _read_flat(path, data)
    if isinstance(data, dict) and "questions" in data:
        return _read_release(path, _partner(path, "questions", "sqa_annotations"))
    if isinstance(data, dict) and "annotations" in data:
        return _read_release(_partner(path, "sqa_annotations", "questions"), path)
    raise DataError(
        path, "expected a list of records, or the release's {'questions': ...} / {'annotations': ...}"
    )


def write_sqa3d(path: str | Path, items: list[SQA3DRecord]) -> Path:
    """Write the flat form (one list of records; `write_sqa3d_release` writes the release's pair)."""
    return write_json(path, [r.to_json() for r in items])


def write_sqa3d_release(
    questions_path: str | Path, annotations_path: str | Path, items: list[SQA3DRecord]
) -> tuple[Path, Path]:
    """Write the release's two files (the inverse of reading them): questions with their situations, and
    annotations with `question_type` "N/A", each answer as {answer, answer_confidence "yes", answer_id}."""
    questions, annotations = [], []
    for r in items:
        qid = release_id(r.question_id)
        questions.append(
            {
                "question_id": qid,
                "scene_id": r.scene_id,
                "situation": r.situation,
                "alternative_situation": list(r.alternative_situation),
                "question": r.question,
                **r.extra,
            }
        )
        annotation: dict[str, Any] = {"question_id": qid, "scene_id": r.scene_id, "question_type": "N/A"}
        if r.answer_type is not None:
            annotation["answer_type"] = r.answer_type
        annotation["answers"] = [
            {"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(r.answers)
        ]
        for name in ("position", "rotation"):
            if getattr(r, name) is not None:
                annotation[name] = getattr(r, name)
        annotations.append(annotation)
    return (
        write_json(questions_path, {"questions": questions}),
        write_json(annotations_path, {"annotations": annotations}),
    )
