"""Test data for the review store: realistic DenseScan records, annotation folders and databases.

The other `test_review_*` modules import these helpers; the tests at the bottom check the generator
itself, so that a broken fixture fails here rather than somewhere confusing.
"""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from review import Database, ReviewConfig, ReviewService, passwords
from review.records import LEVELS, PIPELINE_STATUSES, parse_record, record_key

# The store hashes passwords with Argon2's default cost (~0.1 s each, on purpose). The tests add dozens of
# users, so they swap in the same algorithm at a trivial cost; the hashes stay real Argon2id hashes.
passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

PG_URL = os.environ.get("REVIEW_TEST_PG_URL")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run")),
]
PASSWORD = "correct horse battery"

CATEGORIES = ["chair", "table", "bed", "sofa", "lamp", "cabinet", "door", "window", "pillow", "monitor"]
COLORS = ["brown", "white", "black", "grey", "blue", "red", "beige"]
MATERIALS = ["wooden", "metal", "fabric", "leather", "plastic"]
RELATIONS = ["next to", "in front of", "behind", "to the left of", "to the right of", "under"]
ROOMS = ["bedroom", "living room", "office", "kitchen"]


def _status(rng: random.Random) -> tuple[str, float]:
    status = rng.choices(PIPELINE_STATUSES, weights=(6, 3, 1))[0]
    low, high = {"accepted": (0.6, 1.0), "flagged": (0.3, 0.7), "rejected": (0.0, 0.4)}[status]
    return status, round(rng.uniform(low, high), 3)


def _claims(rng: random.Random, name: str, color: str, other: str, relation: str) -> list[dict[str, str]]:
    verdicts = ["supported", "contradicted", "unverifiable"]
    return [
        {"text": f"the {name} is {color}", "kind": "attribute", "verdict": rng.choice(verdicts)},
        {
            "text": f"the {name} is {relation} the {other}",
            "kind": "relation",
            "verdict": rng.choice(verdicts),
        },
    ]


def make_records(scenes: int = 3, objects_per_scene: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """DenseScan records as the pipeline writes them: object captions, frame descriptions, one scene
    narrative and scenario questions per scene, with claims, frame ids and image paths as extra fields."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []

    def add(
        scene_id: str, level: str, object_id: str, name: str, ann_id: str, text: str, **more: Any
    ) -> None:
        status, confidence = _status(rng)
        words = text.lower().replace(".", " .").replace(",", " ,").split()
        source = rng.choice(["dense3d-small", "llava-captioner", "template"])
        record = {"scene_id": scene_id, "object_id": object_id, "object_name": name, "ann_id": ann_id}
        record |= {"description": text, "token": words, "level": level, "status": status}
        records.append(record | {"confidence": confidence, "source": source} | more)

    for s in range(scenes):
        scene_id = f"scene{s:04d}_00"
        objects = [(str(i), rng.choice(CATEGORIES)) for i in range(objects_per_scene)]
        for object_id, name in objects:
            other = rng.choice(objects)[1]
            for ann in range(2):
                color, material, relation = rng.choice(COLORS), rng.choice(MATERIALS), rng.choice(RELATIONS)
                text = f"This is a {color} {material} {name}. It is {relation} the {other}."
                claims = _claims(rng, name, color, other, relation)
                add(scene_id, "object", object_id, name, str(ann), text, claims=claims)
        for f in range(2):
            object_id, name = rng.choice(objects)
            text = f"A view of the {name} with a {rng.choice(COLORS)} {rng.choice(objects)[1]} beside it."
            image = f"frames/{scene_id}/{f * 20:05d}.jpg"
            add(scene_id, "frame", object_id, name, str(f), text, frame_id=f * 20, image=image)
        room = rng.choice(ROOMS)
        add(scene_id, "scene", "-1", "scene", "0", f"A {room} with " + ", ".join(n for _, n in objects) + ".")
        for q in range(2):
            (a_id, a_name), (b_id, b_name) = rng.sample(objects, 2)
            question = f"I am sitting on the {b_name}. What is closest to me?"
            text = f"Which object is closer to the {b_name}?"
            qa = {"question": question, "answer": f"the {a_name}", "answer_object_ids": [int(a_id)]}
            add(scene_id, "scenario", a_id, a_name, str(q), text, **qa)
    return records


def write_annotations(folder: Path, records: list[Any]) -> Path:
    """An annotation folder like the pipeline's: densescan.json plus per-scene documents (ignored)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "densescan.json").write_text(json.dumps(records), encoding="utf-8")
    (folder / "scenes").mkdir(exist_ok=True)
    (folder / "scenes" / "scene0000_00.json").write_text("{}", encoding="utf-8")
    return folder


def database_url(backend: str, tmp_path: Path) -> str:
    """A fresh, empty database of the backend: a SQLite file, or the test PostgreSQL with its tables reset."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    assert PG_URL
    db = Database(PG_URL, create=False)
    db.drop_schema()
    db.create_schema()
    db.close()
    return PG_URL


def add_users(service: ReviewService, names: list[str], role: str = "annotator") -> None:
    """Add users in parallel (the password hash is deliberately slow)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: service.add_user(name, PASSWORD, role), names))


def loaded_service(
    url: str, tmp_path: Path, config: ReviewConfig | None = None, **record_args: Any
) -> ReviewService:
    """A service on `url` with the generated records imported."""
    service = ReviewService(url, config or ReviewConfig(double_review_rate=0.0))
    service.import_annotations(write_annotations(tmp_path / "annotations", make_records(**record_args)))
    return service


def test_generated_records_are_valid_and_cover_every_level_and_status() -> None:
    records = make_records(scenes=4)
    parsed = [parse_record(r) for r in records]
    assert {p.level for p in parsed} == set(LEVELS)
    assert {p.status for p in parsed} == set(PIPELINE_STATUSES)
    assert len({record_key(p) for p in parsed}) == len(parsed)
    # the pipeline's evidence is typed on the one record type; unknown fields stay in `extra`
    assert any(p.claims for p in parsed) and any(p.frame_id == "20" for p in parsed)
    assert any("image" in p.extra for p in parsed) and not any("claims" in p.extra for p in parsed)


def test_generator_is_deterministic() -> None:
    assert make_records(seed=3) == make_records(seed=3)
    assert make_records(seed=3) != make_records(seed=4)
