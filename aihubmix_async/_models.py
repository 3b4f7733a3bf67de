"""Frozen public values: what a generation returns (defined in :mod:`._results`), what the
registry describes, and the values a batch shares with the command line and the dataset
writer (its items, outcomes, progress and summary).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import attrs

from ._errors import InvalidRequestError
from ._events import ModelInfo, ParamInfo, Phase, RequestEvent, ResponseEvent
from ._files import write_atomic
from ._results import (
    Cost,
    GeneratedImage,
    ImageResult,
    Usage,
    extension_for,
    image_type,
    sniff_mime_type,
)

__all__ = [
    "BatchProgress",
    "BatchSummary",
    "CallStats",
    "Cost",
    "Failure",
    "GeneratedImage",
    "ImageRequest",
    "ImageResult",
    "ModelInfo",
    "Outcome",
    "ParamInfo",
    "Phase",
    "ProgressHook",
    "RequestEvent",
    "ResponseEvent",
    "Success",
    "Usage",
    "extension_for",
    "image_type",
    "request_from_mapping",
    "sniff_mime_type",
    "write_atomic",
]


#: Call ids: one per generation (a ``generate`` call or a batch item), unique in the process.
_call_ids = itertools.count(1)


@attrs.define
class CallStats:
    """Per-generation bookkeeping: HTTP requests made, retries among them, the task id, and
    what links the generation's hook events (its call id, its batch item).
    """

    #: Links one generation's submit, polls and downloads in hook events and traces.
    call_id: int = attrs.field(factory=_call_ids.__next__)
    #: The batch item's index in the input (None outside a batch).
    item_index: int | None = None
    #: The batch item's id (``ImageRequest.id``), when it has one.
    item_id: str | None = None
    requests: int = 0
    retries: int = 0
    #: Seconds spent waiting before retries (bounded by ``RetryPolicy.max_retry_wait``).
    waited: float = 0.0
    #: The server's task id once a submit answered one (or the resumed task's id).
    task_id: str | None = None

    @property
    def attempts(self) -> int:
        """Tries of the generation: 0 if nothing was sent, else 1 + retries."""
        return 1 + self.retries if self.requests else 0


# --- batch values: shared by the batch runner, the command line and the dataset writer ------


class _FrozenParams(Mapping[str, Any]):
    """A read-only copy of a parameter mapping that compares by content, and hashes when its
    values do (by keys otherwise: equality still decides).
    """

    __slots__ = ("_data",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        self._data = dict(value)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._data == dict(other)

    def __hash__(self) -> int:
        try:
            return hash(frozenset(self._data.items()))
        except TypeError:  # unhashable values (lists, images)
            return hash(frozenset(self._data))

    def __repr__(self) -> str:
        return repr(self._data)


_NO_PARAMS: Mapping[str, Any] = _FrozenParams({})


def _frozen_params(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is _NO_PARAMS or isinstance(value, _FrozenParams):
        return value
    return _FrozenParams(value) if value else _NO_PARAMS


@attrs.frozen(kw_only=True)
class ImageRequest:
    """One item of a batch: a prompt, optionally its own model, parameters and id.

    ``params`` take part in equality and hashing. ``task_id`` resumes a task an earlier submit
    answered (from a run journal): the item is not submitted again (nothing billed); the task
    is polled and its images downloaded.
    """

    prompt: str
    model: str | None = None
    params: Mapping[str, Any] = attrs.field(default=_NO_PARAMS, converter=_frozen_params)
    id: str | None = None
    task_id: str | None = None


@attrs.frozen(kw_only=True)
class _Ended:
    """What every outcome carries. ``task_id`` is the server's task id whenever one was known
    (success or failure), so a failed or interrupted task can be resumed with
    ``ImageRequest(task_id=...)``.
    """

    index: int
    request: ImageRequest
    attempts: int = 0
    elapsed: float = 0.0
    task_id: str | None = None


@attrs.frozen(kw_only=True)
class Success(_Ended):
    """An item that produced images: ``result`` is set, ``error`` is ``None``."""

    result: ImageResult
    #: Always ``None``: attribute access works on either variant of :data:`Outcome`.
    error: None = attrs.field(default=None, init=False)
    #: Always ``True``; ``if outcome.ok:`` narrows an :data:`Outcome` to :class:`Success`.
    ok: Literal[True] = attrs.field(default=True, init=False, repr=False)


@attrs.frozen(kw_only=True)
class Failure(_Ended):
    """An item that failed: ``error`` is set, ``result`` is ``None``.

    The SDK's own failures are :class:`AIHubMixError` subclasses; an exception raised by a
    caller's hook (``on_task``) is kept as raised.
    """

    error: Exception
    #: Always ``None``: attribute access works on either variant of :data:`Outcome`.
    result: None = attrs.field(default=None, init=False)
    #: Always ``False``; the ``else`` branch of ``if outcome.ok:`` sees a :class:`Failure`.
    ok: Literal[False] = attrs.field(default=False, init=False, repr=False)


#: How one item of a batch ended: its ``result`` or its ``error``, never both, never neither.
#: ``if outcome.ok:`` (mypy) or ``isinstance(outcome, Success)`` (every checker) narrows it.
Outcome = Success | Failure


@attrs.frozen(kw_only=True)
class BatchProgress:
    """A progress event, sent after every finished item (for progress bars and streams)."""

    outcome: Outcome
    done: int
    succeeded: int
    failed: int
    retried: int
    images: int
    elapsed: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.elapsed if self.elapsed > 0 else 0.0


@attrs.frozen(kw_only=True)
class BatchSummary:
    """The accounting of a batch: every item pulled from the input is in exactly one of
    ``succeeded``, ``failed`` (both as delivered to the consumer) or ``cancelled``.
    """

    started: int
    succeeded: int
    failed: int
    cancelled: int
    #: Items never pulled from the input (known for sized inputs; None otherwise).
    not_started: int | None
    retries: int
    elapsed: float
    #: Images delivered, and the sum of their known costs (US dollars; items without a price
    #: add nothing: ``priced`` of ``succeeded`` had one).
    images: int = 0
    cost: float = 0.0
    priced: int = 0
    #: Set when ``max_cost`` / ``max_total_images`` stopped the batch: what the cap was.
    capped: str | None = None


ProgressHook = Callable[[BatchProgress], Any]


def request_from_mapping(data: Mapping[str, Any], default_id: str | None = None) -> ImageRequest:
    """An ImageRequest from ``{"prompt", "model"?, "id"?, "task_id"?, "params"?, **params}``
    (batch items and prompt-file lines alike). Problems raise InvalidRequestError (also a
    ValueError).
    """
    data = dict(data)
    prompt = data.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("missing or empty 'prompt'", field="prompt")
    model = data.pop("model", None)
    if model is not None and not isinstance(model, str):
        raise InvalidRequestError("'model' must be a string", field="model")
    item_id = data.pop("id", None)
    task_id = data.pop("task_id", None)
    if task_id is not None and (not isinstance(task_id, str) or not task_id):
        raise InvalidRequestError("'task_id' must be a non-empty string", field="task_id")
    params = data.pop("params", None) or {}
    if not isinstance(params, dict):
        raise InvalidRequestError("'params' must be an object", field="params")
    return ImageRequest(
        prompt=prompt,
        model=model or None,
        id=default_id if item_id in (None, "") else str(item_id),
        params={**data, **params},
        task_id=task_id,
    )
