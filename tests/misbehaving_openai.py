"""A misbehaving OpenAI-compatible chat server on 127.0.0.1, for the captioner tests.

Real clients meet servers that answer `content: null`, a list of content parts, a caption cut short at
`max_tokens`, a filtered or empty reply, 429 with a Retry-After, a body trickled a byte at a time, or no
answer at all. This server does each of these on demand, on a real socket (a threaded `http.server`, so a
trickle or a hang is a real slow peer, not a mock), and records every request it was sent.

    with MisbehavingServer() as server:
        server.set("length", bad_first=2)   # two truncated replies, then healthy ones
        OpenAICaptioner(server.url, "any").caption(...)
        server.requests                      # how many chat requests arrived
"""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("healthy", "null", "parts", "length", "filter", "empty", "ratelimit", "trickle", "hang")
CAPTION = "A plain wooden chair beside the table."


def completion(content: Any, finish_reason: str | None = "stop") -> dict[str, Any]:
    """A chat completion body as OpenAI-compatible servers send it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "misbehaving",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
    }


# the 200 replies of the modes that answer at once with something that is not a whole caption
BAD_REPLIES: dict[str, dict[str, Any]] = {
    "null": completion(None),
    "parts": completion([{"type": "text", "text": "a chair"}]),
    "length": completion("a brown wood", finish_reason="length"),
    "filter": completion("", finish_reason="content_filter"),
    "empty": completion("  \n"),
}


class MisbehavingServer:
    """Serves `POST /v1/chat/completions` in one of `MODES`; `url` is the base URL a client takes."""

    def __init__(self) -> None:
        self.mode = "healthy"
        self.bad_first: int | None = None  # misbehave for this many requests, then be healthy; None: always
        self.retry_after = "1"  # the Retry-After header of mode `ratelimit` (seconds or an HTTP-date)
        self.trickle_interval = 1.0  # seconds between the bytes of mode `trickle`
        self.arrivals: list[float] = []  # time.time() of each chat request, in order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def set(
        self, mode: str, bad_first: int | None = None, retry_after: str = "1", trickle_interval: float = 1.0
    ) -> None:
        """Misbehave as `mode` from now on (for the next `bad_first` requests only, when given)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        with self._lock:
            self.mode, self.bad_first, self.retry_after = mode, bad_first, retry_after
            self.trickle_interval = trickle_interval
            self.arrivals.clear()

    def _arrive(self) -> str:
        """Count a request; the mode it is answered in."""
        with self._lock:
            self.arrivals.append(time.time())
            if self.bad_first is not None and len(self.arrivals) > self.bad_first:
                return "healthy"
            return self.mode

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # releases hanging and trickling handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler(server: MisbehavingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as vLLM and every real server speak it

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/chat/completions" or not isinstance(body.get("messages"), list):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            mode = server._arrive()
            if mode == "hang":
                server._stop.wait()
                self.close_connection = True
            elif mode == "ratelimit":
                error = {"error": {"message": "rate limited", "type": "rate_limit_exceeded"}}
                self._send(429, error, {"Retry-After": server.retry_after})
            elif mode == "trickle":
                self._trickle(json.dumps(completion(CAPTION)).encode())
            else:
                self._send(200, BAD_REPLIES.get(mode) or completion(CAPTION))

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _trickle(self, data: bytes) -> None:
            """Headers at once, then the body a byte per interval: each read returns within the interval."""
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.close_connection = True
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    if server._stop.wait(server.trickle_interval):
                        return
            except OSError:  # the client gave up and closed the connection
                return

    return Handler


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date (RFC 9110) `seconds_from_now` ahead, as a Retry-After header may carry."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)
