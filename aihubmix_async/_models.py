"""Frozen public values: what a generation returns and what the registry describes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import attrs

from ._errors import InvalidRequestError
from ._events import ModelInfo, ParamInfo, Phase, RequestEvent, ResponseEvent
from ._files import save_into, write_atomic
from ._imageinfo import ImageView, images_html
from ._provenance import LazyProvenance, embed
from ._types import JSONValue

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

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


_NATIVE = ("image/png", "image/jpeg")  # shown by notebooks from _repr_png_/_repr_jpeg_


def image_type(data: bytes) -> str | None:
    """The image type the magic bytes prove (PNG, JPEG, WebP, GIF), else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def sniff_mime_type(data: bytes, fallback: str | None = None) -> str:
    """The image type by its magic bytes; the server's claim only when the bytes don't say
    (for display only: whether bytes *are* an image is :func:`image_type`'s call).
    """
    proven = image_type(data)
    if proven is not None:
        return proven
    if fallback:
        fallback = fallback.lower()
        return fallback if "/" in fallback else f"image/{'jpeg' if fallback == 'jpg' else fallback}"
    return "application/octet-stream"


def extension_for(mime_type: str) -> str:
    """File extension (with the dot) for a MIME type; ``.bin`` when unknown."""
    return _EXTENSIONS.get(mime_type, ".bin")


def _repr_data(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


@attrs.frozen(kw_only=True)
class GeneratedImage(ImageView):
    """One image. ``data`` is ``None`` when it was not downloaded (``download=False``): then
    only ``url`` is set, and ``mime_type`` is the server's claim (or a guess from the URL).
    """

    data: bytes | None = attrs.field(repr=_repr_data)
    mime_type: str
    url: str | None = None
    #: What :meth:`save` writes into the file's metadata: prompt, model, parameters, request
    #: id (set on the images of a generation's :class:`ImageResult`).
    provenance: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def extension(self) -> str:
        """File extension for :attr:`mime_type`, e.g. ``.png``."""
        return extension_for(self.mime_type)

    async def save(self, path: str | os.PathLike[str], *, provenance: bool = True) -> Path:
        """Write the image atomically (temporary name, then rename) in a worker thread.

        A directory path gets a file name chosen by content type. Returns the written path.
        With ``provenance`` (the default) PNG, JPEG and WebP files carry :attr:`provenance` in
        their metadata (text chunks, COM/XMP, XMP), the pixels untouched.
        """
        if self.data is None:
            raise ValueError("image was not downloaded (download=False); nothing to save")
        name = f"image{self.extension}"
        data = embed(self.data, self.provenance) if provenance else self.data
        return await anyio.to_thread.run_sync(save_into, Path(path), data, name)


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


@attrs.frozen(kw_only=True)
class Usage:
    """Token usage as reported by the server (gpt-image models)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


@attrs.frozen(kw_only=True)
class Cost:
    """What a generation cost (or will cost), in US dollars, and where the figure comes from.

    ``basis`` is ``"tokens"`` (the server's token usage times the token prices) or
    ``"per image"`` (an estimate: images times the model's price per image). ``source`` says
    which prices: ``"snapshot YYYY-MM-DD"`` (shipped with the package), ``"catalogue"`` (the
    live ``/api/v1/models``) or ``"override"`` (the caller's own).
    """

    amount: float
    source: str
    basis: str = "per image"


@attrs.frozen(kw_only=True)
class ImageResult:
    """The result of one generation.

    ``raw`` is the parsed response body, except that inline base64 images are replaced by a
    short marker once decoded into :attr:`images` (so a result does not hold them twice).
    """

    model: str
    images: tuple[GeneratedImage, ...]
    usage: Usage | None = None
    request_id: str | None = None
    task_id: str | None = None
    raw: JSONValue = attrs.field(default=None, repr=False, eq=False)
    #: The prompt and parameters sent; given, they become the images' :attr:`provenance`.
    prompt: str | None = attrs.field(default=None, repr=False, eq=False)
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.prompt is None:
            return
        fields = LazyProvenance(
            prompt=self.prompt, model=self.model, params=self.params,
            request_id=self.request_id, task_id=self.task_id,
        )  # fmt: skip
        # Fresh images (no provenance yet: the pipeline's, one object each) get it in place,
        # which costs a fraction of a copy on the hot path; any other image is copied.
        if len(self.images) == 1:  # the common case: no list, no new tuple
            image = self.images[0]
            if type(image.provenance) is dict and not image.provenance:
                object.__setattr__(image, "provenance", fields)
                return
        images = []
        for image in self.images:
            if type(image.provenance) is dict and not image.provenance:
                object.__setattr__(image, "provenance", fields)
            else:
                image = attrs.evolve(image, provenance=fields)  # noqa: PLW2901
            images.append(image)
        object.__setattr__(self, "images", tuple(images))  # frozen: set once, while being built

    #: What this generation cost, when the model has a price (see :class:`Cost`).
    cost: Cost | None = None

    @property
    def image(self) -> GeneratedImage:
        """The first image (every successful result has at least one)."""
        return self.images[0]

    def without_provenance(self) -> ImageResult:
        """A copy whose images :meth:`GeneratedImage.save` writes as they came (no metadata)."""
        images = tuple(attrs.evolve(image, provenance={}) for image in self.images)
        return attrs.evolve(self, images=images, prompt=None)

    def _repr_png_(self) -> bytes | None:
        return self.images[0]._repr_png_() if len(self.images) == 1 else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.images[0]._repr_jpeg_() if len(self.images) == 1 else None

    def _repr_html_(self) -> str | None:
        shown = [(i.data, i.mime_type) for i in self.images if i.data is not None]
        if not shown or (len(self.images) == 1 and self.images[0].mime_type in _NATIVE):
            return None
        return images_html(shown, f"{self.model} · {len(shown)} image(s)")


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
