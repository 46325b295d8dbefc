"""The `openai` backend end to end against the project's own server on 127.0.0.1 (a real uvicorn).

The server counts requests and the most it had in flight, and fails or stalls on demand, so retries,
timeouts, the cache and bounded concurrency are checked on the wire, not on mocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.cache import ResponseCache
from core.annotate.captioners.openai_backend import OpenAICaptioner
from core.annotate.captioners.registry import CaptionerError, make_captioner
from core.serve.app import create_app, serve_in_thread

MODEL = "echo"


class EchoCaptioner:
    """Answers with what it received, so a test can see the request survived the round trip."""

    name = MODEL

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return [
            f"{r.stage}|{r.prompt}|{[im.shape for im in r.images]}|{sorted(r.facts)}|{r.max_tokens}"
            for r in requests
        ]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = create_app(EchoCaptioner(), test_hooks=True)
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def api(server: str) -> Iterator[str]:
    """The server's base URL, with counters and faults reset around each test."""
    root = server.removesuffix("/v1")
    httpx.post(f"{root}/_test/reset")
    yield server
    httpx.post(f"{root}/_test/reset")


def faults(api: str, **values: float) -> None:
    httpx.post(f"{api.removesuffix('/v1')}/_test/faults", json=values).raise_for_status()


def stats(api: str) -> dict:
    return httpx.get(f"{api.removesuffix('/v1')}/_test/stats").json()


def requests(n: int, **kwargs) -> list[CaptionRequest]:
    rng = np.random.default_rng(0)
    return [
        CaptionRequest(
            stage="isolated_view",
            prompt=f"describe object {i}",
            images=[rng.integers(0, 255, (24 + i, 32, 3), dtype=np.uint8)],
            facts={"label": "chair", "id": i},
            **kwargs,
        )
        for i in range(n)
    ]


def client(api: str, **kwargs) -> OpenAICaptioner:
    options = {"timeout": 5.0, "retries": 3, "backoff": 0.01, **kwargs}
    return OpenAICaptioner(api, MODEL, **options)


def test_round_trip_keeps_order_images_and_params(api: str) -> None:
    texts = client(api).caption(requests(12, max_tokens=77))
    assert len(texts) == 12
    for i, text in enumerate(texts):
        assert text == f"isolated_view|describe object {i}|[({24 + i}, 32, 3)]|[]|77"
    assert stats(api)["requests"] == 12


def test_facts_are_sent_only_when_asked(api: str) -> None:
    [plain] = client(api).caption(requests(1))
    [with_facts] = client(api, send_facts=True).caption(requests(1))
    assert plain.endswith("|[]|256")
    assert "['id', 'label']" in with_facts


def test_server_errors_are_retried_until_success(api: str) -> None:
    faults(api, fail_next=2, fail_status=500)
    assert len(client(api).caption(requests(1))) == 1
    assert stats(api)["requests"] == 3
    faults(api, fail_next=1, fail_status=429)
    assert len(client(api).caption(requests(1))) == 1


def test_persistent_errors_fail_clearly_after_the_retries(api: str) -> None:
    faults(api, fail_rate=1.0)
    with pytest.raises(CaptionerError) as err:
        client(api, retries=2).caption(requests(1))
    message = str(err.value)
    assert f"{api}/chat/completions" in message and "HTTP 500" in message and "3 attempts" in message
    assert stats(api)["requests"] == 3


def test_client_errors_are_not_retried(api: str) -> None:
    with pytest.raises(CaptionerError, match="HTTP 404.*not retried"):
        OpenAICaptioner(api, "no-such-model", retries=3, backoff=0.01).caption(requests(1))
    assert stats(api)["requests"] == 1


def test_a_stalled_request_times_out_and_is_retried(api: str) -> None:
    faults(api, slow_next=1, slow_delay=1.0)
    start = time.perf_counter()
    assert len(client(api, timeout=0.3).caption(requests(1))) == 1
    assert time.perf_counter() - start < 1.0
    assert stats(api)["requests"] == 2


def test_timeouts_every_time_fail_clearly(api: str) -> None:
    faults(api, delay=0.5)
    with pytest.raises(CaptionerError, match="gave up after 2 attempts.*timed out"):
        client(api, timeout=0.1, retries=1).caption(requests(1))


def test_connection_refused_fails_clearly() -> None:
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    with pytest.raises(CaptionerError, match="127.0.0.1:9/v1/chat/completions.*connection error"):
        OpenAICaptioner(dead, MODEL, retries=1, backoff=0.01, timeout=1.0).caption(requests(1))


def test_cache_means_a_rerun_sends_nothing(api: str, tmp_path: Path) -> None:
    first = make_captioner("openai", api_base=api, model=MODEL, cache_dir=tmp_path).caption(requests(10))
    assert stats(api)["requests"] == 10
    assert len(ResponseCache(tmp_path)) == 10
    again = make_captioner("openai", api_base=api, model=MODEL, cache_dir=tmp_path).caption(requests(10))
    assert again == first and stats(api)["requests"] == 10
    make_captioner("openai", api_base=api, model=MODEL, cache_dir=tmp_path).caption(
        requests(10, temperature=0.7)
    )
    assert stats(api)["requests"] == 20  # other sampling parameters: another question


def test_a_failed_batch_keeps_its_successes_in_the_cache(api: str, tmp_path: Path) -> None:
    faults(api, fail_next=1)
    with pytest.raises(CaptionerError, match="1 of 4 requests"):
        client(api, retries=0, concurrency=1, cache=ResponseCache(tmp_path)).caption(requests(4))
    assert len(ResponseCache(tmp_path)) == 3
    client(api, cache=ResponseCache(tmp_path)).caption(requests(4))
    assert stats(api)["requests"] == 5


@pytest.mark.parametrize("concurrency", [1, 8])
def test_concurrency_overlaps_requests_up_to_the_bound(api: str, concurrency: int) -> None:
    faults(api, delay=0.15)
    client(api, concurrency=concurrency).caption(requests(2 * concurrency + 2))
    assert stats(api)["max_in_flight"] == concurrency


def test_caption_works_inside_a_running_event_loop(api: str) -> None:
    async def inside() -> list[str]:
        return client(api).caption(requests(2))

    assert len(asyncio.run(inside())) == 2


def test_api_key_goes_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        seen.append(request.headers.get("authorization"))
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with serve_in_thread(app) as url:
        assert OpenAICaptioner(url, MODEL).caption(requests(1)) == ["ok"]
    assert seen == ["Bearer sk-test"]


def test_grounded_over_http_equals_grounded_in_process() -> None:
    """The default offline captioner served by `core serve` and asked through `openai` answers the same."""
    facts = [
        {"key": f"scene0000_00/{i}", "label": label, "color": color, "size": "large", "relations": relations}
        for i, (label, color, relations) in enumerate(
            [
                ("sofa", "grey", ["next to the table"]),
                ("lamp", "white", []),
                ("bed", "blue", ["near the door"]),
            ]
        )
    ]
    batch = [
        CaptionRequest(stage, f"prompt {i}", images=requests(1)[0].images, facts=f)
        for i, f in enumerate(facts)
        for stage in ("isolated_view", "highlighted_view", "fusion")
    ]
    grounded = make_captioner("grounded", seed=2)
    app = create_app(grounded, require_facts=True)
    with serve_in_thread(app) as url:
        remote = make_captioner("openai", api_base=url, model="grounded", send_facts=True).caption(batch)
    assert remote == grounded.caption(batch)
