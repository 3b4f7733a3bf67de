"""Frozen public values: what a generation returns and what the registry describes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio.to_thread
import attrs

from ._types import JSONValue

__all__ = [
    "CallStats",
    "GeneratedImage",
    "ImageResult",
    "ModelInfo",
    "ParamInfo",
    "RequestEvent",
    "ResponseEvent",
    "Usage",
    "extension_for",
    "sniff_mime_type",
    "write_atomic",
]

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def sniff_mime_type(data: bytes, fallback: str | None = None) -> str:
    """The image type by its magic bytes; the server's claim only when the bytes don't say."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if fallback:
        fallback = fallback.lower()
        return fallback if "/" in fallback else f"image/{'jpeg' if fallback == 'jpg' else fallback}"
    return "application/octet-stream"


def extension_for(mime_type: str) -> str:
    """File extension (with the dot) for a MIME type; ``.bin`` when unknown."""
    return _EXTENSIONS.get(mime_type, ".bin")


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a temporary name in the same folder, then rename: never a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(path: Path, data: bytes, name: str) -> Path:
    if path.is_dir():
        path = path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path


@attrs.frozen(kw_only=True)
class GeneratedImage:
    """One image. ``data`` is empty when it was not downloaded (``download=False``)."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    mime_type: str
    url: str | None = None

    @property
    def extension(self) -> str:
        """File extension for :attr:`mime_type`, e.g. ``.png``."""
        return extension_for(self.mime_type)

    async def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image atomically (temporary name, then rename) in a worker thread.

        A directory path gets a file name chosen by content type. Returns the written path.
        """
        if not self.data:
            raise ValueError("image was not downloaded (download=False); nothing to save")
        name = f"image{self.extension}"
        return await anyio.to_thread.run_sync(_save, Path(path), self.data, name)


@attrs.define
class CallStats:
    """Per-generation bookkeeping: HTTP requests made, retries among them, the task id."""

    requests: int = 0
    retries: int = 0
    #: The server's task id once a submit answered one (or the resumed task's id).
    task_id: str | None = None

    @property
    def attempts(self) -> int:
        """Tries of the generation: 0 if nothing was sent, else 1 + retries."""
        return 1 + self.retries if self.requests else 0


@attrs.frozen(kw_only=True)
class Usage:
    """Token usage as reported by the server (gpt-image models)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


@attrs.frozen(kw_only=True)
class ImageResult:
    """The result of one generation.

    ``raw`` is the parsed response body, except that inline base64 images are replaced by a
    short marker once decoded into :attr:`images` (so a result does not hold them twice).
    """

    model: str
    images: tuple[GeneratedImage, ...]
    usage: Usage | None = None
    request_id: str | None = None
    task_id: str | None = None
    raw: JSONValue = attrs.field(default=None, repr=False, eq=False)

    @property
    def image(self) -> GeneratedImage:
        """The first image (every successful result has at least one)."""
        return self.images[0]


@attrs.frozen(kw_only=True)
class RequestEvent:
    """Passed to ``Client(on_request=...)`` before every HTTP attempt (for metrics, tracing).

    ``url`` is scheme, host and path only: signed query strings are left out.
    """

    method: str
    url: str
    model: str
    attempt: int


@attrs.frozen(kw_only=True)
class ResponseEvent:
    """Passed to ``Client(on_response=...)`` after every HTTP attempt, failed ones included."""

    method: str
    url: str
    model: str
    attempt: int
    status: int | None
    request_id: str | None
    elapsed: float
    error: Exception | None = None


@attrs.frozen(kw_only=True)
class ParamInfo:
    """One parameter a model family accepts."""

    name: str
    type: str
    choices: tuple[str | int, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


@attrs.frozen(kw_only=True)
class ModelInfo:
    """A model the registry knows: the path it is sent as, its aliases and its parameters."""

    name: str
    path: str
    family: str
    aliases: tuple[str, ...] = ()
    params: tuple[ParamInfo, ...] = ()
    asynchronous: bool = False
    route: str = "predictions"
