"""Generation outcomes as flat table rows: the columns shared by the Ray Data and Hugging Face
``datasets`` helpers (and the CLI's Parquet layout). Imports neither Ray nor ``datasets``.

Every input row ends as rows here, never as an exception: one row per image on success, one
row with ``error_type`` / ``error_message`` set (and no image) on failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

from ._client import Client
from ._errors import AuthenticationError, BatchAbortedError, InvalidRequestError
from ._models import ImageRequest, Outcome
from ._registry import Registry

__all__ = [
    "COLUMNS",
    "Gate",
    "check_model_params",
    "failed_columns",
    "generate_columns",
    "item_id",
    "outcome_rows",
    "params_json",
    "requests_from_columns",
]

#: The output columns, in order (the CLI's Parquet layout uses the same names).
COLUMNS = (
    "id",
    "prompt",
    "model",
    "params",  # JSON text
    "image",  # bytes, or None on failure
    "mime_type",
    "request_id",
    "usage",  # JSON text or None
    "cost",  # float or None
    "attempts",
    "elapsed",  # seconds
    "error_type",  # None on success
    "error_message",
)


def params_json(params: Mapping[str, Any]) -> str:
    """Parameters as stable JSON text (sorted keys); values JSON cannot hold become text."""
    return json.dumps(dict(params), sort_keys=True, ensure_ascii=False, default=str)


def item_id(model: str, prompt: str, params: Mapping[str, Any]) -> str:
    """A stable id for an input row without one: the same request gets the same id on every
    run (so ``skip_done`` can find it), whatever order the rows arrive in.
    """
    text = json.dumps([model, prompt, params_json(params)], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_model_params(model: str, params: Mapping[str, Any]) -> None:
    """Refuse an unknown model or bad parameters on the driver, before any worker starts."""
    adapter, path = Registry.default().resolve(model)
    adapter.build_request(path, "parameter check", params)


def _missing(value: Any) -> bool:
    """None, "" or a float NaN: how pandas and Arrow conversions spell a missing cell."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _row_params(value: Any) -> dict[str, Any]:
    if _missing(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidRequestError(
                "the 'params' column must hold JSON objects", field="params"
            ) from exc
    if not isinstance(value, Mapping):
        raise InvalidRequestError("the 'params' column must hold JSON objects", field="params")
    return {k: v for k, v in value.items() if v is not None}


def _column(batch: Mapping[str, Any], name: str) -> list[Any] | None:
    """A column as a list. One row's values (a ``datasets`` map without ``batched=True``
    hands the function a row, whose prompt would be iterated letter by letter) are refused.
    """
    values = batch.get(name)
    if values is None:
        return None
    if isinstance(values, str | bytes | Mapping) or not hasattr(values, "__len__"):
        raise InvalidRequestError(
            f"the {name!r} column holds one value ({_kind(values)}), not a batch of rows:"
            " map with batched=True",
            field=name,
        )
    return list(values)


def _row_request(
    prompt: Any, given_id: Any, row_model: Any, extra: Any, model: str, params: Mapping[str, Any]
) -> tuple[ImageRequest, InvalidRequestError | None]:
    error = None
    name = model if _missing(row_model) else row_model
    if not isinstance(name, str):
        error = InvalidRequestError(
            f"the 'model' column must hold text, got {_kind(name)}", field="model"
        )
        name = str(name)
    text = prompt if isinstance(prompt, str) else ""
    if not isinstance(prompt, str) and error is None:
        error = InvalidRequestError(
            f"the 'prompt' column must hold text, got {_kind(prompt)}", field="prompt"
        )
    try:
        merged = {**params, **_row_params(extra)}
    except InvalidRequestError as exc:
        merged, error = dict(params), error or exc
    rid = item_id(name, text, merged) if _missing(given_id) else str(given_id)
    return ImageRequest(prompt=text, model=name, params=merged, id=rid), error


def requests_from_columns(
    batch: Mapping[str, Any], model: str, params: Mapping[str, Any]
) -> list[tuple[ImageRequest, InvalidRequestError | None]]:
    """One request per input row (columns ``prompt``, optional ``id``, ``model``, ``params``),
    paired with the error of a row that cannot be sent (reported as its row, never raised).
    A missing id (None, "", NaN) gets a stable one from model, prompt and parameters.
    """
    prompts = _column(batch, "prompt")
    if prompts is None:
        raise InvalidRequestError("the input needs a 'prompt' column", field="prompt")
    blank = [None] * len(prompts)
    ids, models, extras = (_column(batch, name) or blank for name in ("id", "model", "params"))
    return [
        _row_request(prompt, given_id, row_model, extra, model, params)
        for prompt, given_id, row_model, extra in zip(prompts, ids, models, extras, strict=True)
    ]


def _error_row(request: ImageRequest, model: str, error: BaseException, attempts: int = 0,
               elapsed: float = 0.0) -> dict[str, Any]:  # fmt: skip
    return {
        "id": request.id,
        "prompt": request.prompt,
        "model": request.model or model,
        "params": params_json(request.params),
        "image": None,
        "mime_type": None,
        "request_id": getattr(error, "request_id", None),
        "usage": None,
        "cost": None,
        "attempts": attempts,
        "elapsed": elapsed,
        "error_type": type(error).__name__,
        "error_message": str(error),
    }


def outcome_rows(outcome: Outcome, model: str) -> list[dict[str, Any]]:
    """The rows of one finished item: one per image, or one error row."""
    request = outcome.request
    result = outcome.result
    if result is None:
        error = outcome.error if outcome.error is not None else RuntimeError("no result")
        return [_error_row(request, model, error, outcome.attempts, outcome.elapsed)]
    usage = None
    if result.usage is not None:
        u = result.usage
        usage = json.dumps({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                            "total_tokens": u.total_tokens})  # fmt: skip
    cost = getattr(result, "cost", None)  # set where the SDK knows the price
    common = {
        "id": request.id,
        "prompt": request.prompt,
        "model": request.model or model,  # as asked (error rows say the same)
        "params": params_json(request.params),
        "request_id": result.request_id,
        "usage": usage,
        "cost": float(cost) if isinstance(cost, int | float) else None,
        "attempts": outcome.attempts,
        "elapsed": outcome.elapsed,
        "error_type": None,
        "error_message": None,
    }
    return [
        {**common, "image": image.data, "mime_type": image.mime_type} for image in result.images
    ]


def failed_columns(
    batch: Mapping[str, Any], model: str, params: Mapping[str, Any], error: Exception
) -> dict[str, list[Any]]:
    """Every row of ``batch`` as an error row (a worker whose client cannot open)."""
    requests = requests_from_columns(batch, model, params)
    return to_columns([_error_row(request, model, error) for request, _ in requests])


def to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in COLUMNS}


