"""What one request may cost `core serve`: body bytes, images, decoded pixels; and the body-size gate.

A chat request is small JSON plus base64 images, and a compressed image can unpack to far more memory
than it takes on the wire (a 160 KB PNG of 13000 x 13000 pixels decodes to about 0.5 GB of RGB). Every
cost is therefore bounded before it is paid: the body while it arrives (its declared length, then the
bytes counted as they stream in), the number of images before any is decoded, and each image's pixels from
its header before its data is decompressed. The defaults fit the captioner client (a few JPEG views of a
scan per request) with a wide margin; `python -m core serve --help` lists the flags that change them.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.serve.errors import error_response

MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """Per-request limits; a request over any of them is refused with a 4xx before the cost is paid."""

    max_body_bytes: int = 32 * MIB
    max_images: int = 16
    max_image_pixels: int = 4096 * 4096  # one image, width x height from its header
    max_total_pixels: int = 4 * 4096 * 4096  # all images of one request together

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limit {name} must be a positive integer, got {value!r}")


class BodyLimit:
    """ASGI middleware: refuse a body over `max_bytes` with 413, without reading (or keeping) the rest.

    A declared Content-Length over the limit is refused before a byte is read; a chunked body is counted as
    it arrives and refused at the first chunk that crosses the limit. The accepted body is handed on whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(scope, send, int(declared))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self.refuse(scope, send, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for a disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def refuse(self, scope: Scope, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "more bytes than that"
        message = (
            f"request body too large: this server accepts at most {self.max_bytes} bytes "
            f"(--max-body-mb), the request has {size}"
        )
        response = error_response(413, message, code="request_too_large")
        response.headers["connection"] = "close"
        await response(scope, self.no_receive, send)

    @staticmethod
    async def no_receive() -> Message:
        return {"type": "http.disconnect"}
