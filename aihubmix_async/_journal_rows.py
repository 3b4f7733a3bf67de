"""What a group commit writes for each outcome: the journal rows' new values (one ``UPDATE``
per kind, run with ``executemany``) and the lines appended to ``metadata.jsonl`` and
``errors.jsonl``. Pure computation over rows already read: the writer thread runs it before
its transaction begins, so the transaction holds the database lock only to write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import Any

from ._batch import Outcome
from ._errors import TransportError
from ._journal_files import dump_line, error_row, metadata_records
from ._json import dumps, loads
from ._models import ImageResult

__all__ = ["FAILED", "SUBMITTED", "Updates", "mark_done", "rows_of", "updates"]

_ROW = "id, line, prompt, model, params, stem, state, attempts, task_id"

SUBMITTED = (
    "UPDATE items SET state = 'submitted', task_id = ?, request_id = coalesce(?, request_id),"
    " updated = ? WHERE id = ? AND state != 'done'"
)
# A group's rows are read and marked done with a few statements of fixed sizes (64, 16, 4, 1
# rows: few texts, all kept in the statement cache), not with ``executemany``, which steps once
# per row and lets go of the GIL at every step: a hand-over to the busy event loop each time.
# Values are bound, never passed through JSON, whose SQLite functions cut text at a NUL (ids
# may hold one); and never padded with NULLs: binding None costs the sqlite3 module a failed
# adapter lookup, a formatted AttributeError, per value.
_SIZES = (64, 16, 4, 1)
_DONE_COLUMNS = ("files", "usage", "request_id", "task_id", "attempts", "elapsed", "updated", "id")
_DONE_ROW = f"({','.join('?' * len(_DONE_COLUMNS))})"
_SQL_ROWS_OF = {
    size: f"SELECT json_group_array(json_array({_ROW})) FROM items"  # noqa: S608  (constant text)
    f" WHERE id IN ({','.join('?' * size)})"
    for size in _SIZES
}
_SQL_DONE = {
    size: "UPDATE items SET state = 'done', "  # noqa: S608  (constant text)
    + ", ".join(f"{c} = u.column{k}" for k, c in enumerate(_DONE_COLUMNS[:-1], 1))
    + ", error_type = NULL, error_message = NULL, status_code = NULL, retryable = NULL"
    f" FROM (VALUES {', '.join([_DONE_ROW] * size)}) AS u"
    f" WHERE items.id = u.column{len(_DONE_COLUMNS)}"
    for size in _SIZES
}
FAILED = (
    "UPDATE items SET state = 'failed', error_type = ?, error_message = ?, status_code = ?,"
    " request_id = coalesce(?, request_id), retryable = ?, task_id = ?, attempts = ?,"
    " elapsed = ?, updated = ? WHERE id = ?"
)


def rows_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """The journal rows of ``ids`` (those it has), by id (columns as in ``_ROW``): a few
    statements, each giving one row out of SQLite (their rows as JSON).
    """
    rows: dict[str, tuple[Any, ...]] = {}
    for size, chunk in _sized(ids):
        for row in loads(db.execute(_SQL_ROWS_OF[size], chunk).fetchone()[0]):
            rows[row[0]] = tuple(row)
    return rows


def mark_done(db: sqlite3.Connection, done: Sequence[tuple[Any, ...]]) -> None:
    """Mark the items of ``done`` (``_done`` tuples) done, in a few statements."""
    for size, chunk in _sized(done):
        db.execute(_SQL_DONE[size], [value for row in chunk for value in row])


def _sized(values: Sequence[Any]) -> Iterator[tuple[int, Sequence[Any]]]:
    """``values`` in consecutive slices of the sizes in ``_SIZES`` (largest first)."""
    start = 0
    for size in _SIZES:
        while len(values) - start >= size:
            yield size, values[start : start + size]
            start += size


class Updates:
    """A group's ``DONE`` and ``FAILED`` parameters and its new file lines."""

    __slots__ = ("done", "errors", "failed", "meta")

    def __init__(self) -> None:
        self.done: list[tuple[Any, ...]] = []
        self.failed: list[tuple[Any, ...]] = []
        self.meta: list[bytes] = []
        self.errors: list[bytes] = []


def updates(outcomes: Sequence[Outcome], rows: dict[str, tuple[Any, ...]],
            files: dict[str, list[tuple[str, str]]], now: float, strip: str
            ) -> Updates:  # fmt: skip
    """The new values of the rows of ``outcomes`` not done yet (``files``: each result's
    placed (name, MIME type) list; ``strip``: the metadata file's folder, cut from names).
    """
    out = Updates()
    for outcome in outcomes:
        row = rows.get(str(outcome.request.id))
        if row is None or row[6] == "done":
            continue
        if outcome.result is not None:
            out.done.append(_done(outcome, outcome.result, row, files[row[0]], now, out.meta,
                                  strip))  # fmt: skip
        elif outcome.error is not None:
            out.failed.append(_failed(outcome, outcome.error, row, now, out.errors))
    return out


def _error_fields(error: Exception) -> tuple[str, str, int | None, str | None, bool]:
    message = getattr(error, "message", None) or str(error)
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    retryable = (
        isinstance(error, TransportError | OSError)
        or status in (408, 409, 429)
        or (isinstance(status, int) and status >= HTTPStatus.INTERNAL_SERVER_ERROR)
    )
    return type(error).__name__, message, status, request_id, retryable


def _done(outcome: Outcome, result: ImageResult, row: tuple[Any, ...],
          names: list[tuple[str, str]], now: float, meta: list[bytes], strip: str
          ) -> tuple[Any, ...]:  # fmt: skip
    """The ``DONE`` parameters of a result; its ``metadata.jsonl`` lines go to ``meta``
    (file names relative to the metadata file's folder: ``strip`` cut off).
    """
    usage, cost = result.usage, result.cost
    usage_json = None
    spent: dict[str, Any] = {}
    if usage is not None or cost is not None:
        # The item's use: tokens and (in the same JSON column, so folders written before costs
        # were recorded need no migration) its cost and the price's source.
        if usage is not None:
            spent = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                     "total_tokens": usage.total_tokens}  # fmt: skip
        if cost is not None:
            spent.update(cost=cost.amount, cost_source=cost.source)
        usage_json = dumps(spent).decode()
    files_json = dumps(names).decode()
    task_id = result.task_id or row[8]
    attempts = row[7] + outcome.attempts
    run = (result.request_id, task_id, outcome.elapsed, attempts)
    meta.extend(dump_line(r) for r in metadata_records(row[:5], names, run, spent, strip))
    return (files_json, usage_json, result.request_id, task_id, attempts, outcome.elapsed, now,
            row[0])  # fmt: skip


def _failed(outcome: Outcome, error: Exception, row: tuple[Any, ...], now: float,
            errors: list[bytes]) -> tuple[Any, ...]:  # fmt: skip
    """The ``FAILED`` parameters of a failure; its ``errors.jsonl`` line goes to ``errors``."""
    kind, message, status, request_id, retryable = _error_fields(error)
    # A task whose polling broke off (network, timeout) may still finish: keep its id so the
    # next run polls it rather than paying again. A task that failed is submitted anew.
    known = getattr(outcome, "task_id", None) or row[8]
    task_id = known if isinstance(error, TransportError) else None
    attempts = row[7] + outcome.attempts
    errors.append(dump_line(error_row((row[0], row[1], row[2], row[3], kind, message, status,
                                       request_id, task_id, attempts, retryable))))  # fmt: skip
    return (kind, message, status, request_id, retryable, task_id, attempts, outcome.elapsed,
            now, row[0])  # fmt: skip
