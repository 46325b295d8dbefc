"""The chat-completions request `core serve` reads, as strict pydantic models, and the answer it writes.

A body is checked whole before any work: the types of OpenAI's fields (`content` is a string or a list of
`text` / `image_url` parts, never a number), sane ranges (`max_tokens` >= 1), and the DenseScan extension
`densescan_facts` with the types the `grounded` captioner reads (a `label` that is a string, `relations`
that are a list of strings...). A wrong type is then a 400 naming the field, not a TypeError deep in a
captioner that the client would take for a server fault and retry. Unknown fields are accepted and ignored,
as OpenAI-compatible servers do.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from core.serve.images import ImageRef

STRICT = ConfigDict(strict=True, extra="allow")


class ImageURL(BaseModel):
    model_config = STRICT
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal["text"]
    text: str


def _url_kind(value: Any) -> str | None:
    return "url string" if isinstance(value, str) else "url object" if isinstance(value, dict) else None


class ImagePart(BaseModel):
    model_config = STRICT
    type: Literal["image_url"]
    image_url: Annotated[
        Annotated[ImageURL, Tag("url object")] | Annotated[str, Tag("url string")],
        Discriminator(
            _url_kind,
            custom_error_type="invalid_image_url",
            custom_error_message="image_url must be an object {'url': 'data:image/...'} or a string",
        ),
    ]


def _part_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else None
    return {"text": "text part", "image_url": "image part"}.get(kind) if isinstance(kind, str) else None


ContentPart = Annotated[
    Annotated[TextPart, Tag("text part")] | Annotated[ImagePart, Tag("image part")],
    Discriminator(
        _part_kind,
        custom_error_type="invalid_content_part",
        custom_error_message="a content part must be an object with 'type' 'text' or 'image_url'",
    ),
]


def _content_kind(value: Any) -> str | None:
    if value is None:
        return "no content"
    if isinstance(value, str):
        return "string content"
    return "content parts" if isinstance(value, list) else None


class ChatMessage(BaseModel):
    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Annotated[
        Annotated[str, Tag("string content")]
        | Annotated[list[ContentPart], Tag("content parts")]
        | Annotated[None, Tag("no content")],
        Discriminator(
            _content_kind,
            custom_error_type="invalid_content",
            custom_error_message="content must be a string or a list of content parts",
        ),
    ] = None


class ObjectFacts(BaseModel):
    """An object named in scene-level facts (`highlighted`, `visible`, `main_objects`)."""

    model_config = STRICT
    label: str
    color: str | None = None
    size: str | None = None
    shape: list[str] | None = None


class MainObject(ObjectFacts):
    count: int = Field(ge=1)
    object_ids: list[int] | None = None


class Facts(BaseModel):
    """`densescan_facts`: the 3D facts `core.annotate` sends; each stage uses some of them."""

    model_config = STRICT
    key: str | None = None
    label: str | None = None
    color: str | None = None
    size: str | None = None
    shape: list[str] | None = None
    relations: list[str] | None = None
    view_colors: list[str] | None = None
    highlighted: ObjectFacts | None = None
    visible: list[ObjectFacts] | None = None
    room_type: str | None = None
    extent: list[float] | None = Field(default=None, min_length=2, max_length=2)
    main_objects: list[MainObject] | None = None
    arrangement: list[str] | None = None
    need: str | None = None
    questions: list[str] | None = None

    @field_validator("label", "highlighted")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        # may be left out (a stage that needs it then says so), but a captioner cannot describe a null
        if value is None:
            raise ValueError("must not be null")
        return value


class ChatRequest(BaseModel):
    """The part of an OpenAI chat-completions body this server reads; other fields are ignored."""

    model_config = STRICT
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    stream: bool | None = None
    densescan_stage: str | None = None
    densescan_facts: Facts | None = None

    def user_content(self) -> tuple[list[str], list[ImageRef]]:
        """The user messages' texts and image URLs, in order; images carry their place for error messages."""
        texts: list[str] = []
        images: list[ImageRef] = []
        for m, message in enumerate(self.messages):
            if message.role != "user" or message.content is None:
                continue
            if isinstance(message.content, str):
                texts.append(message.content)
                continue
            for p, part in enumerate(message.content):
                if isinstance(part, TextPart):
                    texts.append(part.text)
                else:
                    url = part.image_url.url if isinstance(part.image_url, ImageURL) else part.image_url
                    images.append(ImageRef(url, f"messages.{m}.content.{p}.image_url"))
        return texts, images

    def facts(self) -> dict[str, Any]:
        """The facts as the client sent them (no defaults filled in)."""
        return self.densescan_facts.model_dump(exclude_unset=True) if self.densescan_facts else {}


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
