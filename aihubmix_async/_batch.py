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
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal, Self

import anyio

from ._adaptive import AdaptiveLimiter
from ._batch_abort import abort_for
from ._batch_input import BatchInput
from ._delivery import Delivery
from ._errors import AIHubMixError, InvalidRequestError
from ._events import being_cancelled, call_hook
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
from ._spend import Budget, Planned
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
        self._fail_fast = fail_fast
        self._limiter = RateLimiter(rpm) if rpm else None
        self._deadline = deadline
        self._download = download
        self._on_progress = on_progress
        self._on_task = on_task
        self._give_up_after = give_up_after
        self._budget = budget  # max_cost / max_total_images: checked before each submit
        self._input = BatchInput(items, client=generator)
        self._delivery = Delivery(
            concurrency, ordered=ordered, on_failure=self._stop_workers if fail_fast else None
        )
        self._succeeded = self._failed = self._retried = self._retries = 0
        self._images = 0
        self._clock = 0.0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._workers: anyio.CancelScope | None = None

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
        self._input.stopped = True
        # Leaving the block cancels in-flight generations and the end-of-stream hand-off.
        self._task_group.cancel_scope.cancel()
        try:
            # Workers capture every per-item error, so closing the group raises only if the
            # runner itself broke (or a progress hook raised). An exception from the caller's
            # loop body then propagates as itself, not wrapped in an ExceptionGroup.
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._engagement.close()
            self._delivery.closed = True
            self._elapsed = time.perf_counter() - self._clock

    async def _run(self) -> None:
        assert self._workers is not None  # noqa: S101
        with self._workers:
            async with anyio.create_task_group() as workers:
                for _ in range(self._concurrency):
                    workers.start_soon(self._worker)
        # End of stream (also after fail_fast: the consumer drains what had finished).
        self._delivery.error = self._input.error
        await self._delivery.end()

    # --- the consumer side ----------------------------------------------------------------------

    def __aiter__(self) -> Batch:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Outcome]:
        return self._delivery.next()  # no coroutine of our own around it: one layer fewer

    def _stop_workers(self) -> None:
        """``fail_fast``: the consumer took a failure; items in flight are cancelled."""
        self._input.stopped = True
        assert self._workers is not None  # noqa: S101
        self._workers.cancel()

    def stop(self) -> None:
        """Stop pulling new items (idempotent, callable from a signal handler).

        Items already running finish and are yielded as usual; items never started are counted
        in ``summary.not_started``; iteration then ends.
        """
        self._input.stopped = True

    @property
    def summary(self) -> BatchSummary:
        """Counts of what was handed to the consumer (final once the block has exited).

        ``cancelled`` is every started item the consumer never received: in flight when the
        block was left, or finished but still buffered.
        """
        delivered, started = self._delivery, self._input.started
        elapsed = getattr(self, "_elapsed", time.perf_counter() - self._clock)
        return BatchSummary(
            started=started,
            succeeded=delivered.ok,
            failed=delivered.failed,
            cancelled=started - delivered.ok - delivered.failed,
            not_started=None if self._input.total is None else self._input.total - started,
            retries=self._retries,
            elapsed=elapsed,
            images=delivered.images,
            cost=delivered.cost,
            priced=delivered.priced,
            capped=None if self._budget is None else self._budget.reached,
        )

    # --- the worker side ------------------------------------------------------------------------

    async def _worker(self) -> None:  # noqa: C901, PLR0912
        # The item's generation runs inline here rather than in a helper coroutine: one frame
        # fewer to re-enter on every resume of the HTTP exchange.
        generate, delivery, window = self._generator.generate, self._delivery, self._delivery.window
        budget = self._budget
        source = self._input
        pull = source.pull if source.sync else None
        while True:
            if window is not None:
                await window.acquire()
            pulled = pull() if pull is not None else await source.pull_async()
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
                # Every item ends as an outcome, whatever went wrong; a CancelledError too unless
                # this worker's task is being cancelled (a hook's own: the item was billed).
                except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
                    error = exc if isinstance(exc, Exception) else _stray_cancellation(exc)
            if budget is not None:
                if planned is not None:
                    budget.settle(planned, result)
                source.stopped = source.stopped or budget.reached is not None  # no item starts
            outcome = self._account(index, request, result, error, stats, started)
            if error is not None:
                self._stop_if_hopeless(error)
            if self._on_progress is not None:
                await self._report(outcome)
            waiting = delivery.offer(outcome)
            if waiting is not None:  # the queue is full, or the outcome is large
                await waiting
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

    def _stop_if_hopeless(self, error: Exception) -> None:
        """No item starts after a failure that every further item would meet too (see
        :func:`abort_for`); the consumer's loop then ends with the reason.
        """
        abort = abort_for(
            error, refusing_for=self._generator.refusing_for, give_up_after=self._give_up_after
        )
        source = self._input
        if abort is not None and not source.stopped:
            source.stopped = True
            if source.error is None:
                source.error = abort

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


def _stray_cancellation(exc: asyncio.CancelledError) -> AIHubMixError:
    """The item's failure for a ``CancelledError`` that is not this worker's task being
    cancelled (one an ``on_task`` hook raised of its own); a real cancellation goes on.
    """
    if being_cancelled():
        raise exc
    error = AIHubMixError(
        "the generation raised CancelledError while the batch was not cancelled"
        " (an on_task hook's own?)"
    )
    error.__cause__ = exc
    return error


def _fallback_request(item: Any) -> ImageRequest:
    return ImageRequest(prompt=item if isinstance(item, str) else repr(item)[:200])
