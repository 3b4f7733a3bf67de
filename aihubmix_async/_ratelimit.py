"""A smooth requests-per-minute limiter (GCRA / virtual scheduling): no burst at start."""

from __future__ import annotations

import anyio

__all__ = ["RateLimiter"]


class RateLimiter:
    """Spaces acquisitions ``60 / rpm`` seconds apart, so a minute's budget is never spent in
    a burst. Each caller books the next free slot synchronously, then sleeps until it.
    """

    def __init__(self, rpm: float) -> None:
        if not rpm > 0:
            raise ValueError(f"rpm must be positive, got {rpm!r}")
        self.rpm = rpm
        self._interval = 60.0 / rpm
        self._next = 0.0

    async def acquire(self) -> None:
        now = anyio.current_time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await anyio.sleep(slot - now)
