"""Wire records: what an adapter asks the client to send, and what it read from an answer.

Pure data plus the multipart encoder; nothing here knows a provider family.
"""

from __future__ import annotations

import enum
import uuid

import attrs

from .. import _json
from .._models import Usage
from .._types import JSONObject

__all__ = ["FormPart", "Parsed", "PreparedRequest", "RawImage", "TaskState", "TaskStatus"]


@attrs.frozen(kw_only=True)
class FormPart:
    """One part of a multipart/form-data body (a field, or a file when ``filename`` is set)."""

    name: str
    value: str | bytes = attrs.field(repr=lambda v: f"<{len(v)}>")
    filename: str | None = None
    content_type: str | None = None


@attrs.frozen(kw_only=True)
class PreparedRequest:
    """What to send: method, path below the base URL, and a JSON body or multipart parts."""

    method: str
    path: str
    json: JSONObject = attrs.field(factory=dict)
    form: tuple[FormPart, ...] = ()
    #: How the key is sent: "bearer" (``Authorization: Bearer <key>``) or "x-goog-api-key".
    auth: str = "bearer"

    def encode(self) -> tuple[bytes, str]:
        """The body bytes and their Content-Type."""
        if not self.form:
            return _json.dumps(self.json), "application/json"
        boundary = f"aihubmix-{uuid.uuid4().hex}"
        chunks: list[bytes] = []
        for part in self.form:
            disposition = f'form-data; name="{part.name}"'
            if part.filename is not None:
                disposition += f'; filename="{part.filename}"'
            head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            if part.content_type:
                head += f"Content-Type: {part.content_type}\r\n"
            value = part.value.encode() if isinstance(part.value, str) else part.value
            chunks += [head.encode(), b"\r\n", value, b"\r\n"]
        chunks.append(f"--{boundary}--\r\n".encode())
        return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


@attrs.frozen(kw_only=True)
class RawImage:
    """An image as found in a response (inline bytes, or a URL still to download), or local
    bytes to upload (what an image parameter with the "file" encoding becomes).
    """

    data: bytes | None = attrs.field(default=None, repr=lambda d: f"<{len(d or b'')} bytes>")
    url: str | None = None
    mime_type: str | None = None


@attrs.frozen(kw_only=True)
class Parsed:
    """A parsed response: images (inline or URLs), usage, or a task handle to poll.

    ``polling_url`` is the upstream (BFL) URL some submit answers carry, kept for diagnostics
    only: the documented way to poll is :meth:`ProviderAdapter.task_path` on the API's own
    tasks host, and the API key must not be sent to a third-party host.
    """

    images: tuple[RawImage, ...] = ()
    usage: Usage | None = None
    task_id: str | None = None
    polling_url: str | None = None


class TaskStatus(enum.Enum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    MODERATED = "moderated"


@attrs.frozen(kw_only=True)
class TaskState:
    status: TaskStatus
    parsed: Parsed = Parsed()
    message: str | None = None
