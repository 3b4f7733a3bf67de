"""Progress for the CLI: a tqdm bar on an interactive terminal (the ``cli`` extra), plain
periodic lines otherwise. Both are fed by the batch runner's ``BatchProgress`` events."""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any, TextIO

from ._batch import BatchProgress

__all__ = ["Reporter", "make_reporter"]


class Reporter:
    """Plain lines, at most one every ``interval`` seconds, plus a final one."""

    def __init__(self, total: int | None, stream: TextIO, interval: float = 2.0) -> None:
        self.total = total
        self.stream = stream
        self.interval = interval
        self._last = 0.0
        self.event: BatchProgress | None = None

    def _line(self, event: BatchProgress) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        rate = event.done / event.elapsed if event.elapsed > 0 else 0.0
        eta = ""
        if self.total is not None and rate > 0:
            eta = f", ETA {max(0.0, (self.total - event.done) / rate):.0f}s"
        return (
            f"[aihubmix] {event.done}{total} done, {event.failed} failed, {event.retried} retried,"
            f" {event.images_per_second:.1f} images/s{eta}"
        )

    def __call__(self, event: BatchProgress) -> None:
        self.event = event
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(self._line(event), file=self.stream, flush=True)

    def close(self) -> None:
        if self.event is not None:
            print(self._line(self.event), file=self.stream, flush=True)


class _BarReporter(Reporter):
    def __init__(self, total: int | None, stream: TextIO, tqdm: Any) -> None:
        super().__init__(total, stream)
        self._bar = tqdm(total=total, unit="item", file=stream, dynamic_ncols=True)

    def __call__(self, event: BatchProgress) -> None:
        self.event = event
        self._bar.update(1)
        self._bar.set_postfix(
            failed=event.failed, retried=event.retried,
            img_s=f"{event.images_per_second:.1f}", refresh=False,
        )  # fmt: skip

    def close(self) -> None:
        self._bar.close()


def make_reporter(total: int | None, stream: TextIO = sys.stderr) -> Reporter:
    if stream.isatty():
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            pass
        else:
            return _BarReporter(total, stream, tqdm)
    return Reporter(total, stream)
