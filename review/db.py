"""Opening the review database: one engine per URL, SQLite set up for many writers, read and write sessions.

SQLite (the default) runs in WAL mode so readers never block the writer, with foreign keys on and a
busy timeout so a second process waits instead of failing. Every write transaction starts with
`BEGIN IMMEDIATE`: it takes the write lock up front, so two transactions can never both read, then
both try to upgrade to a write lock and deadlock (SQLite would fail one of them with "database is
locked"). Writers in the same process also queue on a Python lock (one per database file), which is
fairer and much faster than SQLite's busy handler, which polls with sleeps of up to 100 ms.
PostgreSQL needs none of this: claims and saves lock the item row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session

from review.errors import ReviewError
from review.schema import Base

BUSY_TIMEOUT_MS = 30_000
_write_locks: dict[str, threading.Lock] = {}  # one per SQLite URL, shared by every Database of this process
_registry_lock = threading.Lock()
_SCHEMA_LOCK_KEY = 5_305_005  # PostgreSQL advisory lock that serialises concurrent `create_all`


def normalize_url(url: str | Path) -> str:
    """A database URL from what a user typed: a plain path means a SQLite file; PostgreSQL uses psycopg 3."""
    s = str(url)
    if "://" not in s:
        return f"sqlite:///{Path(s).expanduser().resolve()}"
    if s.startswith("postgresql://") or s.startswith("postgres://"):
        return "postgresql+psycopg://" + s.split("://", 1)[1]
    return s


def sqlite_file(url: str | Path) -> Path | None:
    """The database file of a SQLite URL (or path); None for other databases and in-memory SQLite."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not emit its own BEGIN: we do, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _process_write_lock(url: str) -> threading.Lock:
    with _registry_lock:
        return _write_locks.setdefault(url, threading.Lock())


class Database:
    """The engine for one review database and its `read()` / `write()` transactions."""

    def __init__(self, url: str | Path, *, create: bool = True):
        self.url = normalize_url(url)
        try:
            if self.url.startswith("sqlite"):
                self.engine = create_engine(self.url, pool_size=32, max_overflow=32, pool_timeout=60)
                _setup_sqlite(self.engine)
            else:
                self.engine = create_engine(self.url, pool_size=32, max_overflow=32, pool_pre_ping=True)
        except Exception as exc:  # bad URL, missing driver
            raise ReviewError(self.url, f"cannot open the database: {exc}", code="input") from exc
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else None
        )
        self._write_lock = _process_write_lock(self.url) if self.is_sqlite else None
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        """Create missing tables; safe when several processes open a new database at once."""
        with self.write() as session:
            if not self.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            Base.metadata.create_all(session.connection())

    def drop_schema(self) -> None:
        """Remove every table of the review store (tests use this to start from an empty PostgreSQL)."""
        with self.write() as session:
            Base.metadata.drop_all(session.connection())

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: one consistent snapshot, never blocks writers."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends and rolled back on any exception."""
        lock = self._write_lock or nullcontext()
        bind = self._write_engine or self.engine
        with lock, Session(bind, expire_on_commit=False) as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
