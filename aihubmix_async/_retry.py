"""Retry decisions, backoff with jitter, Retry-After parsing, and the testing switch."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

import anyio

from ._config import RetryPolicy
from ._errors import (
    AIHubMixError,
    APIStatusError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
)

__all__ = [
    "backoff_delay",
    "is_testing",
    "parse_retry_after",
    "retry_sleep",
    "set_testing",
    "should_retry",
]

_testing = False


def set_testing(enabled: bool = True) -> _TestingToggle:  # noqa: FBT001, FBT002
    """Retry testing mode: retries still happen, but without waiting between them.

    Call it plainly (``set_testing(True)``) or use it as a context manager
    (``with set_testing(): ...``) to restore the previous mode on exit.
    """
    global _testing
    previous, _testing = _testing, enabled
    return _TestingToggle(previous)


class _TestingToggle:
    def __init__(self, previous: bool) -> None:  # noqa: FBT001
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        global _testing  # noqa: PLW0603
        _testing = self._previous


def is_testing() -> bool:
    return _testing


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - time.time())


def backoff_delay(attempt: int, policy: RetryPolicy) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    ceiling = min(policy.max_backoff, policy.initial_backoff * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311


def should_retry(exc: AIHubMixError, *, billed: bool, policy: RetryPolicy) -> bool:
    """Whether ``exc`` may be retried. A billed POST is resent only when surely not processed."""
    unsafe_ok = not billed or policy.retry_unsafe_posts
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code == 503 or unsafe_ok
    if isinstance(exc, APIStatusError):
        return exc.status_code == 408 and unsafe_ok
    if isinstance(exc, TransportError):
        return not exc.request_sent or unsafe_ok
    if isinstance(exc, ResponseFormatError):
        return not billed  # a garbled poll or download is fetched again; a billed answer is not
    return False


async def retry_sleep(seconds: float) -> None:
    if seconds > 0 and not _testing:
        await anyio.sleep(seconds)
