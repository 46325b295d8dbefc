"""Who is acting, and what they may do: checked on the server for every callback.

With `--auth` the user is the one Gradio's login cookie names and their role comes from the review
store; an API call without the right role is refused whatever the page shows. Without `--auth` every
request acts as the local user.
"""

from __future__ import annotations

from review import ReviewService, Role, UserView


class AccessDenied(Exception):
    """The request's user may not do this (or is not logged in)."""


def resolve_user(service: ReviewService, username: str | None) -> UserView:
    if not username:
        raise AccessDenied("log in first")
    for user in service.list_users():
        if user.username == username:
            if not user.active:
                raise AccessDenied(f"the account {username!r} is disabled")
            return user
    raise AccessDenied(f"unknown user {username!r}")


def require_role(user: UserView, *roles: Role) -> UserView:
    """The user when their role is one of `roles` (admins may do everything)."""
    if user.role == Role.ADMIN or user.role in roles:
        return user
    allowed = ", ".join(r.value for r in roles) or "admin"
    raise AccessDenied(f"{user.username} ({user.role.value}) may not do this: needs {allowed}")


def ensure_local_user(service: ReviewService, username: str) -> UserView:
    """The user that acts when --auth is off: created as an admin with an unusable random password."""
    import secrets

    for user in service.list_users():
        if user.username == username:
            return user
    return service.add_user(username, secrets.token_urlsafe(24), Role.ADMIN)
