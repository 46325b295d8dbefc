"""The `openai` captioner: any OpenAI-compatible chat endpoint (vLLM, SGLang, LMDeploy, `core serve`).

A batch (every request of one stage of one scene) is sent concurrently with at most `concurrency`
requests in flight (spread over small connection pools), because a VLM server is only busy, and a
pipeline only fast, with many requests in flight.
Transient failures (timeouts, dropped connections, 429, 5xx) are retried with exponential backoff and
jitter; every answer is cached so that a restarted job asks nothing twice.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os
import random
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import numpy as np
from PIL import Image

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.cache import ResponseCache, cache_key
from core.annotate.captioners.registry import CaptionerError

T = TypeVar("T")
JPEG_QUALITY = 90
# httpcore scans every connection of a pool for each request it queues or finishes: pools of 8 keep that
# cheap, where one pool of 32 connections spent more CPU than the requests themselves (bench_captioners)
POOL_SIZE = 8


def image_data_uri(image: np.ndarray) -> str:
    """An RGB uint8 array as a JPEG data URI, the image form every OpenAI-compatible server reads."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise CaptionerError(f"images must be RGB uint8 (H, W, 3) arrays, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def build_messages(request: CaptionRequest) -> list[dict[str, Any]]:
    """One user message: the images as content parts first, then the prompt, as VLM chat templates expect."""
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_uri(image)}} for image in request.images
    ]
    parts.append({"type": "text", "text": request.prompt})
    return [{"role": "user", "content": parts}]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code, also when the caller already sits inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # handed back to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class _Retryable(Exception):
    """A failure worth another try (timeout, connection, 429, 5xx)."""


class OpenAICaptioner:
    """Captions through `POST {api_base}/chat/completions`."""

    name = "openai"

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        concurrency: int = 32,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 16.0,
        cache: ResponseCache | None = None,
        send_facts: bool = False,
        api_key: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise CaptionerError(f"concurrency must be at least 1, got {concurrency}")
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.cache = cache
        self.send_facts = send_facts
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")

    def body(self, request: CaptionRequest) -> dict[str, Any]:
        """The JSON body of one request; facts go only to servers that asked for them (`send_facts`)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(request),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if self.send_facts:
            body["densescan_stage"] = request.stage
            body["densescan_facts"] = request.facts
        return body

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return run_sync(self._caption_all(requests))

    async def _caption_all(self, requests: list[CaptionRequest]) -> list[str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(headers=headers, timeout=self.timeout, limits=limits)
                )
                for _ in range(math.ceil(self.concurrency / POOL_SIZE))
            ]
            # one slot per request in flight; taking a slot also picks the pool that sends the request
            slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
            for i in range(self.concurrency):
                slots.put_nowait(clients[i // POOL_SIZE])
            results = await asyncio.gather(
                *(self._caption_one(slots, request) for request in requests), return_exceptions=True
            )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # the successful answers are cached already: a rerun asks only for the failed ones
            raise CaptionerError(
                f"{len(failures)} of {len(requests)} requests to {self.url} failed; first: {failures[0]}"
            ) from failures[0]
        return [str(r) for r in results]

    async def _caption_one(self, slots: asyncio.Queue[httpx.AsyncClient], request: CaptionRequest) -> str:
        body = self.body(request)
        params = {k: v for k, v in body.items() if k not in ("model", "messages")}
        key = cache_key(self.model, body["messages"], params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        client = await slots.get()
        try:
            text = await self._post_with_retries(client, body)
        finally:
            slots.put_nowait(client)
        if self.cache is not None:
            self.cache.put(key, text)
        return text

    async def _post_with_retries(self, client: httpx.AsyncClient, body: dict[str, Any]) -> str:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            try:
                return await self._post(client, body)
            except _Retryable as exc:
                last = str(exc)
        raise CaptionerError(f"{self.url}: gave up after {self.retries + 1} attempts; last error: {last}")

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> str:
        try:
            response = await client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out after {self.timeout} s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {response.text[:300]}")
        if status != 200:
            raise CaptionerError(f"{self.url}: HTTP {status} (not retried): {response.text[:300]}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise CaptionerError(f"{self.url}: not an OpenAI chat completion: {response.text[:300]}") from exc
        return content if isinstance(content, str) else ""
