"""Bad input to the review store: the same answer on SQLite and PostgreSQL, and one clear line for a wrong
database or export path, from the library and from `python -m review` (exit status, one line on stderr,
no traceback, nothing written). PostgreSQL tests run in a schema of their own, dropped afterwards, so
they share the test database with other suites safely."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_schema import private_schema
from sqlalchemy import create_engine, make_url, text
from test_review_data import BACKENDS, PASSWORD, PG_URL, make_records, write_annotations

from review import Database, Edit, ItemKey, ReviewConfig, ReviewError, ReviewService
from review.cli import main
from review.db import normalize_url
from review.records import MAX_LENGTHS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A URL of the test PostgreSQL whose tables live in a fresh schema of their own."""
    with private_schema("t_bad_input") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    return request.getfixturevalue("pg_schema")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m review ARGS` in a child process, run from `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "review", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 1, nothing on stdout, exactly one line on stderr that names the problem."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the same answer on both backends -----------------------------------------------------------------


def _bad_records() -> list[tuple[str, int, dict[str, Any], str]]:
    """(case, record index, field changes, what the error must say); each record alone is invalid."""
    return [
        ("100-character scene id", 0, {"scene_id": "s" * 100}, "`scene_id` is 100 characters long"),
        ("200-character object name", 1, {"object_name": "o" * 200}, "`object_name` is 200 characters long"),
        ("70-digit object id", 2, {"object_id": 10**69}, "`object_id` is 70 characters long"),
        ("129-character source", 3, {"source": "m" * 129}, "`source` is 129 characters long"),
        ("NUL in a description", 4, {"description": "A chair.\x00"}, "`description` holds a NUL character"),
        ("NUL in an extra field", 5, {"claims": [{"text": "red\x00"}]}, "`claims`[0]['text'] holds a NUL"),
        ("NUL in a field name", 6, {"fra\x00me": 1}, "holds a NUL character"),
        (
            "lone surrogate in a text",
            7,
            {"object_name": "ch\ud800air"},
            "`object_name` holds a lone surrogate",
        ),
    ]


def test_values_a_backend_cannot_store_are_refused_on_both_at_import(url: str, tmp_path: Path) -> None:
    service = ReviewService(url, ReviewConfig(double_review_rate=0.0))
    records = make_records(scenes=1)
    for case, index, change, message in _bad_records():
        bad = [dict(r) for r in records]
        bad[index] |= change
        folder = write_annotations(tmp_path / uuid.uuid4().hex, bad)
        with pytest.raises(ReviewError) as error:
            service.import_annotations(folder)
        assert error.value.code == "input", case
        assert str(folder / "densescan.json") in str(error.value) and f"record {index} (" in str(error.value)
        assert message in str(error.value), (case, str(error.value))
        assert service.list_items(limit=10) == [], case  # nothing imported
    service.close()


def test_values_at_the_column_limits_are_kept_exactly_on_both(url: str, tmp_path: Path) -> None:
    records = make_records(scenes=1)
    longest = {name: ("é" * limit) for name, limit in MAX_LENGTHS.items() if name != "scene_id"}
    records[0] |= longest | {"scene_id": "s" * MAX_LENGTHS["scene_id"]}
    records[0]["claims"] = [{"text": "tab\tand \u2028 and \U0001f600 are text"}]
    service = ReviewService(url, ReviewConfig(double_review_rate=0.0))
    report = service.import_annotations(write_annotations(tmp_path / "ann", records))
    assert report.added == len(records)
    key = ItemKey("s" * 64, "object", "é" * 64, "é" * 64)
    item = service.find_item(key)
    assert item is not None and item.object_name == "é" * 128
    out = service.export(tmp_path / "all.json", status="all").path
    exported = {r["scene_id"]: r for r in json.loads(out.read_text(encoding="utf-8"))}
    assert exported["s" * 64]["source"] == "é" * 128
    assert exported["s" * 64]["claims"] == records[0]["claims"]
    service.close()


