"""The `openai` captioner against a misbehaving server (tests/misbehaving_openai.py) on 127.0.0.1.

A reply that is not a whole caption must be retried, never cached, and fail clearly once the retries are
spent; Retry-After is honoured within its cap; a request has a total deadline however its bytes trickle.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import numpy as np
import pytest
from misbehaving_openai import CAPTION, MisbehavingServer, http_date

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.cache import ResponseCache, cache_key
from core.annotate.captioners.openai_backend import OpenAICaptioner, retry_after_seconds
from core.annotate.captioners.registry import CaptionerError, make_captioner

BAD_REPLIES = {
    "null": "content: null",
    "parts": "content is a list",
    "length": "finish_reason 'length'",
    "filter": "finish_reason 'content_filter'",
    "empty": "the reply is empty",
}


@pytest.fixture(scope="module")
def running() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as server:
        yield server


@pytest.fixture
def server(running: MisbehavingServer) -> MisbehavingServer:
    running.set("healthy")
    return running


def one_request() -> list[CaptionRequest]:
    image = np.full((16, 16, 3), 120, dtype=np.uint8)
    return [CaptionRequest("isolated_view", "describe the object", [image])]


def captioner(server: MisbehavingServer, cache: ResponseCache | None = None, **kwargs) -> OpenAICaptioner:
    options = {"timeout": 5.0, "retries": 2, "backoff": 0.01, "cache": cache, **kwargs}
    return OpenAICaptioner(server.url, "any", **options)


@pytest.mark.parametrize("mode", sorted(BAD_REPLIES))
def test_a_reply_that_is_not_a_caption_fails_after_the_retries_and_is_not_cached(
    server: MisbehavingServer, mode: str, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path)
    server.set(mode)
    with pytest.raises(CaptionerError) as err:
        captioner(server, cache).caption(one_request())
    assert "gave up after 3 attempts" in str(err.value) and BAD_REPLIES[mode] in str(err.value)
    assert server.requests == 3  # one try and two retries
    assert len(cache) == 0 and not list(tmp_path.rglob("*.txt"))
    server.set("healthy")  # a rerun asks the server again instead of reading a poisoned cache
    assert captioner(server, cache).caption(one_request()) == [CAPTION]
    assert server.requests == 1 and len(cache) == 1


@pytest.mark.parametrize("mode", sorted(BAD_REPLIES))
def test_a_bad_reply_is_retried_until_a_good_one(
    server: MisbehavingServer, mode: str, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path)
    server.set(mode, bad_first=2)
    assert captioner(server, cache).caption(one_request()) == [CAPTION]
    assert server.requests == 3
    assert [p.read_text() for p in tmp_path.rglob("*.txt")] == [CAPTION]


def test_retry_after_in_seconds_is_honoured(server: MisbehavingServer) -> None:
    server.set("ratelimit", bad_first=1, retry_after="1")
    assert captioner(server).caption(one_request()) == [CAPTION]
    first, second = server.arrivals
    assert second - first >= 0.95  # the backoff alone would have waited about 0.01 s


def test_retry_after_as_an_http_date_is_honoured(server: MisbehavingServer) -> None:
    until = int(time.time()) + 3  # HTTP-dates have whole seconds
    server.set("ratelimit", bad_first=1, retry_after=formatdate(until, usegmt=True))
    assert captioner(server).caption(one_request()) == [CAPTION]
    first, second = server.arrivals
    assert first < until - 0.5 <= second  # the backoff alone would have asked again about 0.01 s later


def test_retry_after_is_capped(server: MisbehavingServer) -> None:
    server.set("ratelimit", bad_first=1, retry_after="3600")
    start = time.monotonic()
    assert captioner(server, max_retry_after=0.3).caption(one_request()) == [CAPTION]
    first, second = server.arrivals
    assert second - first >= 0.28 and time.monotonic() - start < 3


def test_persistent_rate_limiting_fails_clearly(server: MisbehavingServer) -> None:
    server.set("ratelimit", retry_after="0")
    with pytest.raises(CaptionerError, match="gave up after 2 attempts.*HTTP 429"):
        captioner(server, retries=1).caption(one_request())
    assert server.requests == 2


def test_a_trickling_server_meets_the_total_deadline(server: MisbehavingServer) -> None:
    # a byte every 0.05 s: no single read waits long, so only a deadline on the whole request ends it
    server.set("trickle", trickle_interval=0.05)
    start = time.monotonic()
    with pytest.raises(CaptionerError, match="gave up after 2 attempts.*timed out after 0.5 s"):
        captioner(server, timeout=0.5, retries=1).caption(one_request())
    assert time.monotonic() - start < 3  # the whole body would take about 10 s per attempt
    assert server.requests == 2


def test_a_hanging_server_times_out_and_the_next_try_succeeds(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    server.set("hang", bad_first=1)
    start = time.monotonic()
    assert captioner(server, ResponseCache(tmp_path), timeout=0.3).caption(one_request()) == [CAPTION]
    assert time.monotonic() - start < 3 and server.requests == 2


def test_a_batch_against_a_hanging_server_fails_within_its_deadline(server: MisbehavingServer) -> None:
    server.set("hang")
    start = time.monotonic()
    with pytest.raises(CaptionerError, match="4 of 4 requests.*timed out"):
        captioner(server, timeout=0.3, retries=1, concurrency=4).caption(one_request() * 4)
    assert time.monotonic() - start < 3 and server.requests == 8


def test_timeout_and_retries_reach_the_backend_through_the_registry(server: MisbehavingServer) -> None:
    built = make_captioner("openai", api_base=server.url, model="any", timeout=0.3, retries=0)
    assert isinstance(built, OpenAICaptioner) and built.timeout == 0.3 and built.retries == 0
    server.set("hang")
    with pytest.raises(CaptionerError, match="gave up after 1 attempts"):
        built.caption(one_request())


def test_bad_settings_are_refused() -> None:
    for bad in ({"timeout": 0.0}, {"timeout": float("nan")}, {"retries": -1}, {"max_retry_after": -1.0}):
        with pytest.raises(CaptionerError, match=next(iter(bad))):
            OpenAICaptioner("http://127.0.0.1:9/v1", "any", **bad)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_values(header: str, seconds: float) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_dates_count_from_now() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds(http_date(0), now=time.time() - 30) == pytest.approx(30, abs=1.5)
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == pytest.approx(30)


@pytest.mark.parametrize("header", [None, "", "soon", "nan", "inf", "1e999", "Mon, 99 Foo 2024"])
def test_unreadable_retry_after_means_backoff(header: str | None) -> None:
    assert retry_after_seconds(header) is None


def test_the_cache_never_keeps_a_blank_text(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = cache_key("m", [{"role": "user", "content": "q"}], {})
    for blank in ("", "  \n"):
        cache.put(key, blank)
        assert cache.get(key) is None and len(cache) == 0
    # a blank answer an older version wrote reads as a miss, so the question is asked again
    (tmp_path / key[:2]).mkdir()
    (tmp_path / key[:2] / f"{key}.txt").write_text("")
    assert cache.get(key) is None
    cache.put(key, "a chair")
    assert cache.get(key) == "a chair"
