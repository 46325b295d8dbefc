"""The OpenAI-compatible server: its API surface and errors, and `python -m core serve` as a real process.

Bad requests (wrong types, bad JSON, oversized bodies, decompression bombs) must each get an OpenAI-format
4xx, so that clients do not retry them, and must leave the server up and its memory flat.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.grounded import GroundedCaptioner
from core.annotate.captioners.registry import CaptionerError, make_captioner
from core.serve.app import create_app, serve_in_thread
from core.serve.limits import Limits

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


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def noise_png(height: int, width: int) -> bytes:
    """A PNG that does not compress (so cutting it leaves pixel data missing)."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(data).decode()


def tiff_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, format="TIFF")
    return buffer.getvalue()


def assert_openai_error(
    response: httpx.Response, status: int, message: str, param: str | None = None
) -> dict:
    """The answer is OpenAI's error object, with the status, a message naming the problem and the field."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    assert message in error["message"], error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def with_facts(content: list | str | int, facts: object = FACTS, **extra) -> dict:
    return chat(content, densescan_facts=facts, **extra)


BAD_REQUESTS = [
    # (payload, status, message, param): each one a request that can never succeed, so a 4xx
    (chat("hi"), 400, "send them in 'densescan_facts'", "densescan_facts"),
    (with_facts("hi", {"color": "red"}), 400, "'grounded' rejected the request: KeyError('label')", None),
    (chat("hi", model="gpt-4o", densescan_facts=FACTS), 404, "'gpt-4o' is not served here", "model"),
    (with_facts("hi", densescan_stage="poem"), 400, "unknown densescan_stage 'poem'", "densescan_stage"),
    ({"messages": []}, 400, "model: Field required", "model"),
    ({"model": "grounded"}, 400, "messages: Field required", "messages"),
    ({"model": "grounded", "messages": []}, 400, "at least 1 item", "messages"),
    ({"model": 5, "messages": [{"role": "user", "content": "hi"}]}, 400, "valid string", "model"),
    # content of the wrong type (a bare 500 before)
    (with_facts(5), 400, "content must be a string or a list of content parts", "messages.0.content"),
    (with_facts(["hello"]), 400, "a content part must be an object", "messages.0.content.0"),
    (with_facts([{"type": "input_audio"}]), 400, "with 'type' 'text' or 'image_url'", "messages.0.content.0"),
    (with_facts([{"type": "text", "text": 7}]), 400, "valid string", "messages.0.content.0.text"),
    (with_facts([{"type": "image_url", "image_url": 3}]), 400, "image_url must be", None),
    (with_facts([{"type": "image_url", "image_url": {}}]), 400, "Field required", None),
    (
        {"model": "grounded", "messages": [{"role": "robot", "content": "hi"}]},
        400,
        "'user'",
        "messages.0.role",
    ),
    ({"model": "grounded", "messages": ["hi"]}, 400, "valid dictionary", "messages.0"),
    # facts of the wrong type (TypeError inside the captioner, a bare 500 before)
    (with_facts("hi", {"label": 5}), 400, "valid string (got int)", "densescan_facts.label"),
    (with_facts("hi", {"label": None}), 400, "must not be null", "densescan_facts.label"),
    (with_facts("hi", FACTS | {"relations": "on the table"}), 400, "valid list", "densescan_facts.relations"),
    (with_facts("hi", FACTS | {"shape": 5}), 400, "valid list", "densescan_facts.shape"),
    (with_facts("hi", FACTS | {"relations": [1, 2]}), 400, "valid string", "densescan_facts.relations.0"),
    (with_facts("hi", [1, 2]), 400, "valid dictionary", "densescan_facts"),
    (
        with_facts("hi", {"key": "s|frame", "highlighted": "chair"}, densescan_stage="frame"),
        400,
        "valid dictionary",
        "densescan_facts.highlighted",
    ),
    (
        with_facts("hi", {"main_objects": [{"label": "bed", "count": "2"}]}, densescan_stage="narrative"),
        400,
        "valid integer",
        "densescan_facts.main_objects.0.count",
    ),
    (
        with_facts("hi", {"extent": "big"}, densescan_stage="narrative"),
        400,
        "valid list",
        "densescan_facts.extent",
    ),
    # other fields out of range or unsupported
    (with_facts("hi", max_tokens=0), 400, "greater than or equal to 1", "max_tokens"),
    (with_facts("hi", temperature="hot"), 400, "valid number", "temperature"),
    (with_facts("hi", stream=True), 400, "streaming is not supported", "stream"),
    # images: refused before any decoding
    (
        with_facts([image_part("http://a/b.jpg")]),
        400,
        "must be base64 data URIs",
        "messages.0.content.0.image_url",
    ),
    (with_facts([image_part("data:image/png;base64,AAAA")]), 400, "cannot decode", None),
    (
        with_facts([image_part("data:image/svg+xml;base64,PHN2Zz4=")]),
        400,
        "unsupported image type 'image/svg+xml'",
        None,
    ),
    (with_facts([image_part("data:image/png;base64,@@@@")]), 400, "not base64", None),
    (with_facts([image_part("data:image/png;base64,AAA")]), 400, "not base64", None),
    (with_facts([image_part(b64(noise_png(64, 64)[:2000]))]), 400, "cannot decode image", None),
    (with_facts([image_part(b64(tiff_bytes()))]), 400, "cannot decode image", None),
]


@pytest.mark.parametrize(
    ("payload", "status", "message", "param"),
    BAD_REQUESTS,
    ids=[f"{i}-{c[2][:30]}" for i, c in enumerate(BAD_REQUESTS)],
)
def test_bad_requests_get_openai_4xx_errors(
    api: str, payload: dict, status: int, message: str, param: str | None
) -> None:
    response = httpx.post(f"{api}/chat/completions", json=payload)
    assert_openai_error(response, status, message, param)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty request body"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"hi"', "must be a JSON object, got str"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
    ids=["broken", "empty", "list", "string", "deep", "utf16"],
)
def test_bodies_that_are_not_json_objects_get_400(api: str, body: bytes, message: str) -> None:
    response = httpx.post(
        f"{api}/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert assert_openai_error(response, 400, message)["code"] == "invalid_json"


def test_unknown_paths_and_methods_answer_in_openai_shape(api: str) -> None:
    assert assert_openai_error(httpx.get(f"{api}/embeddings"), 404, "Not Found")["code"] == "not_found"
    response = httpx.get(f"{api}/chat/completions")
    assert assert_openai_error(response, 405, "Method Not Allowed")["code"] == "method_not_allowed"


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


# ------------------------------------------------------------------------------------------- limits

TIGHT = Limits(max_body_bytes=64_000, max_images=2, max_image_pixels=100 * 100, max_total_pixels=15_000)


@pytest.fixture(scope="module")
def tight() -> Iterator[str]:
    """A probe server with small limits, so that each limit is met by small requests."""
    with serve_in_thread(create_app(ShapeCaptioner(), limits=TIGHT)) as url:
        yield url


def shapes(url: str, *sizes: tuple[int, int]) -> httpx.Response:
    content = [image_part(data_uri(h, w)) for h, w in sizes] + [{"type": "text", "text": "describe"}]
    return httpx.post(f"{url}/chat/completions", json=chat(content, model="shapes"))


def test_images_within_the_limits_are_decoded(tight: str) -> None:
    response = shapes(tight, (100, 100), (50, 100))  # 10,000 + 5,000 pixels: both limits met exactly
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith(
        "isolated_view [(100, 100, 3), (50, 100, 3)]"
    )
    string_url = {"type": "image_url", "image_url": data_uri(2, 3)}  # the plain-string form some clients send
    response = httpx.post(f"{tight}/chat/completions", json=chat([string_url], model="shapes"))
    assert response.json()["choices"][0]["message"]["content"].startswith("isolated_view [(2, 3, 3)]")


def test_too_many_images_are_refused_before_decoding(tight: str) -> None:
    error = assert_openai_error(
        shapes(tight, (1, 1), (1, 1), (1, 1)), 400, "3 images in one request", "messages"
    )
    assert "at most 2 (--max-images)" in error["message"] and error["code"] == "too_many_images"


def test_an_image_over_the_pixel_limit_is_refused(tight: str) -> None:
    error = assert_openai_error(
        shapes(tight, (101, 100)), 400, "101 = 10100 pixels", "messages.0.content.0.image_url"
    )
    assert "--max-image-pixels" in error["message"] and error["code"] == "image_too_large"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_every_accepted_format_is_sized_from_its_header(tight: str, fmt: str) -> None:
    small = [image_part(data_uri(10, 20, fmt))]
    response = httpx.post(f"{tight}/chat/completions", json=chat(small, model="shapes"))
    assert response.json()["choices"][0]["message"]["content"].startswith("isolated_view [(10, 20, 3)]")
    large = [image_part(data_uri(200, 300, fmt))]
    response = httpx.post(f"{tight}/chat/completions", json=chat(large, model="shapes"))
    assert assert_openai_error(response, 400, "200 = 60000 pixels")["code"] == "image_too_large"


def test_images_over_the_request_pixel_limit_are_refused(tight: str) -> None:
    error = assert_openai_error(
        shapes(tight, (100, 100), (60, 100)), 400, "reach 16000 pixels", "messages.0.content.1.image_url"
    )
    assert "--max-total-pixels" in error["message"] and error["code"] == "image_too_large"


def test_a_declared_body_over_the_limit_is_refused_with_413(tight: str) -> None:
    payload = chat([{"type": "text", "text": "x" * 70_000}], model="shapes")
    response = httpx.post(f"{tight}/chat/completions", json=payload)
    error = assert_openai_error(response, 413, "at most 64000 bytes (--max-body-mb)")
    assert error["code"] == "request_too_large"
    assert httpx.post(f"{tight}/chat/completions", json=chat("short", model="shapes")).status_code == 200


def test_a_streamed_body_is_refused_once_it_crosses_the_limit(tight: str) -> None:
    """A chunked body has no declared length: the server counts and stops reading, it does not take 200 MB."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"model": "shapes", "messages": [{"role": "user", "content": "'
        for _ in range(3200):
            sent += 65536
            yield b"x" * 65536

    response = httpx.post(f"{tight}/chat/completions", content=chunks(), timeout=60)
    assert_openai_error(response, 413, "at most 64000 bytes")
    assert sent < 3200 * 65536 // 4  # the client was cut off long before the 200 MB were read


