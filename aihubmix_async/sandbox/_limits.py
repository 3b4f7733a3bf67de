"""A per-key limit like a provider's: concurrent requests and/or requests per minute.

A request over the limit is answered 429 at once (nothing generated, nothing billed): a
concurrency refusal carries no Retry-After, a per-minute one says when the oldest request of
the window leaves it. Keys are held only in memory, hashed, never in stats or events.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque

__all__ = ["KeyLimit", "Refusal"]


class Refusal:
    """Why a request was refused: a message and an optional Retry-After (seconds)."""

    __slots__ = ("message", "retry_after")

    def __init__(self, message: str, retry_after: float | None) -> None:
        self.message = message
        self.retry_after = retry_after


class KeyLimit:
    """Counts each key's requests in flight and within the last minute."""

    def __init__(self, *, concurrency: int | None = None, rpm: int | None = None) -> None:
        for name, value in (("key_concurrency", concurrency), ("key_rpm", rpm)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.concurrency = concurrency
        self.rpm = rpm
        self._in_flight: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}

    @property
    def active(self) -> bool:
        return self.concurrency is not None or self.rpm is not None

    @staticmethod
    def _id(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def admit(self, key: str) -> int | Refusal:
        """The key's in-flight count including this request, or why it is refused. An
        admitted request must be followed by :meth:`leave`.
        """
        key_id = self._id(key)
        in_flight = self._in_flight.get(key_id, 0)
        if self.concurrency is not None and in_flight >= self.concurrency:
            return Refusal(
                f"too many concurrent requests for this key (limit {self.concurrency})", None
            )
        if self.rpm is not None:
            now = time.monotonic()
            recent = self._recent.setdefault(key_id, deque())
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= self.rpm:
                wait = max(1, math.ceil(recent[0] + 60.0 - now))
                return Refusal(f"rate limit reached for this key ({self.rpm} per minute)", wait)
            recent.append(now)
        self._in_flight[key_id] = in_flight + 1
        return in_flight + 1

    def leave(self, key: str) -> None:
        key_id = self._id(key)
        left = self._in_flight.get(key_id, 1) - 1
        if left:
            self._in_flight[key_id] = left
        else:
            self._in_flight.pop(key_id, None)
