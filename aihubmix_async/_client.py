"""The session manager: :class:`Client` owns (or borrows) one HTTP session, is bound to the
event loop that opened it, and offers the public verbs. The work is done below it: one
generation in :mod:`._generation`, one HTTP exchange in :mod:`._exchange`, many generations in
:mod:`._batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Self

from ._batch import Batch, BatchTaskHook, ProgressHook
from ._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    ClientConfig,
    PollPolicy,
    RetryPolicy,
    resolve_config,
)
from ._errors import ConfigurationError, InvalidRequestError
from ._events import DEFAULT_HOOK_TIMEOUT, check_hook_timeout
from ._exchange import Exchange
from ._generation import Generator
from ._inputs import DEFAULT_MAX_INPUT_BYTES
from ._models import CallStats, ImageResult, ModelInfo, RequestEvent, ResponseEvent
from ._pricing import MAX_CATALOGUE_BYTES, PriceBook
from ._ratelimit import RateLimiter
from ._registry import Registry
from ._spend import Budget, Estimate, Spend
from ._transport import Transport
from ._typed_client import ClientCalls

__all__ = ["DEFAULT_GIVE_UP_AFTER", "Client"]

#: A batch whose every answer has been a 429 for this long stops (``batch(give_up_after=)``).
DEFAULT_GIVE_UP_AFTER = 600.0
#: The model catalogue with prices (reference §11), below the base URL.
CATALOGUE_PATH = "/api/v1/models"


def _price_book(prices: PriceBook | Mapping[str, Any] | str | Path | None) -> PriceBook | None:
    if prices is None or isinstance(prices, PriceBook):
        return prices
    if isinstance(prices, str | Path):
        return PriceBook.load(prices)
    return PriceBook.from_mapping(prices)


def _check_rpm(rpm: float | None) -> None:
    if rpm is not None and not (isinstance(rpm, int | float) and 0 < rpm < float("inf")):
        raise InvalidRequestError(f"rpm must be a positive number, got {rpm!r}", field="rpm")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Client(ClientCalls):
    """An asyncio client for AIHubMix image generation.

    Use it as ``async with Client() as client:``; one client per process (or per event loop)
    serves any number of concurrent calls. ``api_key`` falls back to ``AIHUBMIX_API_KEY`` and
    ``base_url`` to ``AIHUBMIX_BASE_URL``. An app-owned ``session`` (an ``aiohttp.ClientSession``)
    is borrowed and never closed.

    ``rpm`` caps generations per minute across every call of the client (the provider's limit
    is per key). A batch's own ``rpm`` applies on top of it: an item waits for its batch's slot,
    then for the client's, so the stricter of the two sets the pace. Resumed tasks
    (``task_id=``) submit nothing and wait for neither.
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
        hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT,
        prices: PriceBook | Mapping[str, Any] | str | Path | None = None,
    ) -> None:
        config = resolve_config(
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
        _check_rpm(rpm)
        self._config = config
        self._registry = registry if registry is not None else Registry.default()
        self._borrowed = session
        self._transport: Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _State.UNOPENED
        exchange = Exchange(
            ready=self._ready,
            max_concurrency=config.max_concurrency,
            timeout=config.timeout,
            max_response_bytes=config.max_response_bytes,
            retry=config.retry,
            secret=config.api_key,
            on_request=on_request,
            on_response=on_response,
            hook_timeout=check_hook_timeout(hook_timeout),
        )
        self._adaptive = exchange.adaptive  # concurrency="auto": one figure per client
        self._exchange = exchange
        # Prices: the shipped snapshot, then the live catalogue once read, then the caller's.
        self._override = _price_book(prices)
        self._snapshot = PriceBook.snapshot()
        self._catalogue: PriceBook | None = None
        self._spend = Spend(self._registry, self._layered())
        self._generator = Generator(
            config=config,
            registry=self._registry,
            exchange=exchange,
            rate=RateLimiter(rpm) if rpm else None,
            max_input_bytes=max_input_bytes,
            price=self._spend.priced,
        )

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

    async def __aenter__(self) -> Self:
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
        self._state = _State.OPEN
        return self._transport

    async def aclose(self) -> None:
        """Close the owned HTTP session (a borrowed one is left open). Idempotent."""
        transport, self._transport = self._transport, None
        self._state = _State.CLOSED
        self._generator.closed = True  # a running batch stops pulling its input
        if transport is not None:
            # From another loop (the opening one is gone) closing is best effort.
            same_loop = asyncio.get_running_loop() is self._loop
            with contextlib.suppress(RuntimeError) if not same_loop else contextlib.nullcontext():
                await transport.aclose()

    def _ready(self) -> Transport:
        """The open transport, for the exchange: opens lazily, refuses a closed client or
        another event loop.
        """
        transport = self._transport
        if transport is not None and self._state is _State.OPEN:
            if asyncio.get_running_loop() is not self._loop:
                raise ConfigurationError(
                    "Client was opened on another event loop (e.g. a previous asyncio.run);"
                    " create one Client per event loop"
                )
            return transport
        if self._state is _State.CLOSED:
            raise ConfigurationError("Client is closed; create a new Client")
        return self._open()  # plain `await client.generate()` opens lazily; call aclose() after

    # --- public operations ------------------------------------------------------------------

    def models(self, *, prices: bool = False) -> tuple[ModelInfo, ...]:
        """Every model this client can call, with aliases and parameters; ``prices=True``
        adds each model's price per image and its source (the catalogue once
        :meth:`catalogue` has read it, else the shipped snapshot; the caller's override wins).
        """
        models = self._registry.models()
        if not prices:
            return models
        return tuple(self._spend.describe(info) for info in models)

    def _layered(self) -> PriceBook:
        book = self._snapshot
        for layer in (self._catalogue, self._override):
            if layer is not None:
                book = book.over(layer)
        return book

    async def catalogue(self, *, refresh: bool = False) -> PriceBook:
        """The live model catalogue's prices (``GET {base_url}/api/v1/models``), read once
        and cached on the client (``refresh=True`` reads it again). From then on, estimates
        and costs use it where it has a price (source ``"catalogue"``).
        """
        if self._catalogue is None or refresh:
            response, data, _ = await self._exchange.call(
                "GET",
                self._config.base_url + CATALOGUE_PATH,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                billed=False,
                model="catalogue",
                stats=CallStats(),
                max_bytes=MAX_CATALOGUE_BYTES,  # its JSON, decoded, takes ~10x this in memory
            )
            self._catalogue = PriceBook.from_answer(data, request_id=response.request_id)
            self._spend.book = self._layered()
        return self._catalogue

    def estimate(
        self, items: Iterable[Any], *, model: str | None = None, **params: Any
    ) -> Estimate:
        """What a batch of ``items`` (as :meth:`batch` takes them) would cost, sending
        nothing: requests, images (the most each request can make) and estimated cost per
        model and in total, each priced model saying where its price comes from.
        """
        return self._spend.estimate_requests(items, model, params)

    def _generate(
        self,
        model: str,
        prompt: str,
        *,
        download: bool = True,
        deadline: float | None = None,
        task_id: str | None = None,
        **params: Any,
    ) -> Coroutine[Any, Any, ImageResult]:
        """``generate(model, prompt, **params)``: images for ``prompt`` with ``model``.

        The public ``generate`` (in :class:`ClientCalls`) has one typed overload per model
        family, and a :data:`ModelName` fallback for models only known at run time.

        Parameters are validated before anything is sent. Task-style models are polled until
        done. URL outputs are downloaded unless ``download=False``. ``deadline`` (seconds) bounds
        the whole call: submit, polling and downloads.

        ``task_id`` resumes a task an earlier submit answered (e.g. one a journal recorded):
        nothing is submitted (nothing billed); the task is polled and its images downloaded.

        Not a coroutine of its own: it returns the generation's coroutine (which also prices
        the result), so awaiting it re-enters one frame fewer on every resume.
        """
        return self._generator.generate(
            model, prompt, params, download, deadline, CallStats(), task_id=task_id
        )

    def _batch(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        model: str | None = None,
        concurrency: int | Literal["auto"] | None = None,
        ordered: bool = False,
        fail_fast: bool = False,
        rpm: float | None = None,
        deadline: float | None = None,
        download: bool = True,
        on_progress: ProgressHook | None = None,
        on_task: BatchTaskHook | None = None,
        give_up_after: float | None = DEFAULT_GIVE_UP_AFTER,
        max_cost: float | None = None,
        max_total_images: int | None = None,
        **params: Any,
    ) -> Batch:
        """``batch(items, *, model=..., **params)``: fan out many generations; an async
        context manager around a stream of outcomes (typed per family like ``generate``).

        ``items`` (any iterable or async iterable, pulled lazily) holds prompts, mappings with
        ``prompt`` and optional ``model`` / ``id`` / parameters, or :class:`ImageRequest`. At most
        ``concurrency`` items run at once (default: the client's ``max_concurrency``), and all
        HTTP requests share the client's limit. ``concurrency="auto"`` adapts instead: the
        client's API requests start low, grow while answers succeed and halve on 429/503,
        never above ``max_concurrency`` (one figure per client, shared by every batch and
        single call while an auto batch runs). Every item ends as exactly one
        :class:`Outcome`; one failure never stops the batch unless ``fail_fast``. ``ordered``
        yields in input order (bounded reorder buffer). ``rpm`` spaces this batch's
        generations smoothly; ``deadline`` bounds each item; ``on_progress`` is called (or
        awaited) after every finished item (an exception from it is logged, not raised).

        ``on_task(request, task_id, request_id)`` is called (or awaited) when a submit answered
        a task id, before the first poll, so the caller can journal it durably; if it raises,
        the item fails with that error and the task is not polled. An item whose
        :attr:`ImageRequest.task_id` is set resumes that task instead of submitting.

        ``give_up_after`` (seconds, default 600; ``None``: never) is the batch's breaker: once
        the server has answered nothing but 429 for that long, no further item starts and
        iteration ends with :class:`BatchAbortedError` after the running items are delivered
        (the rest count in ``summary.not_started``). ``client.aclose()`` also stops a running
        batch from pulling its input.

        ``max_cost`` (US dollars) and ``max_total_images`` cap the batch (not ``max_images``:
        that name is Doubao's parameter for the images of one sequential call): before an item is
        submitted, its worst case (the most images its request can make, at its price) is
        held against the cap together with every item in flight; an item that could go past
        it is not sent and ends with :class:`SpendCapReached`, and no further item starts
        (``summary.capped`` says why). ``max_cost`` needs a price for every model it meets.
        Each result's :attr:`ImageResult.cost` is set where the model has a price.
        """
        if model is not None:
            adapter, path = self._registry.resolve(model)
            adapter.build_request(path, "parameter check", params)  # refuse bad params up front
        _check_rpm(rpm)
        if give_up_after is not None and not (
            isinstance(give_up_after, int | float) and 0 < give_up_after < float("inf")
        ):
            raise InvalidRequestError(
                f"give_up_after must be a positive number of seconds or None,"
                f" got {give_up_after!r}",
                field="give_up_after",
            )
        budget = None
        if max_cost is not None or max_total_images is not None:
            budget = Budget(self._spend, max_cost=max_cost, max_images=max_total_images)
            budget.check_model(model)  # an unpriced model under max_cost: refused up front
        return Batch(
            self._generator,
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
            adaptive=self._adaptive,
            give_up_after=give_up_after,
            budget=budget,
        )
