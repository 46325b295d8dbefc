"""Users and roles: adding, listing, finding by name, and checking a password."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review.errors import ReviewError
from review.schema import User
from review.views import Role

MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def check_new_user(username: str, password: str, role: str) -> Role:
    """Validate a new account's fields before any slow hashing or database work."""
    if not _USERNAME.fullmatch(username):
        raise ReviewError(username, "a username is 1-64 letters, digits or _ . @ -", code="invalid")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ReviewError(username, f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ReviewError(username, f"unknown role {role!r} (one of {roles})") from None


def add_user(session: Session, username: str, password_hash: str, role: Role, now: datetime) -> User:
    if session.scalars(select(User.id).where(User.username == username)).first() is not None:
        raise ReviewError(username, "this username exists already", code="conflict")
    user = User(username=username, role=role.value, password_hash=password_hash, active=True, created_at=now)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User:
    """The active user with this name, or a ReviewError saying why there is none."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise ReviewError(username, "no such user", code="not_found")
    if not user.active:
        raise ReviewError(username, "this account is disabled", code="forbidden")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))
