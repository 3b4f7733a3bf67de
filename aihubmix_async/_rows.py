"""Generation outcomes as flat table rows: the columns shared by the Ray Data and Hugging Face
``datasets`` helpers (and the CLI's Parquet layout). Imports neither Ray nor ``datasets``.

Every input row ends as rows here, never as an exception: one row per image on success, one
row with ``error_type`` / ``error_message`` set (and no image) on failure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._client import Client
from ._errors import InvalidRequestError
from ._models import ImageRequest, Outcome
from ._registry import Registry

__all__ = [
    "COLUMNS",
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


def _row_params(value: Any) -> dict[str, Any]:
    if value is None or value == "":
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


def requests_from_columns(
    batch: Mapping[str, Sequence[Any]], model: str, params: Mapping[str, Any]
) -> list[tuple[ImageRequest, InvalidRequestError | None]]:
    """One request per input row (columns ``prompt``, optional ``id``, ``model``, ``params``),
    paired with the error of a row that cannot be sent (reported as its row, never raised).
    """
    if "prompt" not in batch:
        raise InvalidRequestError("the input needs a 'prompt' column", field="prompt")
    prompts = list(batch["prompt"])
    blank = [None] * len(prompts)
    ids, models, extras = (list(batch.get(name) or blank) for name in ("id", "model", "params"))
    requests: list[tuple[ImageRequest, InvalidRequestError | None]] = []
    for prompt, given_id, row_model, extra in zip(prompts, ids, models, extras, strict=True):
        name = row_model or model
        text = prompt if isinstance(prompt, str) else ""
        error = None
        try:
            merged = {**params, **_row_params(extra)}
        except InvalidRequestError as exc:
            merged, error = dict(params), exc
        rid = str(given_id) if given_id not in (None, "") else item_id(name, text, merged)
        requests.append((ImageRequest(prompt=text, model=name, params=merged, id=rid), error))
    return requests


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
    batch: Mapping[str, Sequence[Any]], model: str, params: Mapping[str, Any], error: Exception
) -> dict[str, list[Any]]:
    """Every row of ``batch`` as an error row (a worker whose client cannot open)."""
    requests = requests_from_columns(batch, model, params)
    return to_columns([_error_row(request, model, error) for request, _ in requests])


def to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in COLUMNS}


async def generate_columns(
    client: Client,
    batch: Mapping[str, Sequence[Any]],
    *,
    model: str,
    params: Mapping[str, Any],
    concurrency: int,
    **batch_options: Any,
) -> dict[str, list[Any]]:
    """Generate every row of a columnar batch; the result has :data:`COLUMNS`. Nothing raises
    for a row: failures (including the batch stopping early) are error rows.
    """
    requests = requests_from_columns(batch, model, params)
    valid = [request for request, error in requests if error is None]
    finished: dict[int, list[dict[str, Any]]] = {}
    stopped: Exception | None = None
    try:
        async with client.batch(valid, concurrency=concurrency, **batch_options) as outcomes:
            async for outcome in outcomes:
                finished[outcome.index] = outcome_rows(outcome, model)
    except Exception as exc:  # e.g. the 429 breaker: the items it never ran become error rows  # noqa: BLE001
        stopped = exc
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
