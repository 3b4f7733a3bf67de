"""SIGINT and SIGTERM for a bulk run: stop taking items, save what was paid for, then exit.

Before anything is billed (preflight, reading the input) a signal stops the run at once. While
generating, the first signal stops taking new items and gives the generations in flight, which
are already billed, ``grace`` seconds to finish and be committed; a second signal aborts them.
Either way everything received is committed before the process exits, and a rerun of the same
command resumes (journaled tasks are polled, not paid for again). The exit status is
``128 + signal``: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio

__all__ = ["Stopped", "Stopper", "in_daemon_thread"]

T = TypeVar("T")


class Stopped(Exception):  # noqa: N818  (a signal stopped the run: not an error)
    """A signal stopped the run before anything was sent."""


class Stopper:
    """The run's signal handling; see the module docstring."""

    def __init__(self, grace: float, tell: Callable[[str], object]) -> None:
        self.grace = grace
        self.tell = tell
        self.signum: int | None = None
        self.aborted = False
        self._scope: anyio.CancelScope | None = None
        self._billing = False
        self._batch: Any = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Handle SIGINT/SIGTERM on the running loop (where the platform allows it)."""
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                continue  # Windows, or not the main thread: the default handling stays
            installed.append(signum)
        try:
            yield self
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    @contextlib.contextmanager
    def scope(self, *, billing: bool) -> Iterator[anyio.CancelScope]:
        """The phase a signal acts on. Not ``billing``: a signal cancels it and
        :class:`Stopped` is raised. ``billing``: see :meth:`_on_signal`.
        """
        with anyio.CancelScope() as scope:
            self._scope, self._billing = scope, billing
            if self.signum is not None:
                scope.cancel()  # a signal came between phases: do not start this one
            try:
                yield scope
            finally:
                self._scope, self._billing = None, False
        if scope.cancelled_caught and not billing:
            raise Stopped

    def watch(self, batch: Any) -> None:
        """The running batch: ``batch.stop()`` on the first signal (at once if it came
        already), so it pulls no new item and lets the ones in flight finish.
        """
        self._batch = batch
        if self.signum is not None:
            batch.stop()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        scope = self._scope
        if self.signum is not None:
            self.aborted = True
            self.tell(f"{name} again: aborting the generations in flight")
            if scope is not None:
                scope.cancel()
            return
        self.signum = signum
        if not self._billing:
            if scope is not None:
                scope.cancel()
            return
        self.tell(
            f"{name}: taking no new items; waiting up to {self.grace:g}s for the generations in"
            f" flight (already billed) to be saved; {name} again aborts them"
        )
        if self._batch is not None:
            self._batch.stop()
        if scope is not None:
            scope.deadline = min(scope.deadline, anyio.current_time() + self.grace)


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread. Cancelling the wait abandons the thread (it may be
    blocked reading a FIFO nobody writes): it cannot hold up the process's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting task)
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: the wait was abandoned
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="aihubmix-input", daemon=True).start()
    return await future