class Gate:
    """What the batches one worker runs at once share (a Ray actor runs several calls at once,
    ``datasets`` up to a thousand batches on one loop): at most ``concurrency`` items taken
    across them, the oldest batch first (so batches finish one after another, as the pipeline
    refills, not all at the end together), and once the server refuses the key (401) no item
    is sent any more, in any batch. Make one per client, on the client's event loop.
    """

    def __init__(self, concurrency: int | None) -> None:
        # None: no shared limit, only the refused key (the client's own limit still holds).
        self._free = math.inf if concurrency is None else concurrency
        self.limited = concurrency is not None
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # batch, ticket, waiter
        self._batches = itertools.count()
        self._tickets = itertools.count()
        #: The 401 that refused the key, once one came back.
        self.refused: AuthenticationError | None = None

    def new_batch(self) -> int:
        """The next batch's place in line."""
        return next(self._batches)

    async def take(self, batch: int) -> None:
        """Wait for a slot; the waiters of the oldest batch are served first."""
        while self._waiting and self._waiting[0][2].done():  # cancelled while waiting
            heapq.heappop(self._waiting)
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (batch, next(self._tickets), future))
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():  # handed a slot, then cancelled
                self.give()
            raise

    def give(self) -> None:
        """Free a slot: to the first waiter still waiting, or back to the pool."""
        while self._waiting:
            future = heapq.heappop(self._waiting)[2]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def not_sent(self) -> BatchAbortedError:
        """The error of a row never sent because the key was refused."""
        message = self.refused.message if self.refused is not None else ""
        return BatchAbortedError(
            f"not sent: the server refused the API key ({message}); fix AIHUBMIX_API_KEY and"
            " rerun (skip_done resends only the failed rows)",
            refusing_for=0.0,
        )


