"""The session manager: :class:`Client` owns (or borrows) one HTTP session and turns a
``generate`` call into submit -> (poll) -> download, with retries, under one concurrency limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from . import _json
from ._batch import Batch, BatchTaskHook, ProgressHook
from ._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    ClientConfig,
    PollPolicy,
    RetryPolicy,
    origin_of,
    resolve_config,
)
from ._errors import (
    AIHubMixError,
    ConfigurationError,
    ContentPolicyError,
    GenerationFailedError,
    InvalidRequestError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    error_for_response,
)
from ._inputs import DEFAULT_MAX_INPUT_BYTES, encode_image_param
from ._models import (
    CallStats,
    GeneratedImage,
    ImageResult,
    ModelInfo,
    RequestEvent,
    ResponseEvent,
    sniff_mime_type,
)
from ._ratelimit import RateLimiter
from ._registry import Registry
from ._retry import backoff_delay, is_testing, parse_retry_after, retry_sleep, should_retry
from ._transport import Response, Transport
from ._types import JSONValue
from .providers import Parsed, ProviderAdapter, RawImage, TaskStatus
from .providers._base import elide_inline_images

__all__ = ["Client"]

_NO_DEADLINE = contextlib.nullcontext()

#: Called with (task_id, request_id) once a submit answered a task id, before polling.
TaskHook = Callable[[str, "str | None"], object]


def _check_rpm(rpm: float | None) -> None:
    if rpm is not None and not (isinstance(rpm, int | float) and 0 < rpm < float("inf")):
        raise InvalidRequestError(f"rpm must be a positive number, got {rpm!r}", field="rpm")


def _redact(url: str) -> str:
    """scheme://host/path: query strings of signed image URLs stay out of hooks and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


logger = logging.getLogger("aihubmix_async")

