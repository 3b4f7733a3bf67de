"""Image inputs for image-to-image and edits: one type for every form a caller has at hand."""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import Any

import attrs

from ._errors import InvalidRequestError
from ._models import sniff_mime_type
from .providers._wire import RawImage

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "ImageInput", "encode_image_param"]

#: Upstream providers accept reference images of up to ~20 MB.
DEFAULT_MAX_INPUT_BYTES = 20 * 1024 * 1024


@attrs.frozen(kw_only=True)
class ImageInput:
    """An input image: a URL passed through as is, or bytes sent inline (base64 / data URI).

    Build one with :meth:`of` from a file path, bytes, a binary file object, an ``http(s)`` URL,
    a ``data:`` URI, a bare base64 string or a Pillow image; or pass any of those directly as an
    image parameter.

    A string that is neither a URL nor a ``data:`` URI is bare base64 when it decodes (strictly;
    line breaks allowed) to PNG, JPEG, WebP or GIF bytes, and a file path otherwise: no file path
    decodes to an image's magic bytes, so the two cannot be confused.
    """

    url: str | None = None
    data: bytes | None = attrs.field(default=None, repr=lambda d: f"<{len(d or b'')} bytes>")
    mime_type: str | None = None

    @classmethod
    def of(cls, value: Any, *, max_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> ImageInput:
        """Read ``value`` (may touch the file system: call from a thread in async code)."""
        if isinstance(value, ImageInput):
            return value
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return cls(url=value)
        return cls._checked(_bytes_of(value, max_bytes), max_bytes)

    @classmethod
    def _checked(cls, data: bytes, max_bytes: int) -> ImageInput:
        if len(data) > max_bytes:
            raise InvalidRequestError(
                f"input image is larger than {max_bytes} bytes", field="image"
            )
        mime = sniff_mime_type(data)
        if not mime.startswith("image/"):
            raise InvalidRequestError("input is not a PNG, JPEG, WebP or GIF image", field="image")
        return cls(data=data, mime_type=mime)

    def to_wire(self, encoding: str) -> str:
        """The string a family expects: the URL, else a ``data:`` URI or bare base64."""
        if self.url is not None:
            return self.url
        if self.data is None:
            raise InvalidRequestError("an ImageInput needs a url or data", field="image")
        text = base64.b64encode(self.data).decode()
        return text if encoding == "base64" else f"data:{self.mime_type};base64,{text}"


def _bytes_of(value: Any, max_bytes: int) -> bytes:
    """The bytes of any input but an http(s) URL (at most ``max_bytes + 1`` from a file)."""
    if isinstance(value, str):
        if value.startswith("data:"):
            return _decode_data_uri(value)
        data = _decode_bare_base64(value)
        return _read_path(value, max_bytes) if data is None else data
    if isinstance(value, os.PathLike):
        return _read_path(os.fspath(value), max_bytes)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if hasattr(value, "read"):
        data = value.read(max_bytes + 1)
        if not isinstance(data, bytes):
            raise InvalidRequestError("image file objects must be opened in binary mode")
        return data
    if type(value).__module__.startswith("PIL.") and hasattr(value, "save"):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    raise InvalidRequestError(
        f"unsupported image input {type(value).__name__}: give a path, bytes, a binary file,"
        " an http(s) URL, a data: URI or a Pillow image"
    )


#: Longer strings are not file paths (PATH_MAX is 4096 on Linux): base64 that is not an image.
_MAX_PATH = 4096
#: The base64 of the smallest image is longer: a shorter string is a (short) path.
_MIN_IMAGE_BASE64 = 16
_SHOWN = 60  # characters of a refused value quoted in the error (never a whole base64 blob)


def _decode_bare_base64(text: str) -> bytes | None:
    """The image bytes of a bare base64 string, or None when it is not base64 of an image."""
    if len(text) < _MIN_IMAGE_BASE64:
        return None
    compact = "".join(text.split())  # ``base64`` tools wrap lines at 76 characters
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if sniff_mime_type(data).startswith("image/"):
        return data
    if len(text) > _MAX_PATH:
        raise InvalidRequestError(
            f"input image {_shown(text)} is neither a file path nor base64 of a PNG, JPEG, WebP"
            " or GIF image"
        )
    return None


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _read_path(path: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of the file: enough to refuse an oversize one without
    reading it whole (a huge file, a device or a FIFO that never ends).
    """
    try:
        with Path(path).open("rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot read input image {_shown(path)}: {exc.strerror}"
            " (not an http(s) URL, data: URI or base64 image either)"
        ) from None


def _decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise InvalidRequestError("data: URIs for images must be base64-encoded", field="image")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("data: URI is not valid base64", field="image") from None


def _is_wire_ready(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://", "data:"))


def encode_image_param(value: Any, encoding: str, max_bytes: int) -> Any:
    """Turn an image parameter (one image or a list) into the family's wire form: a URL, a
    data URI or bare base64 string, or (encoding "file") the bytes to upload as a RawImage.
    """
    if isinstance(value, list | tuple):
        return [encode_image_param(item, encoding, max_bytes) for item in value]
    if encoding == "data_uri" and _is_wire_ready(value):
        return value
    if value == "":  # the docs' examples send refer_image "" for "no reference image"
        return value
    image = ImageInput.of(value, max_bytes=max_bytes)
    if encoding == "file":  # the adapter uploads local bytes itself (multipart)
        if image.url is not None:
            return image.url
        return RawImage(data=image.data, mime_type=image.mime_type)
    return image.to_wire(encoding)
