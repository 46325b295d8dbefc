"""`python app.py` refuses a wrong database or data folder in one line, before building anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_a_garbage_database_is_one_line_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "review.db"
    db.write_text("not a database\n")
    result = _run("--data", str(tmp_path), "--db", str(db), "--port", "1")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [f"error: {db}: not a SQLite database file"], result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_text() == "not a database\n"  # left as it was


def test_a_missing_data_folder_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = _run("--data", str(missing))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --data {missing}: no such folder"
