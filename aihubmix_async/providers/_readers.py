"""Tolerant response readers: every image in a body, in the places the sources document.

Pure code: a reader either returns what it found or raises ResponseFormatError.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from .._converter import converter
from .._errors import ResponseFormatError
from .._models import Usage
from .._types import JSONValue
from ._wire import RawImage

__all__ = [
    "B64_KEYS",
    "decode_base64_image",
    "elide_inline_images",
    "first_string",
    "read_images",
    "read_usage",
]

B64_KEYS = ("b64_json", "bytesBase64", "bytesBase64Encoded", "base64", "b64", "image_base64")
_URL_KEYS = ("url", "image_url", "uri", "content_url", "sample")


def decode_base64_image(text: str, mime_type: str | None, expected: str) -> RawImage:
    """Decode a base64 string or a ``data:`` URI into image bytes."""
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        mime_type = header[5:].split(";")[0] or mime_type
    try:
        # Strict a2b reads the str in place: no ASCII copy of megabytes of text and no
        # validating regex over it. What it refuses goes the long way, which decides.
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ResponseFormatError("image is not valid base64", expected=expected) from None
    if not data:
        raise ResponseFormatError("image data is empty", expected=expected)
    return RawImage(data=data, mime_type=mime_type)


def _from_string(value: str, expected: str) -> RawImage:
    if value.startswith(("http://", "https://")) or "://" in value[:16]:
        return RawImage(url=value)
    return decode_base64_image(value, None, expected)


def _from_dict(item: Mapping[str, JSONValue], expected: str) -> list[RawImage]:
    mime = item.get("mimeType") or item.get("mime_type")
    mime = mime if isinstance(mime, str) else None
    for key in _URL_KEYS:  # URL answers are the common case: look for them first
        value = item.get(key)
        if isinstance(value, str) and value:
            return [RawImage(url=value, mime_type=mime)]
    for key in B64_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value:
            return [decode_base64_image(value, mime, expected)]
        if isinstance(value, list) and value:  # gpt-image: "b64_json": [{"bytesBase64": ...}]
            return _from_list(value, expected)
    images: list[RawImage] = []
    for key in ("urls", "images", "files", "data"):
        value = item.get(key)
        if isinstance(value, list):
            images += _from_list(value, expected)
    if images:
        return images
    result = item.get("result")
    if isinstance(result, dict):
        return _from_dict(result, expected)
    return []


def _from_item(item: JSONValue, expected: str) -> list[RawImage]:
    # Objects first: the common answer is a list of them, and this runs once per image.
    if isinstance(item, dict):
        return _from_dict(item, expected)
    if isinstance(item, str):
        return [_from_string(item, expected)]
    if isinstance(item, list):
        return _from_list(item, expected)
    raise ResponseFormatError(f"unexpected image entry {type(item).__name__}", expected=expected)


def _from_list(items: list[JSONValue], expected: str) -> list[RawImage]:
    if len(items) == 1:  # one image per answer is the common case: no list to grow
        return _from_item(items[0], expected)
    images: list[RawImage] = []
    for item in items:
        images += _from_item(item, expected)
    return images


def read_images(body: JSONValue, expected: str) -> tuple[RawImage, ...]:
    """Every image in a response body, in the documented places, in order.

    Accepted: ``output`` as a list (URL strings, ``{url}``, ``{b64_json}``, ``{bytesBase64}``)
    or as an object (``b64_json[]``, ``urls[]``, ``files[].uri``); OpenAI-compatible ``data[]``;
    BFL ``result.sample``; Google's native Imagen form ``predictions[].bytesBase64Encoded`` (+
    ``mimeType``); top-level ``url`` / ``urls`` / ``image`` / ``image_url``.
    """
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"response is a JSON {type(body).__name__}, not an object", expected=expected
        )
    images: list[RawImage] = []
    for key in ("output", "data", "result", "predictions"):
        value = body.get(key)
        if value is not None:
            images += _from_item(value, expected)
    if not images:
        for key in ("urls", "url", "image_url", "image", "images"):
            value = body.get(key)
            if isinstance(value, str | list) and value:
                images.extend(_from_item(value, expected))
    return tuple(images)


def elide_inline_images(body: JSONValue) -> JSONValue:
    """Replace decoded base64 image strings in a parsed body by a short marker, in place.

    The decoded bytes live in ``ImageResult.images``; keeping the ~3 MB text too would double
    the memory every result holds (measured: 1.96x raw aiohttp's peak RSS on 2 MB images).
    Gemini's ``inlineData.data`` and its large ``thoughtSignature`` are elided the same way.
    """
    if isinstance(body, dict):
        for key, value in body.items():
            if key in _ELIDED and isinstance(value, str) and len(value) > _ELIDE_OVER:
                body[key] = f"<{len(value)} base64 characters, decoded into ImageResult.images>"
            elif isinstance(value, dict | list):
                elide_inline_images(value)
    elif isinstance(body, list):
        for item in body:
            if isinstance(item, dict | list):
                elide_inline_images(item)
    return body


_ELIDED = frozenset((*B64_KEYS, "data", "thoughtSignature"))
_ELIDE_OVER = 256  # characters: longer strings under those keys are inline images


def read_usage(body: JSONValue) -> Usage | None:
    if not isinstance(body, dict) or not isinstance(body.get("usage"), dict):
        return None
    return converter.structure(body["usage"], Usage)


def first_string(mapping: Mapping[str, JSONValue], *keys: str) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None
