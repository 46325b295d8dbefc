"""Many annotators at once, and a writer killed mid-write: no item leased twice, no revision lost, every
conflicting save refused, and the database consistent afterwards. Real threads, processes and files."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from test_review_data import BACKENDS, add_users, database_url, loaded_service

from review import Database, Edit, ReviewConfig, ReviewError, ReviewService
from review.decisions import active_votes
from review.policy import resolve_status
from review.schema import Assignment, Decision, Item, Revision

REPO = Path(__file__).resolve().parents[1]
CONFIG = ReviewConfig(double_review_rate=0.2)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, tmp_path)


def annotate(url: str, user: str, seconds: float, seed: int, at_least: int = 5) -> dict[str, Any]:
    """One simulated annotator: claim, then approve / edit / reject / skip, sometimes undo, until time is up
    and it has made `at_least` decisions (so that a slow machine still overlaps enough work).

    Every request it makes is about an item it holds the lease on, so with correct leasing it must never
    meet a conflicting save or someone else's lease: any such refusal is recorded as a problem.
    """
    service = ReviewService(url, CONFIG)
    rng = random.Random(seed)
    applied: list[int] = []
    problems: list[str] = []
    claims = undone = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(applied) < at_least:
        item = service.next_item(user)
        if item is None:
            break
        claims += 1
        roll, base = rng.random(), item.head_revision
        try:
            if roll < 0.4:
                result = service.approve(
                    user, item.id, base, uuid.uuid4().hex, active_seconds=rng.uniform(2, 20)
                )
            elif roll < 0.7:
                note = f" (checked by {user} #{rng.randrange(10**6)})"
                edit = Edit(item.text.description + note, item.text.question, item.text.answer)
                service.save_draft(user, item.id, base, edit)
                result = service.edit_and_approve(user, item.id, base, edit, uuid.uuid4().hex)
            elif roll < 0.85:
                result = service.reject(user, item.id, base, "wrong_relation", uuid.uuid4().hex)
            else:
                result = service.skip(user, item.id, uuid.uuid4().hex)
        except ReviewError as exc:
            problems.append(f"{user}: {exc}")
            continue
        if not result.applied:
            problems.append(f"{user}: conflict on a leased item: {result.conflict.message}")
            continue
        applied.append(result.decision.id)
        if rng.random() < 0.05:
            try:
                service.undo(user, uuid.uuid4().hex)
                undone += 1
            except ReviewError:
                pass  # someone acted on the item in between: refusing is right
    return {"claims": claims, "applied": applied, "problems": problems, "undone": undone}


def check_consistent(url: str, config: ReviewConfig = CONFIG) -> dict[str, int]:
    """Every invariant a crash or a race could break; returns counts for the caller's own checks."""
    db = Database(url)
    with db.read() as session:
        if db.is_sqlite:
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert session.execute(text("PRAGMA foreign_key_check")).all() == []
        revisions: dict[int, list[Revision]] = {}
        for rev in session.scalars(select(Revision).order_by(Revision.item_id, Revision.number)):
            revisions.setdefault(rev.item_id, []).append(rev)
        decisions = session.scalars(select(Decision).order_by(Decision.id)).all()
        by_number = {(r.item_id, r.number): r for revs in revisions.values() for r in revs}
        for item in session.scalars(select(Item)):
            chain = revisions[item.id]
            assert [r.number for r in chain] == list(range(1, item.last_revision + 1)), item.id
            assert [r.parent_number for r in chain] == [None, *range(1, item.last_revision)], item.id
            assert item.head_revision == item.last_revision
            assert chain[-1].review_status == item.review_status, item.id
            votes = active_votes(session, item.id)
            assert resolve_status(votes, item.reviews_required, config.second_approval) == item.review_status
            if item.leased_by is not None:
                lease = session.get(Assignment, item.assignment_id)
                assert lease is not None and lease.user_id == item.leased_by and lease.ended_at is None
        for d in decisions:
            if d.kind != "skip":
                made = by_number[(d.item_id, d.revision_number)]
                assert (
                    made.kind == d.kind
                    and made.author_id == d.user_id
                    and d.base_revision == made.parent_number
                )
        open_leases = session.execute(
            select(Assignment.item_id, func.count())
            .where(Assignment.ended_at.is_(None))
            .group_by(Assignment.item_id)
        ).all()
        assert all(n == 1 for _, n in open_leases), "an item with two open leases"
        held = session.execute(
            select(Item.leased_by, func.count()).where(Item.leased_by.is_not(None)).group_by(Item.leased_by)
        ).all()
        assert all(n == 1 for _, n in held), "a user holding two leases"
        counts = {"decisions": len(decisions), "revisions": len(by_number)}
    db.close()
    return counts


