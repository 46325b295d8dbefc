"""The FastAPI app behind `python -m core serve`: OpenAI's chat-completions API over one `Captioner`.

It speaks the same protocol as vLLM / SGLang / LMDeploy, so the `openai` backend is tested end to end
against a real server, and the project's own models can later be served the way large VLMs are. Every request
is bounded (`limits`) and every refusal is an OpenAI-format 4xx (`errors`), so a bad request neither
takes the server down nor gets retried by clients. Started with `test_hooks`, it can also fail or stall
on purpose, so that client retries and timeouts meet a real server.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from core.annotate.captioners.base import STAGES, Captioner, CaptionRequest
from core.annotate.captioners.registry import CaptionerError
from core.serve.errors import ApiError, describe_validation, install_error_handlers
from core.serve.images import decode_images
from core.serve.limits import BodyLimit, Limits
from core.serve.protocol import ChatRequest, completion

DEFAULT_STAGE = "isolated_view"
# what a captioner raises on facts it cannot use: the request's fault (vLLM answers these 400 too)
REJECTED = (KeyError, ValueError, TypeError, AttributeError, IndexError)


@dataclass
class Faults:
    """Latency and failures injected on purpose, so that client retries and timeouts meet a real server."""

    delay: float = 0.0  # seconds before every answer (models a VLM's latency)
    slow_next: int = 0  # the next N requests wait `slow_delay` seconds more (to trip client timeouts)
    slow_delay: float = 0.0
    fail_rate: float = 0.0  # probability of a `fail_status` answer
    fail_next: int = 0  # the next N requests fail for sure
    fail_status: int = 500


@dataclass
class Stats:
    """What the tests and the bench measure on the server side."""

    requests: int = 0  # chat requests received (those past the body-size gate), good or bad
    in_flight: int = 0
    max_in_flight: int = 0


def parse_body(raw: bytes) -> ChatRequest:
    """The body as a `ChatRequest`; ApiError (400) naming the problem: not JSON, not an object, a field."""
    if not raw:
        raise ApiError(400, "empty request body: send a JSON chat-completions request", code="invalid_json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        detail = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise ApiError(400, f"request body is not valid JSON: {detail}", code="invalid_json") from exc
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ApiError(400, f"request body must be a JSON object, got {kind}", code="invalid_json")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        message, param = describe_validation(exc.errors())
        raise ApiError(400, message, param=param, code="invalid_value") from exc
    except RecursionError as exc:
        raise ApiError(400, "request body is nested too deeply", code="invalid_value") from exc


def to_caption_request(body: ChatRequest, limits: Limits) -> CaptionRequest:
    """The messages turned back into the `CaptionRequest` the client built: user texts and images in order."""
    stage = body.densescan_stage or DEFAULT_STAGE
    if stage not in STAGES:
        raise ApiError(
            400,
            f"unknown densescan_stage {stage!r}; one of: {', '.join(STAGES)}",
            param="densescan_stage",
            code="invalid_value",
        )
    texts, refs = body.user_content()
    request = CaptionRequest(
        stage=stage, prompt="\n".join(texts), images=decode_images(refs, limits), facts=body.facts()
    )
    if body.max_tokens or body.max_completion_tokens:
        request.max_tokens = int(body.max_tokens or body.max_completion_tokens or 0)
    if body.temperature is not None:
        request.temperature = body.temperature
    return request


def create_app(
    captioner: Captioner,
    *,
    model_name: str | None = None,
    require_facts: bool = False,
    faults: Faults | None = None,
    test_hooks: bool = False,
    seed: int = 0,
    limits: Limits | None = None,
) -> FastAPI:
    """The app serving `captioner` as model `model_name` (default: the captioner's name)."""
    model_name = model_name or captioner.name
    faults = faults or Faults()
    limits = limits or Limits()
    stats = Stats()
    rng = random.Random(seed)
    started = int(time.time())
    app = FastAPI(title="DenseScan captioner server", version="1")
    app.state.faults, app.state.stats, app.state.limits = faults, stats, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    install_error_handlers(app)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": started, "owned_by": "densescan"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(http: Request) -> dict[str, Any]:
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            # parsed here rather than by FastAPI, so that every refusal has OpenAI's shape and a 4xx status
            body = await run_in_threadpool(parse_body, await http.body())
            delay = faults.delay
            if faults.slow_next > 0:
                faults.slow_next -= 1
                delay += faults.slow_delay
            if delay > 0:
                await asyncio.sleep(delay)
            if faults.fail_next > 0 or (faults.fail_rate > 0 and rng.random() < faults.fail_rate):
                faults.fail_next = max(0, faults.fail_next - 1)
                raise ApiError(faults.fail_status, "failure injected by the server's test hooks")
            if body.model != model_name:
                raise ApiError(
                    404,
                    f"model {body.model!r} is not served here; this server has {model_name!r}",
                    param="model",
                    code="model_not_found",
                )
            if body.stream:
                raise ApiError(
                    400, "streaming is not supported by this server; send stream: false", param="stream"
                )
            if require_facts and not body.facts():
                raise ApiError(
                    400,
                    f"captioner {captioner.name!r} describes 3D facts: send them in 'densescan_facts' "
                    "(the openai backend does so with send_facts=True)",
                    param="densescan_facts",
                    code="missing_facts",
                )
            request = await run_in_threadpool(to_caption_request, body, limits)
            try:
                [text] = await run_in_threadpool(captioner.caption, [request])
            except CaptionerError as exc:  # a relayed upstream failed: not the client's fault, retryable
                message = f"captioner {captioner.name!r} failed: {exc}"
                raise ApiError(502, message, code="upstream_error") from exc
            except REJECTED as exc:
                raise ApiError(
                    400,
                    f"captioner {captioner.name!r} rejected the request: {exc!r}",
                    param="densescan_facts",
                    code="rejected",
                ) from exc
            return completion(model_name, text, request.prompt)
        finally:
            stats.in_flight -= 1

    if test_hooks:

        @app.post("/_test/faults")
        async def set_faults(update: dict[str, float]) -> dict[str, Any]:
            for name, value in update.items():
                if not hasattr(faults, name):
                    raise ApiError(400, f"unknown fault {name!r}", param=name)
                setattr(faults, name, type(getattr(faults, name))(value))
            return asdict(faults)

        @app.get("/_test/stats")
        async def get_stats() -> dict[str, Any]:
            return asdict(stats)

        @app.post("/_test/reset")
        async def reset() -> dict[str, Any]:
            stats.requests = stats.max_in_flight = 0
            for name, value in asdict(Faults()).items():
                setattr(faults, name, value)
            return asdict(stats)

    return app


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread (port 0: a free one); yields the base URL `.../v1`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", backlog=2048))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the captioner server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
