"""Password hashing with Argon2id (argon2-cffi): each stored hash carries its own salt and cost parameters.

Hashing is deliberately slow (tens of milliseconds), so callers hash and verify outside database write
transactions, never while holding the write lock.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password")


def burn_verify_time(password: str) -> None:
    """Spend the time of one verification, so an unknown username answers as slowly as a wrong password."""
    verify_password(_dummy_hash(), password)
