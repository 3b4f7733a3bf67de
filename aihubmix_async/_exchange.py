"""One HTTP exchange and everything around it: the concurrency limit, the client-wide pause
after a 429, retries, hooks and logging. What an answer means (a value or a typed error) is
decided in one place, :func:`._answers.interpret`.

The generation layer above it decides what to send where (and with which headers); the
transport below it moves bytes. Nothing here knows about models, adapters or the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio

from ._adaptive import AdaptiveLimiter, Gate
from ._answers import IMAGE, interpret
from ._config import RetryPolicy
from ._errors import AIHubMixError, RateLimitError, redact_secret, redact_text
from ._events import DEFAULT_HOOK_TIMEOUT, call_hook
from ._models import CallStats, Phase, RequestEvent, ResponseEvent
from ._retry import backoff_delay, is_testing, retry_sleep, should_retry
from ._transport import Response, Transport
from ._types import JSONValue

__all__ = ["IMAGE", "AttemptTracer", "Exchange", "logger"]

logger = logging.getLogger("aihubmix_async")

#: What a request hook's log lines name: the model and request id.
_WHERE = "model=%s, request_id=%s"


def _redact(url: str) -> str:
    """scheme://host/path: query strings of signed image URLs (and any user:password@) stay
    out of hooks and logs.
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _log_retry(
    method: str, url: str, model: str, exc: AIHubMixError, attempt: int, delay: float
) -> None:
    logger.info(
        "retrying %s %s after %s (model=%s, request_id=%s, attempt=%d, wait=%.2fs)",
        method, urlsplit(url).path, type(exc).__name__, model, exc.request_id, attempt, delay,
    )  # fmt: skip


def _log_exchange(
    method: str, url: str, model: str, response: Response, attempt: int, request_id: str | None
) -> None:
    logger.debug(
        "%s %s -> %s (model=%s, request_id=%s, attempt=%d)",
        method, urlsplit(url).path, response.status, model, request_id, attempt,
    )  # fmt: skip