# ------------------------------------------------------------------------------- errors and retries


class BrokenCaptioner:
    """Fails the way a server-side fault looks: a bug (500) or a failed upstream of a relay (502)."""

    name = "broken"

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        if requests[0].prompt == "relay":
            raise CaptionerError("upstream http://gpu:8000/v1 timed out")
        raise RuntimeError("a bug")


def test_server_faults_are_5xx_in_openai_shape() -> None:
    with serve_in_thread(create_app(BrokenCaptioner())) as url:
        response = httpx.post(f"{url}/chat/completions", json=chat("describe", model="broken"))
        assert assert_openai_error(response, 500, "internal server error (RuntimeError)")["code"] is None
        response = httpx.post(f"{url}/chat/completions", json=chat("relay", model="broken"))
        error = assert_openai_error(response, 502, "upstream http://gpu:8000/v1 timed out")
        assert error["code"] == "upstream_error"


def test_the_openai_client_sends_a_bad_request_once() -> None:
    """Facts of the wrong type are the request's fault: a 400, so the captioner client does not retry it."""
    app = create_app(GroundedCaptioner(), require_facts=True, test_hooks=True)
    with serve_in_thread(app) as url:
        captioner = make_captioner("openai", api_base=url, model="grounded", send_facts=True)
        with pytest.raises(CaptionerError, match="HTTP 400"):
            captioner.caption([CaptionRequest("fusion", "Describe.", facts=FACTS | {"relations": "on it"})])
        assert httpx.get(f"{url.removesuffix('/v1')}/_test/stats").json()["requests"] == 1


