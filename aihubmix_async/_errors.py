"""The exception tree: every error the SDK raises is an :class:`AIHubMixError`.

::

    AIHubMixError
    ├── ConfigurationError          missing key, closed client, wrong event loop
    ├── InvalidRequestError         (also ValueError) bad model / parameter, raised before sending
    ├── ProviderLoadError           a third-party adapter entry point failed to load
    ├── APIStatusError              error answer: status, message, code, request id
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401
    │   ├── PermissionDeniedError       402 / 403 (also exhausted quota)
    │   ├── NotFoundError               404
    │   ├── RateLimitError              429 (retry_after)
    │   └── ServerError                 5xx
    ├── TransportError              the exchange itself failed
    │   ├── ConnectError                no connection was made (nothing was sent)
    │   └── RequestTimeout              (also TimeoutError)
    ├── ResponseFormatError         a body the SDK cannot parse (what was expected)
    ├── BatchAbortedError           a batch's breaker: the server refused everything too long
    └── GenerationFailedError       the provider accepted the job but produced no image
        └── ContentPolicyError          rejected by moderation

Messages are built from the fields; none of them ever contains the API key (a server that
echoes it back is redacted by :func:`redact_secret`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

__all__ = [
    "AIHubMixError",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "BatchAbortedError",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "GenerationFailedError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderLoadError",
    "RateLimitError",
    "RequestTimeout",
    "ResponseFormatError",
    "ServerError",
    "TransportError",
    "cli_wording",
    "redact_secret",
]

#: Where a hint sends the reader, in the words of each front end: the library's calls, or the
#: command line's commands. A FastAPI body carries the bare message (no hint).
Hint = Literal["models"]
_HINTS: dict[str, dict[Hint, str]] = {
    "python": {"models": "Client.models() lists them all"},
    "cli": {"models": "aihubmix-async models lists them all"},
}
#: The front end in use. Process-wide, not a context variable: the command line reads its
#: input in plain threads, which do not inherit context.
_wording = ["python"]


@contextlib.contextmanager
def cli_wording() -> Iterator[None]:
    """Within it (the command line), error hints name commands instead of Python calls."""
    previous = _wording[0]
    _wording[0] = "cli"
    try:
        yield
    finally:
        _wording[0] = previous


class AIHubMixError(Exception):
    """Root of every error raised by aihubmix_async."""

    message: str
    request_id: str | None
    model: str | None

    def __init__(
        self, message: str, *, request_id: str | None = None, model: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.model = model

    def _details(self) -> list[str]:
        details = []
        if self.model:
            details.append(f"model={self.model}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        return details

    def __str__(self) -> str:
        details = self._details()
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keep errors picklable (multiprocessing, pytest-xdist) despite keyword-only fields.
        return (_rebuild, (type(self), self.__dict__.copy(), self.args))


def _rebuild(
    cls: type[AIHubMixError], state: dict[str, object], args: tuple[object, ...]
) -> object:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigurationError(AIHubMixError):
    """The client is not usable as configured (no API key, closed, used on another loop)."""


class InvalidRequestError(AIHubMixError, ValueError):
    """A request the SDK refuses to send: unknown model, unknown or invalid parameter.

    ``hint`` (e.g. ``"models"``) points to where the valid choices are listed; ``str()`` words
    it for the front end in use (``Client.models()``, or ``aihubmix-async models`` in the
    command line), while :attr:`message` stays free of either.
    """

    field: str | None
    hint: Hint | None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        model: str | None = None,
        hint: Hint | None = None,
    ) -> None:
        super().__init__(message, model=model)
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        hint = getattr(self, "hint", None)  # errors unpickled from before the field existed
        if hint:
            text = f"{text} ({_HINTS[_wording[0]][hint]})"
        details = self._details()
        return f"{text} ({', '.join(details)})" if details else text


class ProviderLoadError(AIHubMixError):
    """A provider adapter registered through an entry point could not be loaded."""


class APIStatusError(AIHubMixError):
    """The API answered with an error status (or HTTP 200 with an ``{"error": ...}`` body)."""

    status_code: int
    code: str | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, model=model)
        self.status_code = status_code
        self.code = code

    def _details(self) -> list[str]:
        details = [f"status={self.status_code}"]
        if self.code:
            details.append(f"code={self.code}")
        return details + super()._details()


class BadRequestError(APIStatusError):
    """HTTP 400: the upstream provider refused the parameters."""


class AuthenticationError(APIStatusError):
    """HTTP 401: missing or invalid API key."""


class PermissionDeniedError(APIStatusError):
    """HTTP 402/403: insufficient quota, suspended account, or key not allowed for the model."""


class NotFoundError(APIStatusError):
    """HTTP 404: unknown route, model or task."""


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        code: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, code=code, request_id=request_id, model=model
        )
        self.retry_after = retry_after

    def _details(self) -> list[str]:
        details = super()._details()
        if self.retry_after is not None:
            details.append(f"retry_after={self.retry_after:g}s")
        return details


class ServerError(APIStatusError):
    """HTTP 5xx: the gateway or the upstream provider failed."""


class TransportError(AIHubMixError):
    """The HTTP exchange failed before a complete answer arrived.

    ``request_sent`` tells whether the request may have reached the server: a generation whose
    request was sent may have been billed, so it is not resent unless the caller opted in.
    """

    request_sent: bool

    def __init__(
        self,
        message: str,
        *,
        request_sent: bool = True,
        request_id: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, model=model)
        self.request_sent = request_sent


class ConnectError(TransportError):
    """No connection could be made: nothing was sent, so a retry is always safe."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message, request_sent=False, model=model)


