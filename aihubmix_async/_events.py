"""What hooks and the registry describe: the events around every HTTP attempt, and the
models and parameters the registry knows (re-exported by ``_models``).
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["ModelInfo", "ParamInfo", "Phase", "RequestEvent", "ResponseEvent"]


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
