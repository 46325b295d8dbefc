"""A private PostgreSQL schema per test: several people (and test runs) share the one test database named by
`REVIEW_TEST_PG_URL`, so a test that resets tables in the public schema would wipe someone else's run.

`fresh_schema_url` creates an empty schema with a random name and returns the database URL whose
connections use it (`search_path`); `drop_schema` removes it with everything in it; `private_schema`
does both around a `with` block (what a fixture yields).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from sqlalchemy import create_engine, text

from review.db import normalize_url

PG_URL = os.environ.get("REVIEW_TEST_PG_URL")


def fresh_schema_url(prefix: str = "t") -> tuple[str, str]:
    """(URL with a new, empty schema first on its search_path, the schema's name)."""
    assert PG_URL, "set REVIEW_TEST_PG_URL"
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}", schema


def drop_schema(schema: str) -> None:
    assert PG_URL
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@contextmanager
def private_schema(prefix: str = "t") -> Iterator[str]:
    """The URL of a fresh schema (see `fresh_schema_url`), dropped when the block ends."""
    url, schema = fresh_schema_url(prefix)
    try:
        yield url
    finally:
        drop_schema(schema)