class RequestTimeout(TransportError, TimeoutError):  # noqa: N818
    """The request, a poll deadline or a download took longer than allowed."""


class ResponseFormatError(AIHubMixError):
    """The server's answer could not be parsed. ``expected`` says what the SDK looked for."""

    expected: str

    def __init__(
        self,
        message: str,
        *,
        expected: str,
        request_id: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, model=model)
        self.expected = expected

    def _details(self) -> list[str]:
        return [f"expected {self.expected}", *super()._details()]


class BatchAbortedError(AIHubMixError):
    """A batch stopped early: the server answered nothing but 429 for ``refusing_for`` seconds
    (``give_up_after``), or refused the API key (401; ``refusing_for`` is 0). Raised from the
    outcome stream once the items already running are delivered; items never started count in
    ``summary.not_started``.
    """

    refusing_for: float

    def __init__(self, message: str, *, refusing_for: float, model: str | None = None) -> None:
        super().__init__(message, model=model)
        self.refusing_for = refusing_for


class GenerationFailedError(AIHubMixError):
    """The provider accepted the request but the generation failed."""

    status_code: int | None
    code: str | None
    task_id: str | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, model=model)
        self.status_code = status_code
        self.code = code
        self.task_id = task_id

    def _details(self) -> list[str]:
        details = []
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.code:
            details.append(f"code={self.code}")
        if self.task_id:
            details.append(f"task_id={self.task_id}")
        return details + super()._details()


class ContentPolicyError(GenerationFailedError):
    """The prompt or the image was rejected by moderation."""


_REDACTED = "***"
#: The most of a server's own message an error keeps: a hostile 2 MB message must not flood
#: ``str(exc)``, logs and the command line.
MAX_MESSAGE_CHARS = 2000


def cap_message(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE_CHARS`, saying how much was left out."""
    extra = len(message) - MAX_MESSAGE_CHARS
    return message if extra <= 0 else f"{message[:MAX_MESSAGE_CHARS]}… ({extra} more characters)"


def redact_text(text: str | None, secret: str | None) -> str | None:
    """``text`` with ``secret`` (the API key) replaced: for what a server echoes back."""
    return text.replace(secret, _REDACTED) if text and secret and secret in text else text


def redact_secret(error: AIHubMixError, secret: str | None) -> AIHubMixError:
    """Remove ``secret`` (the API key) from every text of ``error``, in place: a server may
    echo the request's ``Authorization`` header in its error message.
    """
    if not secret:
        return error
    for name, value in vars(error).items():
        if isinstance(value, str) and secret in value:
            setattr(error, name, value.replace(secret, _REDACTED))
    error.args = tuple(
        a.replace(secret, _REDACTED) if isinstance(a, str) else a for a in error.args
    )
    return error