class Exchange:
    """Sends one request (with retries) under the client's concurrency limit.

    ``ready`` returns the open transport (opening lazily, checking the loop); it is the only
    thing the exchange needs from the client.
    """

    def __init__(
        self,
        *,
        ready: Callable[[], Transport],
        max_concurrency: int,
        timeout: float,
        max_response_bytes: int,
        retry: RetryPolicy,
        secret: str | None = None,
        on_request: Callable[[RequestEvent], object] | None,
        on_response: Callable[[ResponseEvent], object] | None,
        adaptive: AdaptiveLimiter | None = None,
        hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT,
    ) -> None:
        self.ready = ready
        #: The client's adaptive limit (``concurrency="auto"``): gates API requests, not
        #: downloads, and hears each answer's status; a no-op while no auto batch runs.
        self.adaptive = adaptive or AdaptiveLimiter(max_concurrency)
        # Not anyio's limiter (it yields to the loop even when a place is free: ~10 us per
        # request) nor asyncio's Semaphore (three coroutines per request): see Gate.
        self._gate = Gate(max_concurrency)
        self._timeout = timeout
        self._max_bytes = max_response_bytes
        self._retry = retry
        #: Redacted from every error: a server may echo the Authorization header back.
        self._secret = secret
        self._on_request = on_request
        self._on_response = on_response
        #: Seconds an async hook may run (``Client(hook_timeout=)``); a batch's progress
        #: hook gets the same.
        self.hook_timeout = hook_timeout
        self._tracer: AttemptTracer | None = None
        self._hooked = on_request is not None or on_response is not None
        #: Monotonic time until which every request waits (a 429 with Retry-After pauses the
        #: whole key).
        self._paused_until = 0.0
        #: Monotonic time of the first 429 since the last answer that was not one (None: the
        #: last answer was not a 429). A batch's breaker reads it through refusing_for().
        self._refused_since: float | None = None

    def request_id(self, response: Response) -> str | None:
        """The answer's request id, the API key redacted (a server may echo the header)."""
        return redact_text(response.request_id, self._secret)

    def refusing_for(self) -> float:
        """Seconds the server has answered nothing but 429 to this client (0 if it is not)."""
        since = self._refused_since
        return 0.0 if since is None else anyio.current_time() - since

    async def call(  # noqa: C901, PLR0912, PLR0915 - one frame on purpose (see below)
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        billed: bool,
        model: str,
        stats: CallStats,
        parse: Callable[[Any], Any] | None = None,
        max_bytes: int | None = None,
    ) -> tuple[Response, JSONValue, Any]:
        """(response, decoded JSON, what ``parse`` made of it): see :func:`interpret`. A billed
        request is resent only when the server surely did not process it. ``max_bytes``: a
        tighter bound on the body than the client's ``max_response_bytes``.

        Over 50 lines on purpose: the retry loop and the one HTTP await stay in this frame (no
        helper coroutine to re-enter on every resume); everything else is in sync helpers.
        """
        transport = self.ready()
        gate, adaptive = self._gate, self.adaptive
        policy = self._retry
        hooked = self._hooked
        attempt = 0
        while True:
            attempt += 1
            stats.requests += 1
            if hooked:
                # "submit" is the one billed request of a generation; IMAGE fetches files.
                phase: Phase = "submit" if billed else "download" if parse is IMAGE else "poll"
                context = _Attempt(method, _redact(url), model, attempt, phase, stats)
                await self._emit_request(context)
            try:
                if self._paused_until:
                    await self._wait_if_paused()
                # The adaptive limit (when a batch engaged it) gates API requests, then the
                # client's own limit gates every request: both without a coroutine when free.
                governed = adaptive.engaged_count > 0 and parse is not IMAGE
                epoch = await adaptive.acquire() if governed else 0
                status: int | None = None
                try:
                    if gate.free:
                        gate.free -= 1
                    else:
                        await gate.wait()
                    try:
                        response = await transport.request(
                            method,
                            url,
                            headers=headers,
                            body=body,
                            timeout=self._timeout,
                            max_bytes=self._max_bytes if max_bytes is None else max_bytes,
                            # Image hosts may redirect (aiohttp drops Authorization when the
                            # origin changes); API calls never follow redirects.
                            allow_redirects=parse is IMAGE,
                            exact_url=parse is IMAGE,  # signed URLs: sent exactly as received
                            model=model,
                        )
                    finally:
                        gate.release()
                    status = response.status
                finally:
                    if governed:
                        adaptive.release(epoch, status)
                data, value = interpret(response, model, parse)
            except AIHubMixError as exc:
                self._note_refusal(exc)
                if self._secret:
                    redact_secret(exc, self._secret)
                if hooked:
                    await self._emit_response(context, None, exc)
                delay = self._retry_delay(exc, attempt, billed, policy, stats.waited)
                if delay is None:
                    raise
                _log_retry(method, url, model, exc, attempt, delay)
                stats.retries += 1
                stats.waited += delay
                await retry_sleep(delay)
                continue
            self._refused_since = None
            if hooked:
                await self._emit_response(context, response, None)
            if logger.isEnabledFor(logging.DEBUG):
                _log_exchange(method, url, model, response, attempt, self.request_id(response))
            return response, data, value

    def _note_refusal(self, exc: AIHubMixError) -> None:
        if isinstance(exc, RateLimitError):
            if self._refused_since is None:
                self._refused_since = anyio.current_time()
        elif getattr(exc, "status_code", None) is not None:
            self._refused_since = None  # the server answered something else: not refusing

    def _retry_delay(
        self,
        exc: AIHubMixError,
        attempt: int,
        billed: bool,  # noqa: FBT001
        policy: RetryPolicy,
        waited: float,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to raise ``exc`` now (retries
        used up, not retryable, or the call's ``max_retry_wait`` budget would be passed).
        """
        if attempt > policy.max_retries or not should_retry(exc, billed=billed, policy=policy):
            return None
        if not isinstance(exc, RateLimitError):
            delay = backoff_delay(attempt - 1, policy)
            return delay if waited + delay <= policy.max_retry_wait else None
        hint = exc.retry_after
        delay = hint if hint is not None else backoff_delay(attempt - 1, policy)
        if delay > policy.max_retry_after or waited + delay > policy.max_retry_wait:
            return None
        if hint is not None:
            # The server named a time for the key: pause the whole client, not just this
            # request. A bare 429 backs off only the request that got it (and, under an
            # engaged adaptive limit, has already cut the client's concurrency).
            self._paused_until = max(self._paused_until, anyio.current_time() + delay)
        return delay

    async def _wait_if_paused(self) -> None:
        # Loop: another request may extend the pause while this one sleeps.
        while not is_testing() and (remaining := self._paused_until - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(remaining)

    # --- hooks: observers never break (or bill twice) a request ---------------------------------

    def trace_with(self, tracer: AttemptTracer | None) -> None:
        """Open a span per HTTP attempt through ``tracer`` (see :mod:`aihubmix_async.otel`);
        ``None`` stops tracing.
        """
        self._tracer = tracer
        self._hooked = (
            self._on_request is not None or self._on_response is not None or (tracer is not None)
        )

    async def _emit_request(self, context: _Attempt) -> None:
        stats = context.stats
        event = RequestEvent(
            method=context.method, url=context.url, model=context.model,
            attempt=context.attempt, call_id=stats.call_id, phase=context.phase,
            item_index=stats.item_index, item_id=stats.item_id,
        )  # fmt: skip
        if self._tracer is not None:
            try:
                context.span = self._tracer.start(event)
            except Exception:
                logger.exception("tracer raised; ignored (model=%s)", event.model)
        if self._on_request is not None:
            await call_hook(
                self._on_request, event, "on_request", self.hook_timeout, _WHERE, event.model, None
            )
        context.started = time.perf_counter()  # the HTTP exchange's time, not the hook's

    async def _emit_response(
        self, context: _Attempt, response: Response | None, error: AIHubMixError | None
    ) -> None:
        if response is not None:
            status: int | None = response.status
            request_id = self.request_id(response)
        else:
            status = getattr(error, "status_code", None)
            request_id = getattr(error, "request_id", None)
        stats = context.stats
        event = ResponseEvent(
            method=context.method, url=context.url, model=context.model,
            attempt=context.attempt, status=status, request_id=request_id,
            elapsed=time.perf_counter() - context.started, error=error,
            call_id=stats.call_id, phase=context.phase, item_index=stats.item_index,
            item_id=stats.item_id,
        )  # fmt: skip
        if self._tracer is not None and context.span is not None:
            try:
                self._tracer.end(context.span, event)
            except Exception:
                logger.exception("tracer raised; ignored (model=%s)", event.model)
        if self._on_response is not None:
            await call_hook(
                self._on_response, event, "on_response", self.hook_timeout, _WHERE, event.model,
                request_id,
            )  # fmt: skip


class AttemptTracer(Protocol):
    """Spans for HTTP attempts (implemented by :mod:`aihubmix_async.otel`): ``start`` before
    the request is sent, ``end`` with its answer (or error). Both are called synchronously.
    """

    def start(self, event: RequestEvent) -> object: ...

    def end(self, span: object, event: ResponseEvent) -> None: ...


class _Attempt:
    """One HTTP attempt as the hooks see it (built only when a hook or tracer is set)."""

    __slots__ = ("attempt", "method", "model", "phase", "span", "started", "stats", "url")

    def __init__(
        self, method: str, url: str, model: str, attempt: int, phase: Phase, stats: CallStats
    ) -> None:
        self.method = method
        self.url = url
        self.model = model
        self.attempt = attempt
        self.phase: Phase = phase
        self.stats = stats
        self.span: object = None
        self.started = time.perf_counter()
