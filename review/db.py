"""Opening the review database: one engine per URL, SQLite set up for many writers, read and write sessions.

SQLite (the default) runs in WAL mode so readers never block the writer, with foreign keys on and a
busy timeout so a second process waits instead of failing. Every write transaction starts with
`BEGIN IMMEDIATE`: it takes the write lock up front, so two transactions can never both read, then
both try to upgrade to a write lock and deadlock (SQLite would fail one of them with "database is
locked"). Writers in the same process also queue on a Python lock (one per database file), which is
fairer and much faster than SQLite's busy handler, which polls with sleeps of up to 100 ms.
PostgreSQL needs none of this: claims and saves lock the item row.

Opening checks what it opens, so that a wrong path or URL is one clear `ReviewError`, never a traceback
or a damaged file: a SQLite path that is a folder, garbage, or another program's database (checked
read-only first: the engine would switch that file to WAL), a PostgreSQL server that refuses the login
or has a table of ours with other columns.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from review.errors import ReviewError
from review.schema import Base

BUSY_TIMEOUT_MS = 30_000
_write_locks: dict[str, threading.Lock] = {}  # one per SQLite URL, shared by every Database of this process
_registry_lock = threading.Lock()
_SCHEMA_LOCK_KEY = 5_305_005  # PostgreSQL advisory lock that serialises concurrent `create_all`
PG_CONNECT_TIMEOUT_S = 10  # an unreachable server is an error after this, not a hang (unless the URL says)


def normalize_url(url: str | Path) -> str:
    """A database URL from what a user typed: a plain path means a SQLite file; PostgreSQL uses psycopg 3."""
    s = str(url)
    if "://" not in s:
        return f"sqlite:///{Path(s).expanduser().resolve()}"
    if s.startswith("postgresql://") or s.startswith("postgres://"):
        return "postgresql+psycopg://" + s.split("://", 1)[1]
    return s


def _redact(url: str) -> str:
    """The URL with any password replaced by ***, even when it does not parse."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def parse_url(url: str | Path) -> URL:
    """The parsed URL (see `normalize_url`), or a `ReviewError` that does not show the password."""
    try:
        return make_url(normalize_url(url))
    except (ArgumentError, ValueError) as exc:
        raise ReviewError(_redact(str(url)), f"not a database URL ({exc})", code="input") from None


def sqlite_file(url: str | Path) -> Path | None:
    """The database file of a SQLite URL (or path); None for other databases and in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def display_url(url: str | Path) -> str:
    """How messages name a database: the SQLite file's path, or the URL as typed without its password."""
    path = sqlite_file(url)
    return str(path) if path is not None else _redact(str(url))


def one_line(exc: BaseException) -> str:
    """The driver's own message of a database error, on one line (psycopg's span several)."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


def check_schema(connection: Connection, where: str, other_tables_allowed: bool) -> None:
    """Refuse a database whose tables are not the review store's: the tables of ours that exist must have
    every column we use; with no table of ours, other tables are refused unless `other_tables_allowed`
    (a PostgreSQL database may be shared with other programs; a SQLite file belongs to one)."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    ours = [table for table in Base.metadata.sorted_tables if table.name in tables]
    if not ours and tables and not other_tables_allowed:
        names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ReviewError(where, f"not a review database: it holds other tables ({names})", code="input")
    for table in ours:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in present]
        if missing:
            names = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
            reason = f"not a review database: its table `{table.name}` lacks the column(s) {names}"
            raise ReviewError(where, reason, code="input")


def check_sqlite_file(path: Path) -> None:
    """Refuse a path that cannot be a review database, reading (never writing) whatever is there."""
    if path.is_dir():
        raise ReviewError(path, "is a folder, not a database file", code="input")
    if not path.parent.is_dir():
        raise ReviewError(path, f"the folder {path.parent} does not exist", code="input")
    if not path.exists():
        return  # a new database
    uri = f"file:{quote(str(path))}?mode=ro"
    probe = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000),
        poolclass=NullPool,
    )
    try:
        with probe.connect() as connection:
            check_schema(connection, str(path), other_tables_allowed=False)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise ReviewError(path, "not a SQLite database file", code="input") from exc
        raise ReviewError(path, f"cannot read the database: {one_line(exc)}", code="input") from exc
    finally:
        probe.dispose()


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
            self.where = display_url(url)
            if self.url.startswith("sqlite"):
                path = sqlite_file(self.url)
                if path is None:
                    raise ReviewError(self.where, "in-memory SQLite is not supported: give a file", "input")
                check_sqlite_file(path)
                self.engine = create_engine(self.url, pool_size=32, max_overflow=32, pool_timeout=60)
                _setup_sqlite(self.engine)
            else:
                given = "connect_timeout" in make_url(self.url).query
                timeout = {} if given else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
                self.engine = create_engine(
                    self.url, pool_size=32, max_overflow=32, pool_pre_ping=True, connect_args=timeout
                )
        except ReviewError:
            raise
        except Exception as exc:  # unknown database, missing driver
            where = _redact(self.url)
            raise ReviewError(where, f"cannot open the database: {one_line(exc)}", code="input") from exc
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else None
        )
        self._write_lock = _process_write_lock(self.url) if self.is_sqlite else None
        try:
            if not self.is_sqlite:
                with self.engine.connect() as connection:
                    check_schema(connection, self.where, other_tables_allowed=True)
            if create:
                self.create_schema()
        except DBAPIError as exc:  # unreachable server, wrong password, no such database, read-only file
            self.engine.dispose()
            reason = f"cannot open the database: {one_line(exc)}"
            raise ReviewError(self.where, reason, code="unavailable") from exc
        except ReviewError:
            self.engine.dispose()
            raise

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
