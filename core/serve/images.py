"""Images of a chat request, from data URIs to RGB arrays, with every cheap check before the costly decode.

The order is the point: the count of images, then each URI's form and media type, then the base64 text,
then the header (PIL reads only the size here), then the pixel limits of each image and of the request,
and only when all of them pass is any image decompressed. So a decompression bomb costs the server its
header, not its pixels. Only the formats VLM clients send (PNG, JPEG, WebP, GIF) are opened, which keeps
PIL's rarer decoders out of reach of the network.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.serve.errors import ApiError
from core.serve.limits import Limits

MEDIA_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif")
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")


@dataclass
class ImageRef:
    """One image content part: its URL and where it sits in the request (the error's `param`)."""

    url: str
    param: str


def _bad(ref: ImageRef, message: str, code: str = "invalid_image") -> ApiError:
    return ApiError(400, f"{ref.param}: {message}", param=ref.param, code=code)


def open_header(ref: ImageRef) -> Image.Image:
    """The image opened lazily: PIL has read its header (format, size), none of its pixel data."""
    url = ref.url
    head, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not head.endswith(";base64"):
        raise _bad(ref, f"images must be base64 data URIs (data:image/png;base64,...); got {url[:40]!r}")
    media = head.removeprefix("data:").removesuffix(";base64").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise _bad(ref, f"unsupported image type {media!r}; send one of {', '.join(MEDIA_TYPES)}")
    if not payload or len(payload) % 4:
        raise _bad(ref, f"image data is not base64 ({len(payload)} characters, not a multiple of 4)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(ref, f"image data is not base64: {exc}") from exc
    try:
        # PIL refuses by itself only past 2 x Image.MAX_IMAGE_PIXELS (about 179 MP); ours comes next
        return Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _bad(ref, f"image refused as a decompression bomb: {exc}", "image_too_large") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse an untrusted header is a bad image
        raise _bad(ref, f"cannot decode image ({type(exc).__name__}: {exc})") from exc


def decode_images(refs: list[ImageRef], limits: Limits) -> list[np.ndarray]:
    """The images as RGB uint8 arrays, in order; ApiError (400) for the first one that breaks a rule."""
    if len(refs) > limits.max_images:
        raise ApiError(
            400,
            f"{len(refs)} images in one request; this server takes at most {limits.max_images} "
            "(--max-images)",
            param="messages",
            code="too_many_images",
        )
    opened: list[tuple[ImageRef, Image.Image]] = []
    total = 0
    for ref in refs:
        image = open_header(ref)
        width, height = image.size
        pixels = width * height
        if pixels > limits.max_image_pixels:
            raise _bad(
                ref,
                f"image is {width}x{height} = {pixels} pixels; this server decodes at most "
                f"{limits.max_image_pixels} pixels per image (--max-image-pixels)",
                "image_too_large",
            )
        total += pixels
        if total > limits.max_total_pixels:
            raise _bad(
                ref,
                f"the images of this request reach {total} pixels here; this server decodes at most "
                f"{limits.max_total_pixels} pixels per request (--max-total-pixels)",
                "image_too_large",
            )
        opened.append((ref, image))
    return [_pixels(ref, image) for ref, image in opened]


def _pixels(ref: ImageRef, image: Image.Image) -> np.ndarray:
    try:
        with image:
            return np.asarray(image.convert("RGB"))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data of an untrusted image
        raise _bad(ref, f"cannot decode image ({type(exc).__name__}: {exc})") from exc
