"""When a batch gives up: the failures that make every further item pointless.

A batch captures each item's error as its outcome and goes on; two answers end it instead,
because every item still to start would meet them too: the server refusing everything (only
429s) for ``give_up_after`` seconds, and the server refusing the API key itself (401). Items
already running finish and are delivered; the rest count in ``summary.not_started``, and the
consumer's loop ends with the :class:`BatchAbortedError` returned here.
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import AuthenticationError, BatchAbortedError, RateLimitError

__all__ = ["abort_for"]


def abort_for(
    error: Exception, *, refusing_for: Callable[[], float], give_up_after: float | None
) -> BatchAbortedError | None:
    """The error that ends the batch after an item failed with ``error``, or None to go on.

    ``refusing_for()`` is how long the server has answered this client nothing but 429.
    """
    if isinstance(error, RateLimitError) and give_up_after is not None:
        refused = refusing_for()
        if refused < give_up_after:
            return None
        return BatchAbortedError(
            f"batch stopped: the server answered only 429 for {refused:.0f}s"
            f" (give_up_after={give_up_after:g}s); items not started are in"
            " summary.not_started",
            refusing_for=refused,
        )
    if isinstance(error, AuthenticationError):
        return BatchAbortedError(
            f"batch stopped: the server refused the API key ({error.message}); no"
            " further item was started; fix the key and rerun",
            refusing_for=0.0,
        )
    return None
