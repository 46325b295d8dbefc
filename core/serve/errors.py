"""OpenAI-format error answers for `core serve`: every refusal is `{"error": {message, type, param, code}}`.

The status says who is at fault, and clients act on it: the `openai` captioner (like the OpenAI SDK and
vLLM's clients) retries 429 and 5xx and gives up at once on other 4xx. A request that can never succeed
(bad JSON, a wrong type, a bomb image) must therefore be a 4xx, or every client sends it five more times;
only a fault of the server itself (a bug, a failed upstream) is a 5xx. FastAPI's own answers (422 with a
`detail` list, 404 `{"detail": "Not Found"}`) are rewritten into the same shape here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A refusal with its HTTP status and OpenAI error fields; raised anywhere in a request's handling."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_type(status: int) -> str:
    """OpenAI's `type` for a status: the client's fault, a rate limit, or the server's."""
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    if status == 401:
        return "authentication_error"
    return "invalid_request_error"


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """The JSON answer OpenAI's API (and vLLM) give for an error."""
    error = {"message": message, "type": error_type(status), "param": param, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def location(loc: Sequence[Any]) -> str:
    """A pydantic error location as a dotted parameter path: ('messages', 0, 'content') -> messages.0.content.

    The union tags of `protocol` contain a space ('content parts'), so they are told apart from fields.
    """
    parts = [str(p) for i, p in enumerate(loc) if not (i == 0 and p == "body")]
    return ".".join(p for p in parts if " " not in p)


def describe_validation(errors: Sequence[Any]) -> tuple[str, str | None]:
    """The first of pydantic's errors as one line naming the field, and that field as `param`."""
    if not errors:
        return "invalid request body", None
    first = errors[0]
    param = location(first.get("loc", ())) or None
    message = str(first.get("msg", "invalid value"))
    if first.get("type") not in ("missing", "json_invalid") and "input" in first:
        message += f" (got {type(first['input']).__name__})"
    more = len(errors) - 1
    text = f"{param}: {message}" if param else message
    return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""), param


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, ours or the framework's, in OpenAI's shape and with a status clients act on."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), code=code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation(exc.errors())
        return error_response(400, message, param=param, code="invalid_value")

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        # a bug of ours: 500 in the same shape (uvicorn still logs the traceback); clients may retry it
        return error_response(500, f"internal server error ({type(exc).__name__})")
