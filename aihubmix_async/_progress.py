"""Progress for the CLI: a tqdm bar on an interactive terminal (the ``cli`` extra), plain
periodic lines otherwise.

A reporter counts items as the journal makes them durable, not as generations finish. It never
fails the run: a write that fails (standard error closed, ``... 2>&1 | head -1``) turns that
stream into a sink and the run goes on, committing everything it was billed for.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressLogHandler", "Reporter", "make_reporter", "say"]


def say(text: str, stream: TextIO | None = None) -> bool:
    """Print a line; a broken or closed stream is silenced (pointed at /dev/null) instead of
    raising, so neither the run nor the interpreter's exit trips over it. True if written.
    """
    stream = sys.stdout if stream is None else stream
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):
        silence(stream)
        return False
    return True


def silence(stream: TextIO) -> None:
    """Point a broken stream's descriptor at /dev/null (best effort)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):
        pass


class Reporter:
    """Plain lines, at most one every ``interval`` seconds, plus a final one."""

    def __init__(self, total: int | None, stream: TextIO, interval: float = 2.0) -> None:
        self.total = total
        self.stream = stream
        self.interval = interval
        #: Requests sent again after a transient failure (429, 5xx, timeout), the one meaning
        #: of "retries" in the bar, the progress lines and the summary.
        self.done = self.failed = self.images = self.retries = 0
        self._started = self._last = time.monotonic()
        self.broken = False

    def item(self, *, ok: bool, images: int = 0, retries: int = 0) -> None:
        """One item is settled on disk (committed, or its failure recorded); ``retries``: its
        requests sent again.
        """
        self.done += 1
        self.images += images
        self.retries += retries
        if not ok:
            self.failed += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(self._line(now))

    def _line(self, now: float) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = ""
        if self.total is not None and rate > 0:
            eta = f", ETA {max(0.0, (self.total - self.done) / rate):.0f}s"
        per_second = self.images / elapsed if elapsed > 0 else 0.0
        return (
            f"[aihubmix] {self.done}{total} saved, {self.failed} failed, {self.retries} retries,"
            f" {per_second:.1f} images/s{eta}"
        )

    def _emit(self, text: str) -> None:
        if not self.broken:
            self.broken = not say(text, self.stream)

    def note(self, text: str) -> None:
        """A message line between progress lines (never raises)."""
        self._emit(text)

    def close(self) -> None:
        if self.done:
            self._emit(self._line(time.monotonic()))


class _BarReporter(Reporter):
    def __init__(self, total: int | None, stream: TextIO, tqdm: Any) -> None:
        super().__init__(total, stream)
        self._bar = tqdm(total=total, unit="item", file=stream, dynamic_ncols=True)

    def item(self, *, ok: bool, images: int = 0, retries: int = 0) -> None:
        self.done += 1
        self.images += images
        self.failed += not ok
        self.retries += retries
        self._guarded(self._bar.update, 1)
        if not ok or retries or self.done % 64 == 0:
            self._guarded(
                self._bar.set_postfix, failed=self.failed, retries=self.retries, refresh=False
            )

    def note(self, text: str) -> None:
        self._guarded(self._bar.write, text, file=self.stream)

    def close(self) -> None:
        self._guarded(self._bar.close)

    def _guarded(self, action: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Draw, unless the terminal is gone: then the bar is disabled and the stream silenced."""
        if self.broken:
            return
        try:
            action(*args, **kwargs)
        except (OSError, ValueError):
            self.broken = True
            self._bar.disable = True  # its close() (also at garbage collection) writes nothing
            silence(self.stream)


class ProgressLogHandler(logging.Handler):
    """Log records as whole lines that never land on the progress bar: while a reporter is
    active they go through it (tqdm clears the bar, writes the line, redraws the bar), before
    and after it straight to standard error.
    """

    #: The reporter of the run in progress (the latest :func:`make_reporter`), if any.
    active: Reporter | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        reporter = ProgressLogHandler.active
        if reporter is not None:
            reporter.note(text)
        else:
            say(text, sys.stderr)


def make_reporter(total: int | None, stream: TextIO | None = None) -> Reporter:
    """A bar on a terminal when tqdm is installed, else plain lines. Log records of the
    :class:`ProgressLogHandler` go through the newest reporter.
    """
    reporter = _make_reporter(total, stream)
    ProgressLogHandler.active = reporter
    return reporter


def _make_reporter(total: int | None, stream: TextIO | None) -> Reporter:
    stream = sys.stderr if stream is None else stream
    try:
        interactive = stream.isatty()
    except (OSError, ValueError):
        interactive = False
    if interactive:
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            pass
        else:
            try:
                return _BarReporter(total, stream, tqdm)
            except (OSError, ValueError):  # the terminal is gone already
                silence(stream)
    return Reporter(total, stream)
