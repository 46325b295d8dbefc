"""Refuse requests that were not meant for this server: DNS rebinding and cross-site calls.

A page on `evil.example` whose name is then rebound to 127.0.0.1 talks to the app same-origin as far as
the browser knows, so CORS does not stop it; only the Host header still shows the name it used. So every
HTTP request and websocket must name a host this server was started for (the bound address and port;
localhost / 127.0.0.1 / ::1 when bound to loopback; any IP address or this machine's name when bound to
all interfaces, since a rebinding page always uses a DNS name; plus `--allowed-host` names for a
reverse proxy), and a state-changing call (any method but GET / HEAD / OPTIONS, and every websocket)
that carries an Origin must come from such a host. Refusals are a 403 with one line saying why.

The middleware also records the client's address for the request (`client_address()`), which the login
check reads to throttle attempts per address.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALL_INTERFACES = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")

_client_address: ContextVar[str | None] = ContextVar("densescan_client_address", default=None)


def client_address() -> str | None:
    """The address of the client whose request is being handled (None outside a request)."""
    return _client_address.get()


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(lower-case host name, port or None) of a Host header value; None when it is malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    name = name.rstrip(".")
    if not (_is_ip(name) or _HOST_NAME.fullmatch(name)):
        return None
    return name, port


def allowed_host_value(value: str) -> str:
    """An `--allowed-host` value (argparse type): "name" or "name:port"; one line when malformed."""
    if _split_host(value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a host name or host:port (like example.org)")
    return value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """Which Host and Origin names a server bound to `bound` answers to."""

    bound: str
    extra: tuple[str, ...] = ()  # `--allowed-host` values: "name" (any port) or "name:port"
    _machine_names: frozenset[str] = field(default_factory=frozenset)
    _extra_names: tuple[tuple[str, int | None], ...] = field(init=False, default=())  # `extra`, parsed once

    def __post_init__(self) -> None:
        parsed = tuple(_split_host(value) for value in self.extra)
        bad = next((v for v, pair in zip(self.extra, parsed, strict=True) if pair is None), None)
        if bad is not None:
            raise ValueError(f"--allowed-host {bad!r} is not a host name or host:port")
        object.__setattr__(self, "_extra_names", parsed)

    @classmethod
    def for_server(cls, bound: str, extra: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server bound to `bound` (checks the `extra` values: one line on a bad one)."""
        names: frozenset[str] = frozenset()
        if bound.strip("[]") in ALL_INTERFACES:
            names = frozenset(n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n)
        return cls(bound.strip("[]").lower(), tuple(extra), names)

    def _allows(self, name: str, port: int | None, server_port: int) -> bool:
        for allowed_name, allowed_port in self._extra_names:
            if name == allowed_name and (allowed_port is None or allowed_port == port):
                return True
        if port != server_port:
            return False
        if self.bound in ALL_INTERFACES:
            return name in LOOPBACK_NAMES or _is_ip(name) or name in self._machine_names
        if self.bound in LOOPBACK_NAMES:
            return name in LOOPBACK_NAMES or name == self.bound
        return name == self.bound

    def allows_host(self, host: str, server_port: int) -> bool:
        """Whether a Host header value names this server (no port: the scheme's default port)."""
        parsed = _split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if port is None and server_port in (80, 443):
            port = server_port
        return self._allows(name, port, server_port)

    def allows_origin(self, origin: str, server_port: int) -> bool:
        """Whether an Origin header value is a page of this server ("null" never is)."""
        try:
            parts = urlsplit(origin.strip())
            name, port = parts.hostname, parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not name:
            return False
        port = port if port is not None else {"http": 80, "https": 443}[parts.scheme]
        return self._allows(name.rstrip("."), port, server_port)

    def describe(self) -> str:
        names = sorted(LOOPBACK_NAMES) if self.bound in LOOPBACK_NAMES else [self.bound or "0.0.0.0"]
        return ", ".join([*names, *self.extra])


class HostGuard:
    """ASGI middleware: refuse (403) requests for a foreign Host or from a foreign Origin."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is not None:
            await self._refuse(scope, send, reason)
            return
        client = scope.get("client")
        token = _client_address.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            _client_address.reset(token)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused, or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        server = scope.get("server") or ("", 0)
        port = int(server[1] or 0)
        host = headers.get("host", "")
        if not self.policy.allows_host(host, port):
            return (
                f"refused: this server does not answer to the host {host!r} (DNS rebinding protection); "
                f"it answers to {self.policy.describe()} on port {port}. Behind a proxy or under another "
                "name, start it with --allowed-host NAME"
            )
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if changes_state and origin is not None and not self.policy.allows_origin(origin, port):
            what = "websocket" if scope["type"] == "websocket" else scope.get("method")
            return (
                f"refused: a {what} request from the page {origin!r}, which is not this app "
                "(cross-site request protection)"
            )
        return None

    @staticmethod
    async def _refuse(scope: Scope, send: Send, reason: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body = (reason + "\n").encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
