"""The `openai` captioner: any OpenAI-compatible chat endpoint (vLLM, SGLang, LMDeploy, `core serve`).

A batch (every request of one stage of one scene) is sent concurrently with at most `concurrency`
requests in flight (spread over small connection pools), because a VLM server is only busy, and a
pipeline only fast, with many requests in flight.
Transient failures (timeouts, dropped connections, 429, 5xx) are retried with exponential backoff and
jitter, or after the server's Retry-After (capped at `max_retry_after`). Each attempt has a total deadline
(`timeout`), not only a per-read one, so a server that trickles a byte a second cannot stall a run.
A reply that is not a whole caption (`content: null`, a list of content parts, an empty text,
`finish_reason` "length" or "content_filter") is a failure too: it is retried, never cached, and after the
retries it fails the batch, so a scene never ends up with an empty or truncated caption.
Every good answer is cached so that a restarted job asks nothing twice.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import math
import os
import random
import threading
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from datetime import UTC
from typing import Any, TypeVar

import httpx
import numpy as np
from PIL import Image

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.cache import ResponseCache, cache_key
from core.annotate.errors import CaptionerError

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


# a reply that stopped for one of these reasons is not a whole caption
BAD_FINISH_REASONS = {
    "length": "the reply was cut off at max_tokens (finish_reason 'length')",
    "content_filter": "the server's content filter withheld the reply (finish_reason 'content_filter')",
}


class _Retryable(Exception):
    """A failure worth another try (timeout, connection, 429, 5xx, a reply that is not a whole caption)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait, when it said


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delay-seconds or HTTP-date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def reply_text(payload: Any) -> str:
    """The caption in a chat completion; `_Retryable` when the reply is not a whole, non-empty text.

    A malformed body (no `choices[0].message`) raises `KeyError`, `IndexError` or `TypeError`.
    """
    choice = payload["choices"][0]
    message = choice["message"]
    if not isinstance(message, dict):
        raise TypeError("message is not an object")
    reason = BAD_FINISH_REASONS.get(choice.get("finish_reason"))
    if reason is not None:
        raise _Retryable(reason)
    content = message.get("content")
    if content is None:
        refusal = message.get("refusal")
        said = f"; refusal: {refusal!r:.200}" if refusal else ""
        raise _Retryable(f"the reply has no text (content: null){said}")
    if not isinstance(content, str):
        raise _Retryable(f"the reply's content is a {type(content).__name__}, not a text")
    if not content.strip():
        raise _Retryable(f"the reply is empty ({content!r:.40})")
    return content


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
        max_retry_after: float = 60.0,
        cache: ResponseCache | None = None,
        send_facts: bool = False,
        api_key: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise CaptionerError(f"concurrency must be at least 1, got {concurrency}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise CaptionerError(f"timeout must be a positive number of seconds, got {timeout}")
        if retries < 0:
            raise CaptionerError(f"retries must be 0 or more, got {retries}")
        if not max_retry_after >= 0:
            raise CaptionerError(f"max_retry_after must be 0 or more seconds, got {max_retry_after}")
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
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
        if self.cache is not None:  # only whole captions get here (`reply_text`)
            self.cache.put(key, text)
        return text

    async def _post_with_retries(self, client: httpx.AsyncClient, body: dict[str, Any]) -> str:
        last = _Retryable("no attempt made")
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, last.retry_after))
            try:
                return await self._post(client, body)
            except _Retryable as exc:
                last = exc
        raise CaptionerError(f"{self.url}: gave up after {self.retries + 1} attempts; last error: {last}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait before try `attempt` (1-based): what the server asked for (capped), else backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> str:
        try:
            # httpx's timeout bounds each read; this bounds the whole request, however the bytes trickle in
            async with asyncio.timeout(self.timeout):
                response = await client.post(self.url, json=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _Retryable(f"timed out after {self.timeout} s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            raise _Retryable(f"HTTP {status}: {response.text[:300]}", retry_after=wait)
        if status != 200:
            raise CaptionerError(f"{self.url}: HTTP {status} (not retried): {response.text[:300]}")
        try:
            return reply_text(response.json())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise CaptionerError(f"{self.url}: not an OpenAI chat completion: {response.text[:300]}") from exc