def test_import_command_names_file_record_and_field(tmp_path: Path) -> None:
    records = make_records(scenes=1)
    records[2]["scene_id"] = "x" * 100
    folder = write_annotations(tmp_path / "ann", records)
    result = run_cli("import", "--annotations", str(folder), "--db", "review.db", "--quiet", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(folder / "densescan.json") in result.stderr and "record 2 (" in result.stderr
    assert "`scene_id` is 100 characters long, more than the store's 64" in result.stderr


def test_deeply_nested_annotation_file_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "ann"
    folder.mkdir()
    (folder / "densescan.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReviewError, match="nested too deeply"):
        ReviewService(tmp_path / "review.db").import_annotations(folder)


def test_decisions_and_drafts_the_store_cannot_keep_are_refused_on_both(url: str, tmp_path: Path) -> None:
    service = ReviewService(url, ReviewConfig(double_review_rate=0.0))
    service.import_annotations(write_annotations(tmp_path / "ann", make_records(scenes=1)))
    service.add_user("alice", PASSWORD)
    item = service.next_item("alice")
    assert item is not None
    attempts = [
        (
            "edit",
            lambda: service.edit_and_approve("alice", item.id, 1, Edit("A red\x00 chair."), "k1"),
            "NUL",
        ),
        ("note", lambda: service.approve("alice", item.id, 1, "k2", note="ok \ud83d"), "lone surrogate"),
        ("key", lambda: service.approve("alice", item.id, 1, "k" * 129), "129 characters long"),
        (
            "draft",
            lambda: service.save_draft("alice", item.id, 1, Edit("half\x00")),
            "`description` holds a NUL",
        ),
        ("undo key", lambda: service.undo("alice", "u" * 200), "200 characters long"),
    ]
    for case, attempt, message in attempts:
        with pytest.raises(ReviewError, match=message):
            attempt()
        detail = service.get_item(item.id, "alice")
        assert (detail.item.head_revision, detail.decisions, detail.draft) == (1, [], None), case
    assert service.approve("alice", item.id, 1, "k" * 128).applied  # the longest key the store keeps
    service.close()


# -- database paths -----------------------------------------------------------------------------------


def _bad_sqlite_paths(tmp_path: Path) -> list[tuple[str, Path, str]]:
    tmp_path.mkdir(exist_ok=True)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(bytes(range(256)) * 40)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    other_program, clash = tmp_path / "other.db", tmp_path / "clash.db"
    for path, table in ((other_program, "bookmarks (url TEXT, title TEXT)"), (clash, "items (name TEXT)")):
        connection = sqlite3.connect(path)
        connection.execute(f"CREATE TABLE {table}")
        connection.commit()
        connection.close()
    return [
        ("garbage", garbage, "not a SQLite database file"),
        ("folder", folder, "is a folder, not a database file"),
        (
            "other program's SQLite file",
            other_program,
            "not a review database: it holds other tables (bookmarks)",
        ),
        (
            "table of ours with other columns",
            clash,
            "not a review database: its table `items` lacks the column(s) id,",
        ),
    ]


def test_bad_sqlite_files_are_refused_and_left_as_they_were(tmp_path: Path) -> None:
    for case, path, message in _bad_sqlite_paths(tmp_path):
        before = files_under(tmp_path)
        for create in (True, False):
            with pytest.raises(ReviewError) as error:
                Database(path, create=create)
            assert str(error.value).startswith(f"{path}: {message}"), case
            assert error.value.code == "input", case
        assert files_under(tmp_path) == before, case  # not switched to WAL, no -wal / -shm files
    with pytest.raises(ReviewError, match="the folder .*missing does not exist"):
        Database(tmp_path / "missing" / "review.db")


@pytest.mark.parametrize("command", ["import", "export", "stats"])
def test_commands_refuse_bad_sqlite_databases_in_one_line(command: str, tmp_path: Path) -> None:
    annotations = write_annotations(tmp_path / "ann", make_records(scenes=1))
    for case, path, message in _bad_sqlite_paths(tmp_path / "databases"):
        args = {
            "import": ["import", "--annotations", str(annotations), "--quiet"],
            "export": ["export", "--out", str(tmp_path / "out.json")],
            "stats": ["stats"],
        }[command]
        before = files_under(tmp_path)
        result = run_cli(*args, "--db", str(path), cwd=tmp_path)
        assert_one_line_error(result, str(path), message)
        assert files_under(tmp_path) == before, case


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("postgresql://u:hunter2@localhost:notaport/db", "not a database URL (invalid literal"),
        ("mysql://u:hunter2@localhost/x", "cannot open the database: No module named"),
        ("sqlite://", "in-memory SQLite is not supported"),
    ],
)
def test_unusable_database_urls_are_one_line_without_the_password(
    db: str, message: str, tmp_path: Path
) -> None:
    line = assert_one_line_error(run_cli("stats", "--db", db, cwd=tmp_path), message)
    assert "hunter2" not in line and files_under(tmp_path) == {}
    with pytest.raises(ReviewError, match=re.escape(message)):
        Database(db)


def test_a_postgresql_server_that_never_answers_is_an_error_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import review.db

    monkeypatch.setattr(review.db, "PG_CONNECT_TIMEOUT_S", 2)  # libpq's smallest
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody ever replies
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            Database(f"postgresql://review:secret@127.0.0.1:{silent.getsockname()[1]}/review")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=connect, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=30)
    silent.close()
    assert not worker.is_alive(), "opening the database hung"
    assert time.monotonic() - started < 15
    assert len(outcome) == 1 and isinstance(outcome[0], ReviewError), outcome
    assert "cannot open the database" in str(outcome[0]) and "timeout" in str(outcome[0])


@pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run")
def test_wrong_postgresql_password_is_one_line_without_the_password(tmp_path: Path) -> None:
    assert PG_URL
    wrong = make_url(PG_URL).set(password="not-the-password-42").render_as_string(hide_password=False)
    with pytest.raises(ReviewError) as error:
        Database(wrong)
    assert error.value.code == "unavailable" and "password authentication failed" in str(error.value)
    assert "not-the-password-42" not in str(error.value) and "\n" not in str(error.value)
    for args in (["stats"], ["export", "--out", "out.json"]):
        line = assert_one_line_error(run_cli(*args, "--db", wrong, cwd=tmp_path), "password authentication")
        assert "not-the-password-42" not in line and line.startswith("error: postgresql://")
    no_database = make_url(PG_URL).set(database="no_such_review_db").render_as_string(hide_password=False)
    assert_one_line_error(
        run_cli("stats", "--db", no_database, cwd=tmp_path), '"no_such_review_db" does not exist'
    )
    assert files_under(tmp_path) == {}


@pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run")
def test_a_postgresql_failure_after_opening_does_not_show_the_password(pg_schema: str) -> None:
    service = ReviewService(f"{pg_schema}%20-clock_timeout%3D200")  # waits for a lock 0.2 s, then fails
    admin = create_engine(service.db.url)
    with admin.begin() as connection:
        connection.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(ReviewError) as error:
            service.add_user("alice", PASSWORD)
    assert error.value.code == "unavailable" and "lock timeout" in str(error.value)
    assert ":***@" in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).split("@")[0] == f"postgresql://{make_url(PG_URL).username}:***"
    service.add_user("alice", PASSWORD)  # the lock is gone: the same request now succeeds
    service.close()
    admin.dispose()


def execute_sql(url: str, statement: str) -> None:
    """Run one statement on the database behind `url`, outside the review store."""
    engine = create_engine(normalize_url(url))
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run")
def test_postgresql_table_of_ours_with_other_columns_is_refused(pg_schema: str, tmp_path: Path) -> None:
    execute_sql(pg_schema, "CREATE TABLE users (login TEXT, secret TEXT)")
    with pytest.raises(ReviewError, match="its table `users` lacks the column"):
        Database(pg_schema)
    line = assert_one_line_error(run_cli("stats", "--db", pg_schema, cwd=tmp_path), "its table `users`")
    assert line.startswith("error: postgresql://") and ":***@" in line


@pytest.mark.skipif(not PG_URL, reason="set REVIEW_TEST_PG_URL to run")
def test_postgresql_database_shared_with_other_tables_is_accepted(pg_schema: str, tmp_path: Path) -> None:
    execute_sql(pg_schema, "CREATE TABLE bookmarks (url TEXT)")
    service = ReviewService(pg_schema)
    assert service.import_annotations(write_annotations(tmp_path / "ann", make_records(scenes=1))).added > 0
    service.close()


# -- export paths -------------------------------------------------------------------------------------


def test_export_to_a_folder_or_under_a_file_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    service = ReviewService(tmp_path / "review.db", ReviewConfig(double_review_rate=0.0))
    service.import_annotations(write_annotations(tmp_path / "ann", make_records(scenes=1)))
    service.close()
    (tmp_path / "existing").mkdir()
    root_before = {p.name for p in Path("/").iterdir()}
    cases = [
        ("existing", "existing: is a folder"),
        ("existing/", "existing/: is a folder"),
        ("not-yet/", "not-yet/: is a folder"),
        ("/", "/: is a folder"),
        ("review.db/out.json", "review.db is a file, not a folder"),
    ]
    for out, message in cases:
        before = files_under(tmp_path)
        result = run_cli("export", "--db", "review.db", "--out", out, cwd=tmp_path)
        assert_one_line_error(result, message)
        assert files_under(tmp_path) == before, out
        assert not (tmp_path / "not-yet").exists()
    assert {p.name for p in Path("/").iterdir()} - root_before == set()  # no temp file in the root
    with pytest.raises(ReviewError, match="is a folder"):
        ReviewService(tmp_path / "review.db").export(tmp_path / "existing")
    ok = run_cli(
        "export", "--db", "review.db", "--out", "new/sub/reviewed.json", "--status", "all", cwd=tmp_path
    )
    assert ok.returncode == 0 and len(json.loads((tmp_path / "new/sub/reviewed.json").read_text())) == 15


def test_a_database_failure_after_opening_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "review.db"
    ReviewService(db).close()

    def broken_stats(self: ReviewService) -> Any:
        with self.db.read() as session:
            return session.execute(text("SELECT * FROM a_table_that_went_away")).all()

    monkeypatch.setattr(ReviewService, "stats", broken_stats)
    assert main(["stats", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {db}: database error: no such table") and err.count("\n") == 1
