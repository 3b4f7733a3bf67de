"""What an answer means: the one place where a response becomes a value or a typed error.

:func:`interpret` decodes a body and hands it to the caller's ``parse``; an error status (or
a 200 with an ``error`` body) becomes the :class:`~._errors.APIStatusError` subclass that
:func:`error_for_response` picks from the status, the server's message and its code. The
exchange calls it once per answer; the error classes themselves live in :mod:`._errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _json
from ._errors import (
    AIHubMixError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    cap_message,
)
from ._models import image_type, sniff_mime_type
from ._retry import parse_retry_after
from ._transport import Response
from ._types import JSONValue

__all__ = ["IMAGE", "error_for_response", "interpret"]

#: ``parse=IMAGE`` asks :meth:`Exchange.call` for image bytes: the answer is the MIME type.
IMAGE: Callable[[Any], Any] = sniff_mime_type


def interpret(
    response: Response, model: str, parse: Callable[[Any], Any] | None
) -> tuple[JSONValue, Any]:
    """The one place an answer becomes a value or a typed error: (decoded JSON, what ``parse``
    made of it).

    Error statuses and ``{"error": ...}`` bodies become :class:`APIStatusError` subclasses;
    a body that is not JSON, that ``parse`` rejects, or (``parse=IMAGE``) that is not an image
    becomes a :class:`ResponseFormatError`. Every error carries the model and request id.
    """
    status = response.status
    body = response.body
    data: JSONValue = None
    decoded = False
    if parse is not IMAGE or status >= 300:
        try:
            data = _json.loads(body) if body else None
            decoded = True
        except (ValueError, UnicodeDecodeError, RecursionError):  # too deep for stdlib json
            decoded = False
    if status >= 300 or (isinstance(data, dict) and data.get("error")):
        raise error_for_response(
            status=status,
            body=data,
            text="" if decoded else body[:1000].decode("utf-8", "replace"),
            reason=response.reason,
            request_id=response.request_id,
            retry_after=parse_retry_after(response.headers),
            model=model,
        )
    if parse is IMAGE:
        return None, _image_type(response, model)
    if not decoded:
        raise ResponseFormatError(
            "response body is not valid JSON",
            expected="a JSON object",
            request_id=response.request_id,
            model=model,
        )
    # Decoded: free the body before ``parse`` decodes inline images, or a base64 answer's
    # megabytes would be held as bytes, as text and as image at once.
    response.body = b""
    del body
    if parse is None:
        return data, data
    try:
        return data, parse(data)
    except ResponseFormatError as exc:  # the adapter knows what it expected, not the context
        raise ResponseFormatError(
            exc.message, expected=exc.expected, request_id=response.request_id, model=model
        ) from None


def _image_type(response: Response, model: str) -> str:
    """The MIME type of downloaded image bytes; a ResponseFormatError for anything else.
    The bytes decide, whatever the Content-Type claims (an HTML page is never an image).
    """
    mime = image_type(response.body)
    if mime is None:
        claimed = response.content_type or "no Content-Type"
        raise ResponseFormatError(
            f"downloaded file is not a PNG, JPEG, WebP or GIF image (claimed {claimed})",
            expected="image bytes",
            request_id=response.request_id,
            model=model,
        )
    return mime


_MODERATION_HINTS = ("moderat", "content_policy", "safety", "nsfw", "sensitive")


def _error_fields(body: object, text: str, reason: str) -> tuple[str, str | None]:
    """(message, code) from an OpenAI-style ``{"error": {...}}`` body, or the best available."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg") or reason
            code = error.get("code") or error.get("type")
            return str(message), (str(code) if code is not None else None)
        if isinstance(error, str) and error:
            return error, None
        message = body.get("message") or body.get("detail")
        if isinstance(message, str) and message:
            code = body.get("code")
            return message, (str(code) if code is not None else None)
    snippet = " ".join(text.split())[:200]
    return (snippet or reason or "error without a body"), None


def error_for_response(
    *,
    status: int,
    body: object,
    text: str,
    reason: str,
    request_id: str | None,
    retry_after: float | None,
    model: str | None,
) -> AIHubMixError:
    """The typed error for an error answer (status >= 400, or 200 with an ``error`` body)."""
    message, code = _error_fields(body, text, reason)
    message = cap_message(message)
    lowered = f"{code or ''} {message}".lower()
    if status in (200, 400, 422) and any(hint in lowered for hint in _MODERATION_HINTS):
        return ContentPolicyError(
            message, status_code=status, code=code, request_id=request_id, model=model
        )
    common = {"status_code": status, "code": code, "request_id": request_id, "model": model}
    if status == 429 or (status == 200 and "rate limit" in lowered):
        return RateLimitError(message, retry_after=retry_after, **common)  # type: ignore[arg-type]
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, APIStatusError)
    return cls(message, **common)  # type: ignore[arg-type]


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PermissionDeniedError,
    403: PermissionDeniedError,
    404: NotFoundError,
}
