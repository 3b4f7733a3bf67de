"""A batch's input, pulled lazily by its workers: each item numbered once, and one place
that knows why pulling ended (the input ran out or failed, ``stop()``, a stop rule, or the
client closed).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sized
from typing import Any, Protocol

import anyio

__all__ = ["BatchInput"]

_STOP = object()


class _Closable(Protocol):
    closed: bool


class BatchInput:
    """The items of one batch, for its workers: :meth:`pull` (a plain iterable, no coroutine)
    or :meth:`pull_async` (an async iterable, one worker at a time) give ``(index, item)``,
    or None once no further item may start.
    """

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any], *, client: _Closable) -> None:
        #: Items in the input, when it is sized (for ``summary.not_started``).
        self.total = len(items) if isinstance(items, Sized) else None
        self._sync_iter = iter(items) if isinstance(items, Iterable) else None
        self._async_iter = aiter(items) if self._sync_iter is None else None  # type: ignore[arg-type]
        #: Whether the input is a plain iterable (pulled with :meth:`pull`).
        self.sync = self._sync_iter is not None
        # anyio's lock yields to the loop on every acquire, even a free one: a loop turn per
        # item of an async input, kept on purpose. That turn lets a consumer that took its
        # last outcome leave the batch before this worker pulls (and pays for) another item;
        # asyncio's lock (no turn) measurably cost one more billed request after a `break`.
        self._lock = anyio.Lock()
        #: Once the client is closed the rest of the input is not pulled (not started).
        self._client = client
        #: Items pulled so far (the next item's index).
        self.started = 0
        self.exhausted = False
        #: Set by ``stop()``, a stop rule or ``fail_fast``: no further item starts.
        self.stopped = False
        #: Raised to the consumer at the end of the stream: the input's own failure, or the
        #: reason a stop rule gave.
        self.error: BaseException | None = None

    def finished(self) -> bool:
        return self.stopped or self.exhausted or self._client.closed

    def pull(self) -> tuple[int, Any] | None:
        """The next item of a plain iterable (no coroutine: this runs once per item)."""
        if self.stopped or self.exhausted or self._client.closed:  # finished(), inline
            return None
        assert self._sync_iter is not None  # noqa: S101
        try:
            item = next(self._sync_iter, _STOP)
        except Exception as exc:  # the caller's iterator failed: stop, report it at the end  # noqa: BLE001
            self._failed(exc)
            return None
        return self._number(item)

    async def pull_async(self) -> tuple[int, Any] | None:
        """The next item of an async iterable (one worker waits on it at a time)."""
        if self.finished():
            return None
        async with self._lock:
            if self.finished():  # another worker hit the end meanwhile
                return None
            assert self._async_iter is not None  # noqa: S101
            try:
                item = await anext(self._async_iter, _STOP)
            except Exception as exc:  # noqa: BLE001 - as in pull
                self._failed(exc)
                return None
            if self.stopped:  # stop() while waiting for the input: do not start it
                return None
        return self._number(item)

    def _number(self, item: object) -> tuple[int, Any] | None:
        if item is _STOP:
            self.exhausted = True
            return None
        index = self.started
        self.started = index + 1
        return index, item

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        self.exhausted = True
