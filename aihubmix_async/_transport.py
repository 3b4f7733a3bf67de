"""The HTTP layer: the only module that imports aiohttp.

It sends one request and returns status, headers and body, and maps every aiohttp / asyncio
failure to the SDK's errors, so error semantics live in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import (
    AIHubMixError,
    ConnectError,
    InvalidRequestError,
    RequestTimeout,
    ResponseFormatError,
    TransportError,
)

__all__ = ["Response", "Transport", "prepared_headers"]

_CHUNK = 256 * 1024


def prepared_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` in aiohttp's own form, for headers sent again and again: aiohttp merges a
    case-insensitive multidict as is, where a plain dict is converted on every request
    (measured: ~4 us a request).
    """
    return CIMultiDictProxy(CIMultiDict(headers))


class Response:
    """Status, headers and body of one exchange (a plain slotted class: built per request)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self, *, status: int, reason: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body=<{len(self.body)} bytes>)"

    @property
    def request_id(self) -> str | None:
        for name in ("x-request-id", "request-id", "x-tid", "tid"):
            value = self.headers.get(name)
            if value:
                return value
        return None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class Transport:
    """Owns (or borrows) one aiohttp ``ClientSession``."""

    def __init__(self, session: aiohttp.ClientSession, *, owned: bool) -> None:
        self._session = session
        self._owned = owned
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    @classmethod
    def create(cls, *, max_connections: int) -> Transport:
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
        session = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=True, raise_for_status=False
        )
        return cls(session, owned=True)

    @classmethod
    def borrow(cls, session: object) -> Transport:
        if not isinstance(session, aiohttp.ClientSession):
            raise InvalidRequestError(
                f"session must be an aiohttp.ClientSession, got {type(session).__name__}",
                field="session",
            )
        return cls(session, owned=False)

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def aclose(self) -> None:
        if self._owned and not self._session.closed:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float,  # noqa: ASYNC109 - aiohttp enforces it per request
        max_bytes: int,
        allow_redirects: bool = False,
        exact_url: bool = False,
        model: str | None = None,
    ) -> Response:
        """Send one request; every failure becomes an SDK error naming ``model``.

        ``exact_url`` sends the URL byte for byte as given (signed image URLs: re-encoding
        ``%3A`` to ``:`` breaks their signature). No aiohttp exception rides along in the SDK
        error's ``__context__``: some (``TooManyRedirects``) hold the request headers.
        """
        if exact_url:
            target = _exact(url)
        else:
            try:
                target = _parsed(url)  # API URLs repeat: parsed once (no helper call per request)
            except ValueError:
                target = url  # aiohttp refuses it with its own error, mapped like any other
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 30.0))
            self._timeouts[timeout] = client_timeout
        failure: AIHubMixError
        try:
            async with self._session.request(
                method,
                target,
                headers=headers,
                data=body,
                timeout=client_timeout,
                allow_redirects=allow_redirects,
            ) as resp:
                length = resp.content_length
                # Content-Length counts the bytes on the wire: of a compressed body it says
                # nothing about the decoded size, which is what the cap is about.
                if (
                    length is not None
                    and length <= max_bytes
                    and ("Content-Encoding" not in resp.headers or _identity(resp))
                ):
                    data = await resp.read()  # the common case, without another coroutine layer
                else:
                    data = await _read_capped(resp, max_bytes, model)
                return Response(
                    status=resp.status,
                    reason=resp.reason or "",
                    headers=resp.headers,
                    body=data,
                )
        except AIHubMixError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failure = _error_for(exc, method, url, timeout, model)
        # Raised outside the except block, so the aiohttp exception is not its __context__.
        raise failure


def _exact(url: str) -> str | yarl.URL:
    """A URL sent byte for byte (signed image URLs), when already fit for the wire; one with
    spaces or non-ASCII characters is left to yarl to encode (sent raw: a malformed request
    line).
    """
    if url.isascii() and url.isprintable() and " " not in url:
        return yarl.URL(url, encoded=True)
    return url


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> yarl.URL:
    """A URL parsed once: submit and poll URLs repeat, and parsing costs ~2 us a request."""
    return yarl.URL(url)


def _error_for(  # noqa: PLR0911
    exc: BaseException, method: str, url: str, timeout: float, model: str | None
) -> AIHubMixError:
    """The SDK error for an aiohttp / asyncio failure (order matters: subclasses first)."""
    host = _host(url)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return RequestTimeout(f"timed out connecting to {host}", request_sent=False, model=model)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return RequestTimeout(f"{method} {host} timed out after {timeout:g}s", model=model)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect to {host}: {exc.os_error}", model=model)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return InvalidRequestError(f"invalid URL for {method}: {host}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"response body from {host} was cut off", model=model)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError(f"{host} closed the connection before answering", model=model)
    return TransportError(f"{method} {host} failed: {type(exc).__name__}", model=model)


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, model: str | None) -> bytes:
    """Read the body, refusing one larger than ``max_bytes`` without buffering it whole.

    The count is of decoded bytes (aiohttp inflates gzip/deflate/br in bounded steps as the
    stream is read), so a small compressed body inflating to gigabytes stops at the cap.
    """
    length = resp.content_length
    if length is not None and _identity(resp):
        if length > max_bytes:
            raise _too_large(max_bytes, model)
        return await resp.read()
    chunks = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        chunks += chunk
        if len(chunks) > max_bytes:
            raise _too_large(max_bytes, model)
    return bytes(chunks)


def _identity(resp: aiohttp.ClientResponse) -> bool:
    """Whether the body arrives as sent: no Content-Encoding for aiohttp to decode."""
    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    return encoding in ("", "identity")


def _too_large(max_bytes: int, model: str | None) -> ResponseFormatError:
    return ResponseFormatError(
        "response body is larger than max_response_bytes",
        expected=f"a body of at most {max_bytes} bytes",
        model=model,
    )


def _host(url: str) -> str:
    # Never echo full URLs (they may carry signed query strings); the host is enough to act on.
    # Never the userinfo either (user:password@ is a credential).
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "?"
    return netloc.rpartition("@")[2] or "?"