def test_fastapi_validation_errors_are_400_in_openai_shape() -> None:
    """Routes that FastAPI validates (the test hooks) answer 400 in OpenAI's shape, not 422 with `detail`."""
    with serve_in_thread(create_app(ShapeCaptioner(), test_hooks=True)) as url:
        response = httpx.post(f"{url.removesuffix('/v1')}/_test/faults", json={"delay": "slow"})
        assert assert_openai_error(response, 400, "delay: Input should be a valid number", "delay")


# ------------------------------------------------------------------------ decompression bombs, CLI


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int, rows: int | None = None) -> bytes:
    """A valid grayscale PNG of side x side black pixels, written row by row (never held decoded here).

    With `rows`, only that many rows of data follow the header: PIL still reads the full size from it.
    """
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    packer, row = zlib.compressobj(9), bytes(side + 1)  # filter byte 0, then the row's pixels
    data = b"".join(packer.compress(row) for _ in range(side if rows is None else rows)) + packer.flush()
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@pytest.fixture(scope="module")
def cli_server() -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m core serve` as a user starts it, with two limits set on the command line."""
    port = free_port()
    command = [sys.executable, "-m", "core", "serve", "--port", str(port), "--max-images", "1"]
    command += ["--max-body-mb", "1", "--test-hooks"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                httpx.get(f"{url}/models")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_decompression_bomb_is_refused_without_decoding_it(
    cli_server: tuple[str, subprocess.Popen],
) -> None:
    url, process = cli_server
    healthy = with_facts([image_part(data_uri(20, 30, "JPEG")), {"type": "text", "text": "Describe."}])
    assert httpx.post(f"{url}/chat/completions", json=healthy).status_code == 200  # imports done, pools warm
    before = peak_rss_mb(process.pid)
    bomb = bomb_png(13000)  # 13000 x 13000: ~0.17 GB of pixels, 0.5 GB once RGB, in a ~170 KB file
    assert len(bomb) < 200_000
    for _ in range(3):
        response = httpx.post(f"{url}/chat/completions", json=with_facts([image_part(b64(bomb))]), timeout=60)
        error = assert_openai_error(
            response, 400, "13000x13000 = 169000000 pixels", "messages.0.content.0.image_url"
        )
        assert error["code"] == "image_too_large"
    # past PIL's own bomb limit (2 x Image.MAX_IMAGE_PIXELS), with only a header and one row of data
    response = httpx.post(f"{url}/chat/completions", json=with_facts([image_part(b64(bomb_png(20000, 1)))]))
    assert assert_openai_error(response, 400, "image")["code"] == "image_too_large"
    growth = peak_rss_mb(process.pid) - before
    assert growth < 100, f"the server's peak memory grew by {growth:.0f} MB for refused images"
    assert httpx.post(f"{url}/chat/completions", json=healthy).status_code == 200


def test_cli_limits_and_a_healthy_request_after_bad_ones(cli_server: tuple[str, subprocess.Popen]) -> None:
    url, process = cli_server
    two = with_facts([image_part(data_uri(2, 2)), image_part(data_uri(2, 2))])
    assert_openai_error(httpx.post(f"{url}/chat/completions", json=two), 400, "at most 1 (--max-images)")
    big = with_facts("x" * (2**20 + 1))
    assert_openai_error(httpx.post(f"{url}/chat/completions", json=big), 413, f"at most {2**20} bytes")
    for payload, _, _, _ in BAD_REQUESTS:
        assert 400 <= httpx.post(f"{url}/chat/completions", json=payload).status_code < 500
    for body in (b"{", b"[]", b"[" * 50_000):
        assert httpx.post(f"{url}/chat/completions", content=body).status_code == 400
    # still up, and a well-formed request is answered as before
    assert process.poll() is None
    captioner = make_captioner("openai", api_base=url, model="grounded", send_facts=True)
    assert "red chair" in captioner.caption([CaptionRequest("fusion", "Describe.", facts=FACTS)])[0]


def test_help_documents_the_limits() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "core", "serve", "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--max-body-mb", "--max-images", "--max-image-pixels", "--max-total-pixels"):
        assert flag in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "core", "serve", "--max-images", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--max-images: must be a finite number above 0" in done.stderr
