"""The batch runner: many generations fanned out under a bound, streamed back as they finish.

``client.batch(...)`` is an async context manager around a stream of :class:`Outcome` records
(anyio's rule: never yield from an async generator inside a task group). Workers pull the input
lazily, so nothing is sized to it: memory stays flat for millions of prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sized
from typing import Any, Literal, Self

import anyio

from ._adaptive import AdaptiveLimiter
from ._errors import AuthenticationError, BatchAbortedError, InvalidRequestError, RateLimitError
from ._events import call_hook
from ._generation import Generator
from ._models import (
    BatchProgress,
    BatchSummary,
    CallStats,
    Failure,
    ImageRequest,
    ImageResult,
    Outcome,
    ProgressHook,
    Success,
    request_from_mapping,
)
from ._ratelimit import RateLimiter
from ._spend import Budget, Planned, Spend
from ._spend import as_request as _as_request

# The value types live in _models; they are re-exported here for code that imports them from
# the runner (the command line, the dataset writer).
__all__ = [
    "Batch",
    "BatchProgress",
    "BatchSummary",
    "BatchTaskHook",
    "ImageRequest",
    "Outcome",
    "ProgressHook",
    "request_from_mapping",
]


#: ``on_task(request, task_id, request_id)``: a submit answered a task id; polling is next.
BatchTaskHook = Callable[[ImageRequest, str, "str | None"], object]

logger = logging.getLogger("aihubmix_async")

_STOP = object()

#: Image bytes from which a finished outcome is handed to the consumer before its worker goes
#: on (smaller ones are queued: waiting would cost each small item a loop turn).
_HANDOFF_BYTES = 256 * 1024


class Batch:
    """A running batch: ``async with client.batch(prompts, model=m) as outcomes:``, then
    ``async for outcome in outcomes``; ``outcomes.summary`` has the accounting.
    """

    def __init__(
        self,
        generator: Generator,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        model: str | None,
        params: Mapping[str, Any],
        concurrency: int | Literal["auto"],
        ordered: bool,
        fail_fast: bool,
        rpm: float | None,
        deadline: float | None,
        download: bool,
        on_progress: ProgressHook | None,
        on_task: BatchTaskHook | None = None,
        adaptive: AdaptiveLimiter | None = None,
        give_up_after: float | None = None,
        spend: Spend | None = None,
        budget: Budget | None = None,
    ) -> None:
        #: The client's adaptive limit, engaged while this batch runs (``concurrency="auto"``).
        self._adaptive = adaptive if concurrency == "auto" else None
        self._engagement = contextlib.ExitStack()
        concurrency = _worker_count(concurrency, adaptive)
        self._generator = generator
        self._model = model
        self._params = dict(params)
        self._concurrency = concurrency
        self._ordered = ordered
        self._fail_fast = fail_fast
        self._limiter = RateLimiter(rpm) if rpm else None
        self._deadline = deadline
        self._download = download
        self._on_progress = on_progress
        self._on_task = on_task
        self._give_up_after = give_up_after
        self._spend = spend  # prices each result (ImageResult.cost)
        self._budget = budget  # max_cost / max_total_images: checked before each submit
        self._delivered_images = self._priced = 0
        self._cost = 0.0
        self._total = len(items) if isinstance(items, Sized) else None
        self._sync_iter = iter(items) if isinstance(items, Iterable) else None
        self._async_iter = aiter(items) if self._sync_iter is None else None  # type: ignore[arg-type]
        self._pull_lock = anyio.Lock()
        # Ordered mode: at most `window` items started but not yet handed to the consumer.
        self._window = asyncio.Semaphore(2 * concurrency) if ordered else None
        self._pending: dict[int, Outcome] = {}
        #: Workers waiting for the consumer to take their large outcome (see _handoff).
        self._handoffs: dict[int, asyncio.Future[None]] = {}
        self._next_index = 0
        self._exhausted = False
        self._stopped = False
        self._input_error: BaseException | None = None
        self._started = self._succeeded = self._failed = self._retried = self._retries = 0
        self._images = 0
        self._delivered_ok = self._delivered_failed = 0
        self._clock = 0.0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._workers: anyio.CancelScope | None = None
        # A bounded asyncio queue rather than an anyio memory stream: put/get do not yield to
        # the loop when they need not wait, which keeps the per-item cost near raw aiohttp.
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue(concurrency)
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._generator.ready()
        if self._adaptive is not None:  # from here until exit, every API request is gated
            self._engagement.enter_context(self._adaptive.engaged())
        self._clock = time.perf_counter()
        self._workers = anyio.CancelScope()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task_group is not None  # noqa: S101
        assert self._workers is not None  # noqa: S101
        self._stopped = True
        # Leaving the block cancels in-flight generations and the end-of-stream hand-off.
        self._task_group.cancel_scope.cancel()
        try:
            # Workers capture every per-item error, so closing the group raises only if the
            # runner itself broke (or a progress hook raised). An exception from the caller's
            # loop body then propagates as itself, not wrapped in an ExceptionGroup.
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._engagement.close()
            self._closed = True
            self._elapsed = time.perf_counter() - self._clock

    async def _run(self) -> None:
        assert self._workers is not None  # noqa: S101
        with self._workers:
            async with anyio.create_task_group() as workers:
                for _ in range(self._concurrency):
                    workers.start_soon(self._worker)
        # End of stream (also after fail_fast: the consumer drains what had finished).
        await self._queue.put(None)

    # --- the consumer side ----------------------------------------------------------------------

    def __aiter__(self) -> Batch:
        return self

    async def __anext__(self) -> Outcome:
        if not self._ordered:
            outcome = await self._receive()
            return self._emit(outcome)
        while self._next_index not in self._pending:
            outcome = await self._receive()
            self._pending[outcome.index] = outcome
        return self._emit(self._pending.pop(self._next_index))

    async def _receive(self) -> Outcome:
        if self._closed:
            raise StopAsyncIteration
        outcome = await self._queue.get()
        if outcome is None:
            self._closed = True
            if self._input_error is not None:
                raise self._input_error
            raise StopAsyncIteration
        return outcome

    def _emit(self, outcome: Outcome) -> Outcome:
        self._next_index = outcome.index + 1
        if outcome.result is not None:
            self._delivered_images += len(outcome.result.images)
            if outcome.result.cost is not None:
                self._priced += 1
                self._cost += outcome.result.cost.amount
        if outcome.error is None:
            self._delivered_ok += 1
        else:
            self._delivered_failed += 1
        if self._window is not None:
            self._window.release()
        handoff = self._handoffs.pop(outcome.index, None) if self._handoffs else None
        if handoff is not None and not handoff.done():
            handoff.set_result(None)
        if outcome.error is not None and self._fail_fast:
            self._stopped = True
            assert self._workers is not None  # noqa: S101
            self._workers.cancel()
        return outcome

    def stop(self) -> None:
        """Stop pulling new items (idempotent, callable from a signal handler).

        Items already running finish and are yielded as usual; items never started are counted
        in ``summary.not_started``; iteration then ends.
        """
        self._stopped = True

    @property
    def summary(self) -> BatchSummary:
        """Counts of what was handed to the consumer (final once the block has exited).

        ``cancelled`` is every started item the consumer never received: in flight when the
        block was left, or finished but still buffered.
        """
        delivered = self._delivered_ok + self._delivered_failed
        elapsed = getattr(self, "_elapsed", time.perf_counter() - self._clock)
        return BatchSummary(
            started=self._started,
            succeeded=self._delivered_ok,
            failed=self._delivered_failed,
            cancelled=self._started - delivered,
            not_started=None if self._total is None else self._total - self._started,
            retries=self._retries,
            elapsed=elapsed,
            images=self._delivered_images,
            cost=self._cost,
            priced=self._priced,
            capped=None if self._budget is None else self._budget.reached,
        )

    # --- the worker side ------------------------------------------------------------------------

    def _finished_pulling(self) -> bool:
        # A closed client ends the batch: the rest of the input is not pulled (not started).
        return self._stopped or self._exhausted or self._generator.closed

    async def _pull(self) -> tuple[int, Any] | None:
        if self._finished_pulling():
            return None
        try:
            if self._sync_iter is not None:
                item = next(self._sync_iter, _STOP)
            else:
                async with self._pull_lock:
                    if self._finished_pulling():  # another worker hit the end meanwhile
                        return None
                    assert self._async_iter is not None  # noqa: S101
                    item = await anext(self._async_iter, _STOP)
                    if self._stopped:  # stop() while waiting for the input: do not start it
                        return None
        except Exception as exc:  # the caller's iterator failed: stop, report it at the end  # noqa: BLE001
            self._input_error = exc
            self._exhausted = True
            return None
        if item is _STOP:
            self._exhausted = True
            return None
        index = self._started
        self._started += 1
        return index, item

    async def _worker(self) -> None:  # noqa: C901, PLR0912
        # The item's generation runs inline here rather than in a helper coroutine: one frame
        # fewer to re-enter on every resume of the HTTP exchange.
        generate, window, queue = self._generator.generate, self._window, self._queue
        spend, budget = self._spend, self._budget
        while True:
            if window is not None:
                await window.acquire()
            pulled = await self._pull()
            if pulled is None:
                if window is not None:
                    window.release()
                return
            index, item = pulled
            stats = CallStats(item_index=index)
            started = time.perf_counter()
            result: ImageResult | None = None
            error: Exception | None = None
            planned: Planned | None = None
            try:
                request = _as_request(item)
            except InvalidRequestError as exc:
                request, error = _fallback_request(item), exc
            else:
                stats.item_id = request.id  # hook events and spans name the item
                try:
                    model = request.model or self._model
                    if model is None:
                        raise InvalidRequestError(  # noqa: TRY301
                            "no model: give batch(model=...) or a per-item model"
                        )
                    params = {**self._params, **request.params} if request.params else self._params
                    if budget is not None:  # before the submit: a refused item is never sent
                        planned = await budget.admit(
                            model, params, force=request.task_id is not None
                        )
                    if self._limiter is not None and request.task_id is None:
                        await self._limiter.acquire()
                    result = await generate(
                        model,
                        request.prompt,
                        params,
                        self._download,
                        self._deadline,
                        stats,
                        task_id=request.task_id,
                        on_task=None if self._on_task is None else self._task_hook(request),
                    )
                    if spend is not None:
                        result = spend.priced(model, params, result)
                except Exception as exc:  # every item ends as an outcome, whatever went wrong  # noqa: BLE001
                    error = exc
            if budget is not None:
                if planned is not None:
                    budget.settle(planned, result)
                self._stopped = self._stopped or budget.reached is not None  # no item starts
            outcome = self._account(index, request, result, error, stats, started)
            if error is not None:
                self._stop_if_hopeless(error)
            if self._on_progress is not None:
                await self._report(outcome)
            handoff = self._handoff(index, result)  # before put: the consumer may take it
            await queue.put(outcome)
            if handoff is not None:
                await handoff
            # Drop this item's references before the next request runs: holding a finished
            # result (megabytes of image) per worker costs peak memory.
            del outcome, result, error

    def _account(
        self,
        index: int,
        request: ImageRequest,
        result: ImageResult | None,
        error: Exception | None,
        stats: CallStats,
        started: float,
    ) -> Outcome:
        """The item's outcome, counted into the running totals."""
        n, t, task = stats.attempts, time.perf_counter() - started, stats.task_id
        outcome: Outcome
        if result is not None:
            outcome = Success(index=index, request=request, result=result, attempts=n, elapsed=t,
                              task_id=task)  # fmt: skip
            self._succeeded += 1
            self._images += len(result.images)
        else:
            assert error is not None  # noqa: S101  (every item ends with a result or an error)
            outcome = Failure(index=index, request=request, error=error, attempts=n, elapsed=t,
                              task_id=task)  # fmt: skip
            self._failed += 1
        if outcome.attempts > 1:
            self._retried += 1
            self._retries += outcome.attempts - 1
        return outcome

    def _handoff(self, index: int, result: ImageResult | None) -> asyncio.Future[None] | None:
        """For an outcome holding megabytes of image, a future the consumer resolves as it takes
        it: the worker waits for it before its next request (no pile-up of large outcomes).
        """
        size = 0
        for image in () if result is None else result.images:  # no generator: runs per item
            size += 0 if image.data is None else len(image.data)
        if size < _HANDOFF_BYTES:
            return None
        self._handoffs[index] = handoff = asyncio.get_running_loop().create_future()
        return handoff

    def _check_breaker(self) -> None:
        """End the batch once the server has refused everything for ``give_up_after`` s."""
        assert self._give_up_after is not None  # noqa: S101
        refusing_for = self._generator.refusing_for()
        if refusing_for >= self._give_up_after and not self._stopped:
            self._stopped = True
            if self._input_error is None:
                self._input_error = BatchAbortedError(
                    f"batch stopped: the server answered only 429 for {refusing_for:.0f}s"
                    f" (give_up_after={self._give_up_after:g}s); items not started are in"
                    " summary.not_started",
                    refusing_for=refusing_for,
                )

    def _stop_if_hopeless(self, error: Exception) -> None:
        """The breaker (nothing but 429s for ``give_up_after``) and a refused key end a batch."""
        if isinstance(error, RateLimitError) and self._give_up_after is not None:
            self._check_breaker()
        elif isinstance(error, AuthenticationError):
            self._refused_key(error)

    def _refused_key(self, error: AuthenticationError) -> None:
        """A 401 refuses the key itself: every further item would be refused the same way, so
        none starts (the running ones are delivered; the rest count in ``not_started``).
        """
        if not self._stopped:
            self._stopped = True
            if self._input_error is None:
                self._input_error = BatchAbortedError(
                    f"batch stopped: the server refused the API key ({error.message}); no"
                    " further item was started; fix the key and rerun",
                    refusing_for=0.0,
                )

    def _task_hook(self, request: ImageRequest) -> Callable[[str, str | None], object]:
        on_task = self._on_task
        assert on_task is not None  # noqa: S101
        return lambda task_id, request_id: on_task(request, task_id, request_id)

    async def _report(self, outcome: Outcome) -> None:
        assert self._on_progress is not None  # noqa: S101
        event = BatchProgress(
            outcome=outcome,
            done=self._succeeded + self._failed,
            succeeded=self._succeeded,
            failed=self._failed,
            retried=self._retried,
            images=self._images,
            elapsed=time.perf_counter() - self._clock,
        )
        # A progress display must never end the batch or lose an outcome (nor hang it).
        bound = self._generator._exchange.hook_timeout  # noqa: SLF001 - the client's setting
        await call_hook(self._on_progress, event, "on_progress", bound, "item %d", outcome.index)


def _worker_count(concurrency: object, adaptive: AdaptiveLimiter | None) -> int:
    """Workers to run: ``concurrency``, or for "auto" the adaptive limit's maximum (the
    limiter, not the worker count, then decides how many requests are in flight).
    """
    if concurrency == "auto":
        if adaptive is None:
            raise InvalidRequestError(
                'concurrency="auto" needs a client-wide adaptive limit', field="concurrency"
            )
        return adaptive.maximum
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequestError(
            f'concurrency must be an integer >= 1 or "auto", got {concurrency!r}',
            field="concurrency",
        )
    return concurrency


def _fallback_request(item: Any) -> ImageRequest:
    return ImageRequest(prompt=item if isinstance(item, str) else repr(item)[:200])