def _check_run(url: str, results: list[dict[str, Any]]) -> None:
    problems = [p for r in results for p in r["problems"]]
    assert problems == []
    applied = [d for r in results for d in r["applied"]]
    assert len(applied) == len(set(applied)) > 20  # enough work overlapped to mean something
    counts = check_consistent(url)
    assert counts["decisions"] == len(applied)  # every applied decision is there, and nothing else


def test_many_threads_claim_and_save_at_once(url: str, tmp_path: Path) -> None:
    service = loaded_service(url, tmp_path, CONFIG, scenes=25)
    users = [f"user{i}" for i in range(12)]
    add_users(service, users)
    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(lambda i: annotate(url, users[i], 2.0, i), range(len(users))))
    _check_run(url, results)


def _process_worker(url: str, users: list[str], seconds: float, seed: int) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(len(users)) as pool:
        return list(pool.map(lambda i: annotate(url, users[i], seconds, seed * 100 + i), range(len(users))))


def test_several_processes_claim_and_save_at_once(url: str, tmp_path: Path) -> None:
    service = loaded_service(url, tmp_path, CONFIG, scenes=25)
    groups = [[f"p{p}u{u}" for u in range(3)] for p in range(3)]
    add_users(service, [u for g in groups for u in g])
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no engine inherited across fork
    with ProcessPoolExecutor(len(groups), mp_context=spawn) as pool:
        futures = [pool.submit(_process_worker, url, g, 2.0, p) for p, g in enumerate(groups)]
        results = [r for f in futures for r in f.result(timeout=120)]
    _check_run(url, results)


def test_conflicting_saves_all_but_one_are_refused(url: str, tmp_path: Path) -> None:
    config = ReviewConfig(double_review_rate=0.0, second_approval=False)
    service = loaded_service(url, tmp_path, config)
    users = [f"user{i}" for i in range(8)]
    add_users(service, users)
    for item in service.list_items(limit=3):  # nobody leased these: they all open the same revision
        barrier = threading.Barrier(len(users))

        def save(user: str, item=item, barrier=barrier):
            barrier.wait()
            edit = Edit(f"{user} was here.")
            return service.edit_and_approve(user, item.id, item.head_revision, edit, uuid.uuid4().hex)

        with ThreadPoolExecutor(len(users)) as pool:
            results = list(pool.map(save, users))
        winners = [r for r in results if r.applied]
        assert len(winners) == 1
        winner = winners[0].decision.user
        for refused in (r for r in results if not r.applied):
            assert refused.conflict.head.author == winner
            assert refused.conflict.head.text.description == f"{winner} was here."
        assert service.get_item(item.id).item.text.description == f"{winner} was here."
    check_consistent(url, config)


def test_a_double_click_on_next_leases_one_item(url: str, tmp_path: Path) -> None:
    service = loaded_service(url, tmp_path, CONFIG)
    add_users(service, ["alice"])
    barrier = threading.Barrier(8)

    def click(_: int) -> int:
        barrier.wait()
        return service.next_item("alice").id

    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(click, range(8)))) == 1
    assert sum(item.leased_by == "alice" for item in service.list_items(limit=1000)) == 1
    check_consistent(url)


WRITER = """
import random, sys, uuid
from review import Edit, ReviewConfig, ReviewError, ReviewService
service = ReviewService(sys.argv[1], ReviewConfig(double_review_rate=0.2))
rng = random.Random(int(sys.argv[3]))
user = sys.argv[2]
while True:
    item = service.next_item(user)
    if item is None:
        break
    base = item.head_revision
    if rng.random() < 0.5:
        edit = Edit(item.text.description + " (fixed)", item.text.question, item.text.answer)
        service.edit_and_approve(user, item.id, base, edit, uuid.uuid4().hex)
    else:
        service.reject(user, item.id, base, "other", uuid.uuid4().hex)
    if rng.random() < 0.3:
        try:
            service.undo(user, uuid.uuid4().hex)
        except ReviewError:
            pass  # the other writer took the item in between
    print("ok", flush=True)
"""


def test_a_writer_killed_mid_write_leaves_a_consistent_database(url: str, tmp_path: Path) -> None:
    service = loaded_service(url, tmp_path, CONFIG, scenes=25)
    add_users(service, ["crash0", "crash1"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(0)
    for round_ in range(2):
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, f"crash{i}", str(round_ * 10 + i)],
                stdout=subprocess.PIPE,
                env=env,
            )
            for i in range(2)
        ]
        for w in writers:
            assert w.stdout is not None and w.stdout.readline() == b"ok\n"  # writing in earnest
        time.sleep(rng.uniform(0.1, 0.5))
        for w in writers:
            w.send_signal(signal.SIGKILL)
            w.wait()
        counts = check_consistent(url)
        assert counts["decisions"] > 0