_USER_AGENT = "aihubmix-async/0.1"


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Client:
    """An asyncio client for AIHubMix image generation.

    Use it as ``async with Client() as client:``; one client per process (or per event loop)
    serves any number of concurrent calls. ``api_key`` falls back to ``AIHUBMIX_API_KEY`` and
    ``base_url`` to ``AIHUBMIX_BASE_URL``. An app-owned ``session`` (an ``aiohttp.ClientSession``)
    is borrowed and never closed.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        tasks_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        session: object | None = None,
        registry: Registry | None = None,
        rpm: float | None = None,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
        on_request: Callable[[RequestEvent], object] | None = None,
        on_response: Callable[[ResponseEvent], object] | None = None,
    ) -> None:
        self._config = resolve_config(
            api_key=api_key,
            base_url=base_url,
            tasks_url=tasks_url,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            max_response_bytes=max_response_bytes,
            retry=retry,
            poll=poll,
        )
        self._registry = registry if registry is not None else Registry.default()
        self._borrowed = session
        self._transport: Transport | None = None
        # asyncio's semaphore: aiohttp pins us to asyncio anyway, and unlike anyio's limiter it
        # does not yield to the loop when a slot is free (measured: ~10 us per request).
        self._limiter: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _State.UNOPENED
        self._paused_until = 0.0
        self._trusted = self._config.trusted_origins()
        self._max_input_bytes = max_input_bytes
        self._on_request = on_request
        self._on_response = on_response
        _check_rpm(rpm)
        #: Generations per minute for the whole client (the limit is per key, not per call).
        self._rate = RateLimiter(rpm) if rpm else None
        api = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if self._config.api_key:
            api["Authorization"] = f"Bearer {self._config.api_key}"
        self._api_get_headers = api
        self._api_post_headers = {**api, "Content-Type": "application/json"}
        self._base_prefixes = (self._config.base_url + "/", self._config.tasks_url + "/")

    def __repr__(self) -> str:
        key = "'sk-***'" if self._config.api_key else "None"
        return (
            f"Client(base_url={self._config.base_url!r}, api_key={key}, state={self._state.value})"
        )

    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def registry(self) -> Registry:
        return self._registry

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        if self._state is not _State.UNOPENED:
            raise ConfigurationError(f"Client cannot be entered twice (it is {self._state.value})")
        self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _open(self) -> Transport:
        self._loop = asyncio.get_running_loop()
        if self._borrowed is not None:
            self._transport = Transport.borrow(self._borrowed)
        else:
            self._transport = Transport.create(max_connections=self._config.max_concurrency)
        self._limiter = asyncio.Semaphore(self._config.max_concurrency)
        self._state = _State.OPEN
        return self._transport

    async def aclose(self) -> None:
        """Close the owned HTTP session (a borrowed one is left open). Idempotent."""
        transport, self._transport = self._transport, None
        self._state = _State.CLOSED
        if transport is not None:
            # From another loop (the opening one is gone) closing is best effort.
            same_loop = asyncio.get_running_loop() is self._loop
            with contextlib.suppress(RuntimeError) if not same_loop else contextlib.nullcontext():
                await transport.aclose()

    def _ready(self) -> tuple[Transport, asyncio.Semaphore]:
        if self._state is _State.CLOSED:
            raise ConfigurationError("Client is closed; create a new Client")
        if self._state is _State.UNOPENED:
            self._open()  # plain `await client.generate()` opens lazily; call aclose() after
        elif asyncio.get_running_loop() is not self._loop:
            raise ConfigurationError(
                "Client was opened on another event loop (e.g. a previous asyncio.run);"
                " create one Client per event loop"
            )
        assert self._transport is not None
        assert self._limiter is not None
        return self._transport, self._limiter

    # --- public operations ------------------------------------------------------------------

    def models(self) -> tuple[ModelInfo, ...]:
        """Every model this client can call, with aliases and parameters."""
        return self._registry.models()

    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        download: bool = True,
        deadline: float | None = None,
        task_id: str | None = None,
        **params: Any,
    ) -> ImageResult:
        """Generate images for ``prompt`` with ``model``; model parameters go in ``params``.

        Parameters are validated before anything is sent. Task-style models are polled until
        done. URL outputs are downloaded unless ``download=False``. ``deadline`` (seconds) bounds
        the whole call: submit, polling and downloads.

        ``task_id`` resumes a task an earlier submit answered (e.g. one a journal recorded):
        nothing is submitted (nothing billed); the task is polled and its images downloaded.
        """
        return await self._generate(
            model, prompt, params, download, deadline, CallStats(), task_id=task_id
        )

    async def _generate(
        self,
        model: str,
        prompt: str,
        params: Mapping[str, object],
        download: bool,
        deadline: float | None,
        stats: CallStats,
        *,
        task_id: str | None = None,
        on_task: TaskHook | None = None,
    ) -> ImageResult:
        adapter, path = self._registry.resolve(model)
        if task_id is not None:
            return await self._resume(adapter, path, task_id, download, deadline, stats)
        image_params = adapter.image_params
        if image_params and any(name in params for name in image_params):
            params = await self._encode_images(params, image_params)
        request = adapter.build_request(path, prompt, params)
        if not self._config.api_key:
            raise ConfigurationError("no API key: pass Client(api_key=...) or set AIHUBMIX_API_KEY")
        body, content_type = request.encode()
        url = self._config.base_url + request.path
        if self._rate is not None:
            await self._rate.acquire()
        # One frame for submit -> poll -> download: each coroutine layer is re-entered on every
        # resume of the HTTP exchange, so the hot path is kept flat (measured in benchmarks/).
        try:
            with anyio.fail_after(deadline) if deadline is not None else _NO_DEADLINE:
                response, data = await self._call(
                    "POST", url, body=body, billed=True, model=path, stats=stats,
                    content_type=content_type,
                )  # fmt: skip
                request_id = response.request_id
                del response  # parsed: do not hold the body through polls and downloads
                parsed = self._parse(adapter.parse, data, path, request_id)
                found = parsed.images
                if found and found[0].data is not None:
                    elide_inline_images(data)
                task_id = parsed.task_id
                if task_id is not None:
                    stats.task_id = task_id
                    if on_task is not None:
                        # Journal the task id before polling: a crash can then resume it.
                        returned = on_task(task_id, request_id)
                        if inspect.isawaitable(returned):
                            await returned
                    if not found:
                        parsed = await self._poll(adapter, path, task_id, request_id, stats)
                images: tuple[GeneratedImage, ...]
                if len(parsed.images) == 1:
                    images = (await self._image(parsed.images[0], download, path, stats),)
                else:
                    images = await self._materialise(parsed.images, download, path, stats)
        except TimeoutError as exc:
            if isinstance(exc, AIHubMixError) or deadline is None:
                raise
            raise RequestTimeout(
                f"generation did not finish within its deadline of {deadline:g}s", model=path
            ) from None
        return ImageResult(
            model=path,
            images=images,
            usage=parsed.usage,
            request_id=request_id,
            task_id=task_id,
            raw=data,
        )

    async def _resume(
        self,
        adapter: ProviderAdapter,
        path: str,
        task_id: str,
        download: bool,
        deadline: float | None,
        stats: CallStats,
    ) -> ImageResult:
        """Poll an already submitted task and download its images: no submit, nothing billed."""
        if not isinstance(task_id, str) or not task_id:
            raise InvalidRequestError(
                f"task_id must be a non-empty string, got {task_id!r}", field="task_id"
            )
        if not self._config.api_key:
            raise ConfigurationError("no API key: pass Client(api_key=...) or set AIHUBMIX_API_KEY")
        stats.task_id = task_id
        try:
            with anyio.fail_after(deadline) if deadline is not None else _NO_DEADLINE:
                parsed = await self._poll(adapter, path, task_id, None, stats)
                images = await self._materialise(parsed.images, download, path, stats)
        except TimeoutError as exc:
            if isinstance(exc, AIHubMixError) or deadline is None:
                raise
            raise RequestTimeout(
                f"generation did not finish within its deadline of {deadline:g}s", model=path
            ) from None
        return ImageResult(
            model=path, images=images, usage=parsed.usage, request_id=None, task_id=task_id
        )

    async def _encode_images(
        self, params: Mapping[str, object], image_params: Mapping[str, str]
    ) -> dict[str, object]:
        """Image parameters in any accepted form -> the family's wire form (files read in a
        worker thread, never on the event loop)."""
        encoded = dict(params)
        for name, encoding in image_params.items():
            if name in encoded and encoded[name] is not None:
                encoded[name] = await anyio.to_thread.run_sync(
                    encode_image_param, encoded[name], encoding, self._max_input_bytes
                )
        return encoded

    @staticmethod
    def _parse(parse: Any, data: JSONValue, model: str, request_id: str | None) -> Any:
        try:
            return parse(data)
        except ResponseFormatError as exc:
            exc.model, exc.request_id = model, request_id
            raise

    def batch(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        model: str | None = None,
        concurrency: int | None = None,
        ordered: bool = False,
        fail_fast: bool = False,
        rpm: float | None = None,
        deadline: float | None = None,
        download: bool = True,
        on_progress: ProgressHook | None = None,
        on_task: BatchTaskHook | None = None,
        **params: Any,
    ) -> Batch:
        """Fan out many generations; an async context manager around a stream of outcomes.

        ``items`` (any iterable or async iterable, pulled lazily) holds prompts, mappings with
        ``prompt`` and optional ``model`` / ``id`` / parameters, or :class:`ImageRequest`. At most
        ``concurrency`` items run at once (default: the client's ``max_concurrency``), and all
        HTTP requests share the client's limit. Every item ends as exactly one
        :class:`Outcome`; one failure never stops the batch unless ``fail_fast``. ``ordered``
        yields in input order (bounded reorder buffer). ``rpm`` spaces this batch's
        generations smoothly; ``deadline`` bounds each item; ``on_progress`` is called (or
        awaited) after every finished item (an exception from it is logged, not raised).

        ``on_task(request, task_id, request_id)`` is called (or awaited) when a submit answered
        a task id, before the first poll, so the caller can journal it durably; if it raises,
        the item fails with that error and the task is not polled. An item whose
        :attr:`ImageRequest.task_id` is set resumes that task instead of submitting.
        """
        if model is not None:
            adapter, path = self._registry.resolve(model)
            adapter.build_request(path, "parameter check", params)  # refuse bad params up front
        _check_rpm(rpm)
        return Batch(
            self,
            items,
            model=model,
            params=params,
            concurrency=self._config.max_concurrency if concurrency is None else concurrency,
            ordered=ordered,
            fail_fast=fail_fast,
            rpm=rpm,
            deadline=deadline,
            download=download,
            on_progress=on_progress,
            on_task=on_task,
        )

    # --- polling ----------------------------------------------------------------------------

    async def _poll(
        self,
        adapter: ProviderAdapter,
        model: str,
        task_id: str,
        request_id: str | None,
        stats: CallStats,
    ) -> Parsed:
        policy = self._config.poll
        url = self._config.tasks_url + adapter.task_path(task_id)
        give_up = anyio.current_time() + policy.deadline
        interval = policy.initial_interval
        while True:
            response, data = await self._call("GET", url, billed=False, model=model, stats=stats)
            state = self._parse(adapter.parse_task, data, model, response.request_id)
            if state.status is TaskStatus.DONE:
                return state.parsed  # type: ignore[no-any-return]
            if state.status is not TaskStatus.PENDING:
                cls = (
                    ContentPolicyError
                    if state.status is TaskStatus.MODERATED
                    else GenerationFailedError
                )
                raise cls(
                    f"task ended {state.status.value}: {state.message or 'no detail'}",
                    request_id=request_id,
                    model=model,
                    task_id=task_id,
                )
            if anyio.current_time() + interval > give_up:
                raise RequestTimeout(
                    f"task {task_id} still pending after the {policy.deadline:g}s poll deadline",
                    request_id=request_id,
                    model=model,
                )
            await anyio.sleep(interval)
            interval = min(interval * policy.multiplier, policy.max_interval)

    # --- downloads --------------------------------------------------------------------------

    async def _materialise(
        self, raw: tuple[RawImage, ...], download: bool, model: str, stats: CallStats
    ) -> tuple[GeneratedImage, ...]:
        if not raw:
            raise ResponseFormatError(
                "response contains no image", expected="at least one image", model=model
            )
        results: list[GeneratedImage | None] = [None] * len(raw)

        async def one(i: int, item: RawImage) -> None:
            results[i] = await self._image(item, download, model, stats)

        async with anyio.create_task_group() as tg:
            for i, item in enumerate(raw):
                tg.start_soon(one, i, item)
        return tuple(r for r in results if r is not None)

    async def _image(
        self, item: RawImage, download: bool, model: str, stats: CallStats
    ) -> GeneratedImage:
        if item.data is not None:
            return GeneratedImage(
                data=item.data, mime_type=sniff_mime_type(item.data, item.mime_type)
            )
        url = item.url or ""
        if not url.startswith(("https://", "http://")):
            raise ResponseFormatError(
                "image URL has an unsupported scheme", expected="an http(s) image URL", model=model
            )
        if not download:
            return GeneratedImage(data=b"", mime_type=sniff_mime_type(b"", item.mime_type), url=url)
        response, _ = await self._call(
            "GET", url, billed=False, model=model, stats=stats, expect_json=False
        )
        mime = sniff_mime_type(response.body, response.content_type or item.mime_type)
        if not mime.startswith("image/"):
            raise ResponseFormatError(
                f"downloaded file is not an image ({mime})", expected="image bytes", model=model
            )
        return GeneratedImage(data=response.body, mime_type=mime, url=url)

    # --- one HTTP exchange with retries -----------------------------------------------------

    def _headers(self, url: str, has_body: bool) -> dict[str, str]:
        # The key goes only to the API's own hosts, never to the hosts image URLs point at.
        if url.startswith(self._base_prefixes) or origin_of(url) in self._trusted:
            return self._api_post_headers if has_body else self._api_get_headers
        return {"User-Agent": _USER_AGENT}

    async def _call(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        billed: bool,
        model: str,
        stats: CallStats,
        expect_json: bool = True,
        content_type: str = "application/json",
    ) -> tuple[Response, JSONValue]:
        transport, limiter = self._ready()
        policy = self._config.retry
        headers = self._headers(url, body is not None)
        if content_type != "application/json":
            headers = {**headers, "Content-Type": content_type}
        attempt = 0
        hooked = self._on_request is not None or self._on_response is not None
        while True:
            stats.requests += 1
            if hooked:
                started = time.perf_counter()
                self._emit_request(method, url, model, attempt + 1)
            try:
                if self._paused_until:
                    await self._wait_if_paused()
                async with limiter:
                    response = await transport.request(
                        method,
                        url,
                        headers=headers,
                        body=body,
                        timeout=self._config.timeout,
                        max_bytes=self._config.max_response_bytes,
                        # Image hosts may redirect (aiohttp drops Authorization when the
                        # origin changes); API calls never follow redirects.
                        allow_redirects=not expect_json,
                    )
                data = self._interpret(response, model, expect_json)
                if hooked:
                    self._emit_response(method, url, model, attempt + 1, started, response, None)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %s (model=%s, request_id=%s, attempt=%d)",
                        method, urlsplit(url).path, response.status, model,
                        response.request_id, attempt + 1,
                    )  # fmt: skip
                return response, data
            except AIHubMixError as exc:
                if exc.model is None:
                    exc.model = model
                if hooked:
                    self._emit_response(method, url, model, attempt + 1, started, None, exc)
                retry = attempt < policy.max_retries and should_retry(
                    exc, billed=billed, policy=policy
                )
                delay = self._delay(exc, attempt, policy)
                if not retry or delay is None:
                    raise
                logger.info(
                    "retrying %s %s after %s (model=%s, request_id=%s, attempt=%d, wait=%.2fs)",
                    method, urlsplit(url).path, type(exc).__name__, model, exc.request_id,
                    attempt + 1, delay,
                )  # fmt: skip
                attempt += 1
                stats.retries += 1
                await retry_sleep(delay)

    def _emit_request(self, method: str, url: str, model: str, attempt: int) -> None:
        if self._on_request is not None:
            try:
                self._on_request(
                    RequestEvent(method=method, url=_redact(url), model=model, attempt=attempt)
                )
            except Exception:  # an observer must never break (or bill twice) a request
                logger.exception("on_request hook raised; ignored (model=%s)", model)

    def _emit_response(
        self,
        method: str,
        url: str,
        model: str,
        attempt: int,
        started: float,
        response: Response | None,
        error: AIHubMixError | None,
    ) -> None:
        if self._on_response is None:
            return
        status = response.status if response is not None else getattr(error, "status_code", None)
        request_id = (
            response.request_id if response is not None else getattr(error, "request_id", None)
        )
        event = ResponseEvent(
            method=method,
            url=_redact(url),
            model=model,
            attempt=attempt,
            status=status,
            request_id=request_id,
            elapsed=time.perf_counter() - started,
            error=error,
        )
        try:
            self._on_response(event)
        except Exception:  # an observer must never turn a billed success into a failure
            logger.exception(
                "on_response hook raised; ignored (model=%s, request_id=%s)", model, request_id
            )

    def _delay(self, exc: AIHubMixError, attempt: int, policy: RetryPolicy) -> float | None:
        """Seconds to wait before the next attempt; None when the server asks for too long."""
        if not isinstance(exc, RateLimitError):
            return backoff_delay(attempt, policy)
        delay = exc.retry_after if exc.retry_after is not None else backoff_delay(attempt, policy)
        if delay > policy.max_retry_after:
            return None
        # Pause the whole client, not just this request: the limit is per key.
        self._paused_until = max(self._paused_until, anyio.current_time() + delay)
        return delay

    async def _wait_if_paused(self) -> None:
        # Loop: another request may extend the pause while this one sleeps.
        if self._paused_until == 0.0:
            return  # never paused: skip the clock read on the hot path
        while not is_testing() and (remaining := self._paused_until - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(remaining)

    def _interpret(self, response: Response, model: str, expect_json: bool) -> JSONValue:
        status = response.status
        data: JSONValue = None
        decoded = False
        if expect_json or status >= 300:
            try:
                data = _json.loads(response.body) if response.body else None
                decoded = True
            except (ValueError, UnicodeDecodeError):
                decoded = False
        error_body = isinstance(data, dict) and bool(data.get("error"))
        if status >= 300 or error_body:
            text = response.body[:1000].decode("utf-8", "replace") if not decoded else ""
            raise error_for_response(
                status=status,
                body=data,
                text=text,
                reason=response.reason,
                request_id=response.request_id,
                retry_after=parse_retry_after(response.headers),
                model=model,
            )
        if expect_json and not decoded:
            raise ResponseFormatError(
                "response body is not valid JSON",
                expected="a JSON object",
                request_id=response.request_id,
                model=model,
            )
        return data