class _Feed:
    """One batch's requests, each handed to the runner once the gate has a slot for it."""

    def __init__(self, gate: Gate, requests: Sequence[ImageRequest]) -> None:
        self._gate = gate
        self._batch = gate.new_batch()
        self._requests = iter(requests)
        self.taken = 0
        self.returned = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ImageRequest:
        request = next(self._requests, None)
        if request is None:
            raise StopAsyncIteration
        await self._gate.take(self._batch)
        if self._gate.refused is not None:  # refused while this one waited: it stays unsent
            self._gate.give()
            raise StopAsyncIteration
        self.taken += 1
        return request

    def give_back(self, count: int = 1) -> None:
        self.returned += count
        for _ in range(count):
            self._gate.give()


def _unrefused(gate: Gate, requests: Sequence[ImageRequest]) -> Iterator[ImageRequest]:
    for request in requests:
        if gate.refused is not None:
            return
        yield request


def _interrupt_of(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The KeyboardInterrupt (or SystemExit) inside a task group's error, if there is one."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found = _interrupt_of(error)
            if found is not None:
                return found
        elif isinstance(error, KeyboardInterrupt | SystemExit):
            return error
    return None


async def _run(
    client: Client,
    valid: Sequence[ImageRequest],
    gate: Gate,
    finished: dict[int, list[dict[str, Any]]],
    model: str,
    options: Mapping[str, Any],
) -> Exception | None:
    """Run ``valid`` through the client, filling ``finished`` (by index in ``valid``); the
    error that ended the batch early, if one did. Ctrl-C ends it as a plain KeyboardInterrupt.
    """
    feed = _Feed(gate, valid)
    # Without a shared limit, a plain iterator: the batch runner's fast path, as before.
    items = feed if gate.limited else _unrefused(gate, valid)
    try:
        async with client.batch(items, **options) as outcomes:
            async for outcome in outcomes:
                if isinstance(outcome.error, AuthenticationError) and gate.refused is None:
                    gate.refused = outcome.error  # before the slot is free: no one takes it
                feed.give_back()
                finished[outcome.index] = outcome_rows(outcome, model)
    except Exception as exc:  # e.g. the 429 breaker: the items it never ran become error rows  # noqa: BLE001
        return exc
    except BaseExceptionGroup as group:  # a task of the batch met Ctrl-C (a loop without a
        interrupt = _interrupt_of(group)  # Runner, as in `datasets`): raise it as itself
        if interrupt is None:
            raise
        raise interrupt from None
    finally:
        feed.give_back(feed.taken - feed.returned)  # taken, never delivered
    return None


async def generate_columns(
    client: Client,
    batch: Mapping[str, Any],
    *,
    model: str,
    params: Mapping[str, Any],
    concurrency: int,
    gate: Gate | None = None,
    **batch_options: Any,
) -> dict[str, list[Any]]:
    """Generate every row of a columnar batch; the result has :data:`COLUMNS`. Nothing raises
    for a row: failures (including the batch stopping early, or the key refused before this
    batch, in which case nothing is sent) are error rows. Batches run at once on one client
    share its ``gate`` (a new one per call otherwise).
    """
    gate = gate if gate is not None else Gate(concurrency)
    requests = requests_from_columns(batch, model, params)
    valid = [request for request, error in requests if error is None]
    finished: dict[int, list[dict[str, Any]]] = {}
    stopped: Exception | None = None
    if valid and gate.refused is None:
        options = {**batch_options, "concurrency": concurrency}
        stopped = await _run(client, valid, gate, finished, model, options)
    if gate.refused is not None:
        stopped = gate.not_sent()
    rows: list[dict[str, Any]] = []
    index = 0
    for request, error in requests:
        if error is not None:
            rows.append(_error_row(request, model, error))
            continue
        done = finished.get(index)
        index += 1
        if done is None:
            done = [_error_row(request, model, stopped or RuntimeError("the item was not run"))]
        rows.extend(done)
    return to_columns(rows)
