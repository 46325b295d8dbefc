"""The FastAPI app behind `python -m core serve`: OpenAI's chat-completions API over one `Captioner`.

It speaks the same protocol as vLLM / SGLang / LMDeploy, so the `openai` backend is tested end to end
against a real server, and the project's own models can later be served the way large VLMs are. Started
with `test_hooks`, it can also fail or stall on purpose, so that client retries and timeouts meet a real
server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from core.annotate.captioners.base import STAGES, Captioner, CaptionRequest

DEFAULT_STAGE = "isolated_view"


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

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


class ChatRequest(BaseModel):
    """The part of an OpenAI chat-completions body this server reads; the rest is accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    densescan_stage: str | None = None
    densescan_facts: dict[str, Any] | None = None


def decode_image(url: str) -> np.ndarray:
    """A `data:image/...;base64,` URI as an RGB uint8 array; other URLs are refused (no network fetches)."""
    if not url.startswith("data:image/") or ";base64," not in url:
        raise HTTPException(400, "images must be data URIs (data:image/<type>;base64,...); got " + url[:40])
    try:
        data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise HTTPException(400, f"cannot decode image data URI: {exc}") from exc


def to_caption_request(body: ChatRequest) -> CaptionRequest:
    """The messages turned back into the `CaptionRequest` the client built: user texts and images in order."""
    texts: list[str] = []
    images: list[np.ndarray] = []
    for message in body.messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url", "") if isinstance(image_url, dict) else str(image_url)
                images.append(decode_image(url))
            else:
                raise HTTPException(400, f"unsupported content part type {part.get('type')!r}")
    stage = body.densescan_stage or DEFAULT_STAGE
    if stage not in STAGES:
        raise HTTPException(400, f"unknown densescan_stage {stage!r}; one of: {', '.join(STAGES)}")
    request = CaptionRequest(
        stage=stage, prompt="\n".join(texts), images=images, facts=body.densescan_facts or {}
    )
    if body.max_tokens or body.max_completion_tokens:
        request.max_tokens = int(body.max_tokens or body.max_completion_tokens or 0)
    if body.temperature is not None:
        request.temperature = body.temperature
    return request


def completion(model: str, text: str, prompt: str) -> dict[str, Any]:
    """An OpenAI chat-completion response; token counts are whitespace words (no tokenizer here)."""
    prompt_tokens, completion_tokens = len(prompt.split()), len(text.split())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def create_app(
    captioner: Captioner,
    *,
    model_name: str | None = None,
    require_facts: bool = False,
    faults: Faults | None = None,
    test_hooks: bool = False,
    seed: int = 0,
) -> FastAPI:
    """The app serving `captioner` as model `model_name` (default: the captioner's name)."""
    model_name = model_name or captioner.name
    faults = faults or Faults()
    stats = Stats()
    rng = random.Random(seed)
    started = int(time.time())
    app = FastAPI(title="DenseScan captioner server", version="1")
    app.state.faults, app.state.stats = faults, stats

    @app.exception_handler(HTTPException)
    async def openai_error(_: Request, exc: HTTPException) -> JSONResponse:
        error = {"message": str(exc.detail), "type": "invalid_request_error", "code": exc.status_code}
        return JSONResponse({"error": error}, status_code=exc.status_code)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": started, "owned_by": "densescan"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest) -> dict[str, Any]:
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            delay = faults.delay
            if faults.slow_next > 0:
                faults.slow_next -= 1
                delay += faults.slow_delay
            if delay > 0:
                await asyncio.sleep(delay)
            if faults.fail_next > 0 or (faults.fail_rate > 0 and rng.random() < faults.fail_rate):
                faults.fail_next = max(0, faults.fail_next - 1)
                raise HTTPException(faults.fail_status, "failure injected by the server's test hooks")
            if body.model != model_name:
                raise HTTPException(
                    404, f"model {body.model!r} is not served here; this server has {model_name!r}"
                )
            request = to_caption_request(body)
            if require_facts and not request.facts:
                raise HTTPException(
                    400,
                    f"captioner {captioner.name!r} describes 3D facts: send them in 'densescan_facts' "
                    "(the openai backend does so with send_facts=True)",
                )
            try:
                [text] = await run_in_threadpool(captioner.caption, [request])
            except (KeyError, ValueError) as exc:
                raise HTTPException(
                    400, f"captioner {captioner.name!r} rejected the request: {exc!r}"
                ) from exc
            return completion(model_name, text, request.prompt)
        finally:
            stats.in_flight -= 1

    if test_hooks:

        @app.post("/_test/faults")
        async def set_faults(update: dict[str, float]) -> dict[str, Any]:
            for name, value in update.items():
                if not hasattr(faults, name):
                    raise HTTPException(400, f"unknown fault {name!r}")
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
