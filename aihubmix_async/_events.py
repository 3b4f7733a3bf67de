"""What hooks and the registry describe: the events around every HTTP attempt, and the
models and parameters the registry knows (re-exported by ``_models``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable
from typing import Any, Literal

import anyio
import attrs

from ._errors import InvalidRequestError

__all__ = [
    "DEFAULT_HOOK_TIMEOUT",
    "ModelInfo",
    "ParamInfo",
    "Phase",
    "RequestEvent",
    "ResponseEvent",
    "call_hook",
    "check_hook_timeout",
]

#: Seconds an ``async`` hook may take before it is cancelled (``Client(hook_timeout=)``).
DEFAULT_HOOK_TIMEOUT = 10.0

_logger = logging.getLogger("aihubmix_async")


#: What an HTTP attempt is for, within its generation.
Phase = Literal["submit", "poll", "download"]


@attrs.frozen(kw_only=True)
class RequestEvent:
    """Passed to ``Client(on_request=...)`` before every HTTP attempt (for metrics, tracing).

    ``url`` is scheme, host and path only: signed query strings are left out. ``call_id`` is
    the same for every request of one generation (its submit, polls and downloads: ``phase``
    says which); in a batch, ``item_index`` and ``item_id`` name the item.

    .. versionchanged:: Unreleased ``call_id``, ``phase``, ``item_index``, ``item_id``.
    """

    method: str
    url: str
    model: str
    attempt: int
    call_id: int = 0
    phase: Phase = "submit"
    item_index: int | None = None
    item_id: str | None = None


@attrs.frozen(kw_only=True)
class ResponseEvent:
    """Passed to ``Client(on_response=...)`` after every HTTP attempt, failed ones included
    (``error`` set). Carries the same ``call_id``, ``phase`` and item as its request's event.
    """

    method: str
    url: str
    model: str
    attempt: int
    status: int | None
    request_id: str | None
    elapsed: float
    error: Exception | None = None
    call_id: int = 0
    phase: Phase = "submit"
    item_index: int | None = None
    item_id: str | None = None


@attrs.frozen(kw_only=True)
class ParamInfo:
    """One parameter a model family accepts."""

    name: str
    type: str
    choices: tuple[str | int, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


@attrs.frozen(kw_only=True)
class ModelInfo:
    """A model the registry knows: the path it is sent as, its aliases and its parameters."""

    name: str
    path: str
    family: str
    aliases: tuple[str, ...] = ()
    params: tuple[ParamInfo, ...] = ()
    asynchronous: bool = False
    route: str = "predictions"
    #: With ``client.models(prices=True)``: US dollars per image (with no parameters set)
    #: and where the figure comes from; None when the model has no known price.
    price_per_image: float | None = None
    price_source: str | None = None


def check_hook_timeout(value: object) -> float | None:
    """``Client(hook_timeout=)``: a positive finite number of seconds, or None (no bound)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise InvalidRequestError(
            f"hook_timeout must be a positive number of seconds or None, got {value!r}",
            field="hook_timeout",
        )
    return float(value)


def being_cancelled() -> bool:
    """Whether the running task itself is being cancelled (a deadline, a task group, Ctrl-C),
    as opposed to a ``CancelledError`` some callback raised of its own.
    """
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def call_hook(
    hook: Callable[[Any], object],
    event: object,
    name: str,
    bound: float | None,
    where: str,
    *details: object,
) -> None:
    """Call a hook, awaiting what it returns if that is awaitable (``async def`` hooks, or a
    sync hook handing back a coroutine), for at most ``bound`` seconds. An observer never
    fails (or re-bills) a generation: an exception is logged with its traceback and
    swallowed, a ``CancelledError`` of the hook's own too (only a cancellation of the call
    itself goes on), and a hook still running after ``bound`` seconds is cancelled and logged.
    ``KeyboardInterrupt`` and ``SystemExit`` are not errors: they stop the program.
    ``where`` (a %-format) and ``details`` say in the log which call the hook was observing.
    """
    try:
        returned = hook(event)
        if inspect.isawaitable(returned):
            with anyio.move_on_after(bound) as scope:
                await returned
            if scope.cancelled_caught:
                _logger.warning(
                    "%s hook did not return within %gs; cancelled and ignored (%s)",
                    name, bound, where % details,
                )  # fmt: skip
    except (Exception, asyncio.CancelledError) as exc:  # an observer's bug is only logged
        if isinstance(exc, asyncio.CancelledError) and being_cancelled():
            raise  # the call itself is being cancelled (deadline, task group, Ctrl-C)
        _logger.exception("%s hook raised; ignored (%s)", name, where % details)
