"""Many annotators over one PostgreSQL database, served by more than one app process.

A team outgrows one app process before it outgrows the database, so two processes must be able to serve
annotators together. Two tests show that they do:
- the app's review workflow (`app.workflow`) run by annotators in two OS processes, each with its own
  engine, all at once: no item is held by two people at the same time, every decision either process
  reported is stored exactly once, undo brings back the right item, no draft outlives its decision, and
  every item's status follows from its votes;
- two real `python app.py` servers on different ports over one database, driven in headless Chromium:
  the annotators get different items, a draft typed on one server is restored on the other, a decision
  made through one server is undone through the other.

Both run in a private schema of the database named by `REVIEW_TEST_PG_URL` and skip without it.
"""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_schema import PG_URL, drop_schema, fresh_schema_url
from sqlalchemy import select

pytestmark = pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run (a PostgreSQL database)")

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
STEPS = 14  # decisions per annotator in the workflow test
ANNOTATORS_PER_PROCESS = 2


@pytest.fixture()
def schema_url() -> Iterator[str]:
    url, schema = fresh_schema_url("mp")
    try:
        yield url
    finally:
        drop_schema(schema)


# the workflow in two OS processes ------------------------------------------------------------------------


def annotate_in_this_process(url: str, users: list[str], steps: int, seed: int) -> dict:
    """Run in a child process: each user (a thread) takes items, drafts, decides and sometimes undoes.

    Returns what this process saw: the decisions it was told were stored, the undos, and for every item
    the wall-clock interval during which one of its users held it (from after the claim committed until
    before the decision was sent), to be compared with the other process's intervals."""
    from app import workflow
    from review import Edit, ReviewService

    service = ReviewService(url)  # this process's own engine and connections
    log: dict = {"decisions": [], "undos": [], "holds": [], "errors": []}
    lock = threading.Lock()

    def work(user: str, rng: random.Random) -> None:
        screen = workflow.open_next(service, user)
        for step in range(steps):
            if screen.item is None:
                return
            item, shown = screen.item, screen.shown
            held_from = time.time()
            if rng.random() < 0.5:
                workflow.save_draft(service, user, shown, Edit(f"{item.text.description} ({user} {step})"))
            action = rng.choice(["approve", "approve", "reject", "skip"])
            held_until = time.time()
            after = workflow.decide(service, user, shown, action, item.text, reason="other")
            with lock:
                log["holds"].append((item.id, user, held_from, held_until))
                if after.kind != "ok":
                    log["errors"].append((user, item.id, action, after.message))
                    return
                log["decisions"].append((user, item.id, action))
            screen = after
            if step % 3 == 2 and action != "skip":  # undo the vote just made: the item comes back
                screen = workflow.undo(service, user, screen.shown)
                back = screen.item is not None and screen.item.id == item.id
                with lock:
                    # refused only when someone acted on it since (a double-review item's second vote)
                    log["undos"].append((user, item.id, back, screen.message))
                    if back:
                        log["decisions"].remove((user, item.id, action))

    rngs = [random.Random(seed * 100 + i) for i in range(len(users))]
    threads = [threading.Thread(target=work, args=(u, r)) for u, r in zip(users, rngs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    service.close()
    return log


def _overlaps(holds: list[tuple[int, str, float, float]]) -> list[tuple]:
    """Pairs of holds of one item by two people at the same time."""
    by_item: dict[int, list[tuple[str, float, float]]] = {}
    for item_id, user, start, end in holds:
        by_item.setdefault(item_id, []).append((user, start, end))
    return [
        (item_id, a, b)
        for item_id, spans in by_item.items()
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]
    ]


def test_two_processes_share_leases_drafts_undo_and_decisions(schema_url: str, tmp_path: Path) -> None:
    from test_review_data import add_users, make_records, write_annotations

    from review import ReviewConfig, ReviewService
    from review.decisions import active_votes
    from review.policy import resolve_status
    from review.schema import Decision, Draft, Item

    config = ReviewConfig(double_review_rate=0.3)
    service = ReviewService(schema_url, config)
    service.import_annotations(write_annotations(tmp_path / "annotations", make_records(scenes=4)))
    names = [[f"p{p}u{u}" for u in range(ANNOTATORS_PER_PROCESS)] for p in range(2)]
    add_users(service, [n for group in names for n in group])

    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but the database
    with spawn.Pool(2) as pool:
        runs = [
            pool.apply_async(annotate_in_this_process, (schema_url, group, STEPS, i))
            for i, group in enumerate(names)
        ]
        logs = [run.get(timeout=600) for run in runs]

    assert not [e for log in logs for e in log["errors"]], [e for log in logs for e in log["errors"]]
    holds = [h for log in logs for h in log["holds"]]
    assert len({h[0] for h in holds}) > 10
    assert _overlaps(holds) == []  # nobody ever held an item someone else held

    reported = Counter(d for log in logs for d in log["decisions"])
    undos = [u for log in logs for u in log["undos"]]
    done = [item for _, item, back, _ in undos if back]
    assert done and all(back or msg.startswith("Nothing undone") for _, _, back, msg in undos), undos
    with service.db.read() as session:
        stored = Counter(
            (user, item_id, kind)
            for user, item_id, kind in session.execute(
                select(Decision.user_id, Decision.item_id, Decision.kind).where(Decision.undone_at.is_(None))
            ).all()
        )
        users = {u.id: u.username for u in service.list_users()}
        stored = Counter({(users[u], i, k): n for (u, i, k), n in stored.items()})
        assert stored == reported  # every reported decision stored once; nothing else
        processes: dict[int, set[str]] = {}
        for user, item_id, _ in stored:
            processes.setdefault(item_id, set()).add(user[:2])  # "p0" or "p1"
        assert any(len(p) == 2 for p in processes.values())  # both processes voted on the same items
        undone = session.scalars(select(Decision.item_id).where(Decision.undone_at.is_not(None))).all()
        assert sorted(undone) == sorted(done)
        assert session.execute(select(Draft)).first() is None  # every draft went with its decision
        items = list(session.scalars(select(Item)))
        for item in items:
            votes = active_votes(session, item.id)
            expected = resolve_status(votes, item.reviews_required, config.second_approval)
            assert item.review_status == expected.value, item.id
        holders = Counter(item.leased_by for item in items if item.leased_by is not None)
        assert all(n == 1 for n in holders.values())  # one item at a time per person
    service.close()


# two `python app.py` servers -----------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    lines: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def _start(args: list[str], port: int) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-u", "app.py", *args, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(port, process, [])

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return server


def _wait_served(server: Server, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("Running on local URL" in line for line in server.lines):
            return
        if server.process.poll() is not None:
            time.sleep(0.5)
            raise AssertionError("app.py exited:\n" + "\n".join(server.lines))
        time.sleep(0.2)
    raise AssertionError("app.py did not serve in time:\n" + "\n".join(server.lines))


@pytest.fixture()
def two_servers(
    synth_root: Path, schema_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    from app_server import free_port
    from test_app_data import annotated_demo

    from review import ReviewService

    demo_root = annotated_demo(synth_root, tmp_path_factory.mktemp("app"))
    service = ReviewService(schema_url)  # the accounts; the first server imports the annotations
    for name in ("ann1", "ann2"):
        service.add_user(name, PASSWORD, "annotator")
    service.close()
    exports = tmp_path_factory.mktemp("exports")
    common = ["--data", str(synth_root), "--annotations", str(demo_root / "densescan"), "--db", schema_url]
    common += ["--auth", "--export-dir", str(exports), "--no-warm"]  # the review store is under test
    servers = [_start(common, free_port()), _start(common, free_port())]  # at the same moment
    try:
        for server in servers:
            _wait_served(server)
        yield servers
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()


def _login(browser, server: Server, user: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.goto(server.url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#item-header .item-header", timeout=90_000)
    return page


READY = "() => !window.reviewScreen || window.reviewScreen.ready()"


def _press_when_ready(page, key: str) -> None:
    page.wait_for_function(READY, timeout=90_000)
    page.locator("#item-header").click()  # focus outside the text boxes
    page.keyboard.press(key)


def test_two_app_servers_serve_one_database_together(two_servers: list[Server]) -> None:
    from test_app_browser import CHROMIUM, CHROMIUM_ARGS, _browser_or_skip, _item_id, _wait_for_item

    from review import ReviewService

    one, two = two_servers
    for server in two_servers:  # it said what it was doing from the first line, password hidden
        assert server.lines[0].startswith("DenseScan app: starting"), server.lines[:3]
        assert any("opening the review database postgresql://review:***@" in line for line in server.lines)
        assert any(line.startswith("ready after") for line in server.lines)
    assert any("importing" in line for line in one.lines + two.lines)

    sync_playwright = _browser_or_skip()
    service = ReviewService(_db_url(two_servers))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            ann1_on_one = _login(browser, one, "ann1")
            ann2_on_two = _login(browser, two, "ann2")
            first, other = _item_id(ann1_on_one), _item_id(ann2_on_two)
            assert first != other  # leases hold across the processes

            # a draft typed through server one ...
            _press_when_ready(ann1_on_one, "e")
            ann1_on_one.keyboard.press("End")
            ann1_on_one.keyboard.type(" Seen from the door.")
            ann1_on_one.wait_for_function(
                "document.querySelector('#draft-status')?.innerText.includes('draft saved')", timeout=30_000
            )
            typed = ann1_on_one.input_value("#editor textarea")
            # ... is there when the same annotator opens server two: the same item, the draft restored
            ann1_on_two = _login(browser, two, "ann1")
            assert _item_id(ann1_on_two) == first
            ann1_on_two.wait_for_function(
                "document.querySelector('#editor textarea')?.value.includes('Seen from the door.')",
                timeout=30_000,
            )
            assert ann1_on_two.input_value("#editor textarea") == typed

            # saved through server two (edit and approve) ...
            ann1_on_two.wait_for_function(READY, timeout=90_000)
            ann1_on_two.locator("#editor textarea").focus()
            ann1_on_two.keyboard.press("Control+Enter")
            third = _wait_for_item(ann1_on_two, not_id=first, timeout=90_000)
            assert third not in (first, other)
            # ... and undone through server one: the item comes back there, as it was
            _press_when_ready(ann1_on_one, "u")
            ann1_on_one.wait_for_function(
                "document.querySelector('#review-message')?.innerText.includes('Undid')", timeout=90_000
            )
            assert _item_id(ann1_on_one) == first
            restored = service.get_item(first, "ann1")
            assert "Seen from the door." not in restored.item.text.description and restored.draft is None
            assert restored.item.leased_by == "ann1"
            assert service.get_item(third).item.leased_by is None  # one item at a time: let go

            # both decide at once through their servers
            _press_when_ready(ann1_on_one, "a")
            _press_when_ready(ann2_on_two, "r")
            _wait_for_item(ann1_on_one, not_id=first, timeout=90_000)
            _wait_for_item(ann2_on_two, not_id=other, timeout=90_000)
            browser.close()

        mine = service.get_item(first).decisions
        assert [(d.user, d.action.value, d.undone_at is not None) for d in mine] == [
            ("ann1", "edit", True),
            ("ann1", "approve", False),
        ]
        theirs = service.get_item(other).decisions
        assert [(d.user, d.action.value) for d in theirs] == [("ann2", "reject")]
        assert service.get_item(third).decisions == []
    finally:
        service.close()


def _db_url(servers: list[Server]) -> str:
    """The database the servers use, as they were started."""
    args = servers[0].process.args
    return args[args.index("--db") + 1]
