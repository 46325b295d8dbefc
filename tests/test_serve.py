"""The OpenAI-compatible server: its API surface and errors, and `python -m core serve` as a real process."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.captioners.registry import make_captioner
from core.serve.app import create_app, serve_in_thread

FACTS = {"key": "scene0000_00/3", "label": "chair", "color": "red", "size": "small", "relations": []}


class ShapeCaptioner:
    """A probe: answers with the stage, image shapes, facts and temperature the server decoded."""

    name = "shapes"

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return [f"{r.stage} {[im.shape for im in r.images]} {r.facts} {r.temperature}" for r in requests]


def data_uri(height: int, width: int, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def chat(content: list | str, model: str = "grounded", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """The server as `python -m core serve` builds it by default: the grounded captioner, facts required."""
    with serve_in_thread(create_app(make_captioner("grounded"), require_facts=True)) as url:
        yield url


@pytest.fixture(scope="module")
def probe() -> Iterator[str]:
    with serve_in_thread(create_app(ShapeCaptioner())) as url:
        yield url


def test_models_lists_what_is_served(api: str) -> None:
    body = httpx.get(f"{api}/models").json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [
        ("grounded", "model", "densescan")
    ]


def test_grounded_answers_an_openai_chat_completion(api: str) -> None:
    content = [
        {"type": "image_url", "image_url": {"url": data_uri(20, 30)}},
        {"type": "text", "text": "Describe."},
    ]
    response = httpx.post(f"{api}/chat/completions", json=chat(content, densescan_facts=FACTS))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "grounded"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert (
        message["content"]
        == GroundedCaptioner().caption([CaptionRequest("isolated_view", "", facts=FACTS)])[0]
    )
    assert "red chair" in message["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == 1 and usage["total_tokens"] == 1 + usage["completion_tokens"]


def test_messages_become_the_caption_request(probe: str) -> None:
    content = [
        {"type": "image_url", "image_url": {"url": data_uri(20, 30)}},
        {"type": "image_url", "image_url": {"url": data_uri(8, 9, "JPEG")}},
        {"type": "text", "text": "what is this"},
    ]
    extra = {"densescan_stage": "fusion", "densescan_facts": {"label": "bed"}, "temperature": 0.5}
    body = httpx.post(f"{probe}/chat/completions", json=chat(content, model="shapes", **extra)).json()
    assert body["choices"][0]["message"]["content"] == "fusion [(20, 30, 3), (8, 9, 3)] {'label': 'bed'} 0.5"
    plain = httpx.post(f"{probe}/chat/completions", json=chat("hello", model="shapes")).json()
    assert plain["choices"][0]["message"]["content"].startswith("isolated_view [] {}")


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (chat("hi"), 400, "send them in 'densescan_facts'"),
        (
            chat("hi", densescan_facts={"color": "red"}),
            400,
            "'grounded' rejected the request: KeyError('label')",
        ),
        (chat("hi", model="gpt-4o", densescan_facts=FACTS), 404, "'gpt-4o' is not served here"),
        (chat("hi", densescan_facts=FACTS, densescan_stage="poem"), 400, "unknown densescan_stage 'poem'"),
        (chat([{"type": "image_url", "image_url": {"url": "http://a/b.jpg"}}]), 400, "must be data URIs"),
        (
            chat([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]),
            400,
            "cannot decode",
        ),
        ({"messages": []}, 422, "model"),
    ],
)
def test_bad_requests_get_clear_errors(api: str, payload: dict, status: int, message: str) -> None:
    response = httpx.post(f"{api}/chat/completions", json=payload)
    assert response.status_code == status
    assert message in response.text


def test_test_hooks_exist_only_when_asked_for(api: str) -> None:
    assert httpx.get(f"{api.removesuffix('/v1')}/_test/stats").status_code == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_the_grounded_captioner_on_localhost() -> None:
    port = free_port()
    command = [sys.executable, "-m", "core", "serve", "--port", str(port), "--test-hooks"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                models = httpx.get(f"{url}/models").json()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert models["data"][0]["id"] == "grounded"
        assert httpx.get(f"http://127.0.0.1:{port}/_test/stats").json()["requests"] == 0
        response = httpx.post(f"{url}/chat/completions", json=chat("describe"))
        assert response.status_code == 400 and "densescan_facts" in response.json()["error"]["message"]
        captioner = make_captioner("openai", api_base=url, model="grounded", send_facts=True)
        assert "red chair" in captioner.caption([CaptionRequest("fusion", "Describe.", facts=FACTS)])[0]
    finally:
        process.terminate()
        process.wait(timeout=10)
