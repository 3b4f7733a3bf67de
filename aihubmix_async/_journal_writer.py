"""The committer: outcomes in, durable rows and files out, in groups, off the event loop.

One writer thread takes everything queued since its last commit as one group: it writes the
group's image files under temporary names, makes them durable with ONE ``syncfs`` (not an
fsync per file), commits ONE transaction for all its rows (task ids, results, failures),
renames the files into place, appends the new lines to ``metadata.jsonl``/``errors.jsonl``,
and only then tells the event loop (one ``call_soon_threadsafe`` per group) which items are
durable. The renames need no fsync of their own: a done row with its file still under the
temporary name is finished by the recovery of the next open. While a group commits the next one
queues up, so groups grow with the load and the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Self

import anyio.to_thread

from ._batch import ImageRequest, Outcome
from ._errors import TransportError
from ._journal_files import (
    ERRORS,
    append_lines,
    dump_line,
    error_row,
    file_name,
    metadata_rows,
    move_into_place,
    sync_files,
    write_file,
)
from ._journal_lock import owner_tag
from ._journal_types import Committed, JournalFolder, JournalWriteError
from ._json import dumps
from ._models import ImageResult
from ._provenance import embed

__all__ = ["JournalWriter"]

logger = logging.getLogger("aihubmix_async.journal")

#: Test-only: called with the name of each commit step ("temps", "committed", "renamed");
#: raising a BaseException there stops the writer between steps like a crash would.
test_hook: Callable[[str], None] | None = None

_STOP = object()
_ROW = "id, line, prompt, model, params, stem, state, attempts, task_id"
_IN_CHUNK = 500  # ids per ``IN (...)``: well under SQLite's limit on bound variables


class _Task:
    __slots__ = ("future", "id", "request_id", "task_id")

    def __init__(self, item_id: str, task_id: str, request_id: str | None,
                 future: asyncio.Future[None]) -> None:  # fmt: skip
        self.id, self.task_id, self.request_id, self.future = item_id, task_id, request_id, future


def _step(name: str) -> None:
    if test_hook is not None:
        test_hook(name)


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


def _rows(db: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """The journal rows of ``ids`` (those it has), by id."""
    rows: dict[str, tuple[Any, ...]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {_ROW} FROM items WHERE id IN ({marks})"  # noqa: S608  (only placeholders)
        for row in db.execute(sql, chunk):
            rows[row[0]] = row
    return rows


_SUBMITTED = (
    "UPDATE items SET state = 'submitted', task_id = ?, request_id = coalesce(?, request_id),"
    " updated = ? WHERE id = ? AND state != 'done'"
)
_DONE = (
    "UPDATE items SET state = 'done', files = ?, usage = ?, request_id = ?, task_id = ?,"
    " attempts = ?, elapsed = ?, updated = ?, error_type = NULL, error_message = NULL,"
    " status_code = NULL, retryable = NULL WHERE id = ?"
)
_FAILED = (
    "UPDATE items SET state = 'failed', error_type = ?, error_message = ?, status_code = ?,"
    " request_id = coalesce(?, request_id), retryable = ?, task_id = ?, attempts = ?,"
    " elapsed = ?, updated = ? WHERE id = ?"
)


def _done(outcome: Outcome, result: ImageResult, row: tuple[Any, ...],
          names: list[tuple[str, str]], now: float, meta: list[bytes], strip: str
          ) -> tuple[Any, ...]:  # fmt: skip
    """The ``_DONE`` parameters of a result; its ``metadata.jsonl`` lines go to ``meta``
    (file names relative to the metadata file's folder: ``strip`` cut off).
    """
    usage, cost = result.usage, result.cost
    usage_json = None
    if usage is not None or cost is not None:
        # The item's use: tokens and (in the same JSON column, so folders written before costs
        # were recorded need no migration) its cost and the price's source.
        spent: dict[str, Any] = {}
        if usage is not None:
            spent = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                     "total_tokens": usage.total_tokens}  # fmt: skip
        if cost is not None:
            spent.update(cost=cost.amount, cost_source=cost.source)
        usage_json = dumps(spent).decode()
    files_json = dumps(names).decode()
    task_id = result.task_id or row[8]
    attempts = row[7] + outcome.attempts
    record = (row[0], row[1], row[2], row[3], row[4], files_json, result.request_id, task_id,
              outcome.elapsed, attempts, usage_json)  # fmt: skip
    meta.extend(dump_line(r) for r in metadata_rows(record, strip))
    return (files_json, usage_json, result.request_id, task_id, attempts, outcome.elapsed, now,
            row[0])  # fmt: skip


def _failed(outcome: Outcome, error: Exception, row: tuple[Any, ...], now: float,
            errors: list[bytes]) -> tuple[Any, ...]:  # fmt: skip
    """The ``_FAILED`` parameters of a failure; its ``errors.jsonl`` line goes to ``errors``."""
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


class JournalWriter:
    """``async with journal.writer(on_durable=...) as writer``: :meth:`put` every outcome,
    pass :meth:`record_task` as the batch's ``on_task``. Leaving the block commits what is
    queued and re-exports ``metadata.jsonl``/``errors.jsonl``. ``on_durable`` is called on the
    event loop for each item once it is on disk (its errors are logged, never raised).
    """

    def __init__(self, journal: JournalFolder, *, on_durable: Callable[[Committed], object] | None,
                 sync: bool, max_group: int, backlog: int) -> None:  # fmt: skip
        self._journal = journal
        self._on_durable = on_durable
        self._sync = sync
        self._max_group = max_group
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Backpressure: outcomes received but not yet durable are billed work a crash would
        # lose, so at most `backlog` of them wait for the disk (the batch then stops pulling).
        self._slots = asyncio.Semaphore(backlog)
        self._backlog = backlog
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty_key = f"dirty:{owner_tag(journal.shard)}"
        self.committed = 0
        self._debt = 0

    # --- the event loop side --------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._journal.set_meta(self._dirty_key, os.getpid())
        self._thread = threading.Thread(target=self._run, name="aihubmix-journal", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        _, thread = self._started()
        self._queue.put(_STOP)
        await anyio.to_thread.run_sync(thread.join, abandon_on_cancel=True)
        if self._failure is None:
            await anyio.to_thread.run_sync(self._finish)
        if self._failure is not None and exc_info[0] is None:
            raise self._error()

    def _started(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        if self._loop is None or self._thread is None:
            raise RuntimeError("a JournalWriter is used as `async with journal.writer(...)`")
        return self._loop, self._thread

    def _finish(self) -> None:
        self._journal.export()
        self._journal.db.execute("DELETE FROM meta WHERE key = ?", (self._dirty_key,))

    def _error(self) -> JournalWriteError:
        cause = self._failure
        where = f" ({cause.filename})" if isinstance(cause, OSError) and cause.filename else ""
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
        error = JournalWriteError(
            f"cannot commit results to {str(self._journal.out)!r}: {reason}{where};"
            " everything reported done is kept: fix this and rerun the same command to resume"
        )
        error.__cause__ = cause
        return error

    async def put(self, outcome: Outcome) -> None:
        """Queue an outcome for the next group commit, then wait only if the disk lags far
        behind (the outcome is queued even if that wait is cancelled). Raises
        JournalWriteError once a commit failed (stop the batch then).
        """
        if self._failure is not None:
            raise self._error()
        self._queue.put(outcome)  # first: a cancelled wait below never drops a billed result
        try:
            await self._slots.acquire()
        except BaseException:
            self._debt += 1  # the slot this outcome will free is not to be given back
            raise
        if self._failure is not None:  # woken by _wake: nothing more will be committed
            raise self._error()

    async def record_task(self, request: ImageRequest, task_id: str,
                          request_id: str | None = None) -> None:  # fmt: skip
        """The batch's ``on_task``: journal the task id (durably) before polling starts, so a
        resumed run polls it instead of paying for a new submit.
        """
        if self._failure is not None:
            raise self._error()
        loop, _ = self._started()
        if request.id is None:
            raise ValueError("a journal's requests carry their item id")
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Task(request.id, task_id, request_id, future))
        await future

    def _deliver(self, done: list[Committed], tasks: list[_Task], error: BaseException | None
                 ) -> None:  # fmt: skip
        for task in tasks:
            if not task.future.done():
                if error is None:
                    task.future.set_result(None)
                else:
                    task.future.set_exception(self._error())
        for committed in done:
            if self._debt:
                self._debt -= 1
            else:
                self._slots.release()
            self.committed += 1
            if self._on_durable is not None:
                try:
                    self._on_durable(committed)
                except Exception:
                    logger.exception("on_durable callback failed (ignored)")

    def _wake(self) -> None:
        """After a failure no slot is freed by a commit again: free them all, so a ``put``
        waiting for room raises instead of waiting for ever.
        """
        for _ in range(self._backlog):
            self._slots.release()

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        db = sqlite3.connect(self._journal.db_path, isolation_level=None, timeout=60.0)
        db.execute("PRAGMA busy_timeout = 60000")
        db.execute("PRAGMA synchronous = FULL")
        try:
            stop = False
            while not stop:
                group = [self._queue.get()]
                while len(group) < self._max_group:
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in group:
                    stop = True
                    group = [g for g in group if g is not _STOP]
                if group and self._failure is None:
                    self._group(db, group)
        finally:
            db.close()

    def _group(self, db: sqlite3.Connection, group: list[Any]) -> None:
        loop, _ = self._started()
        tasks = [g for g in group if isinstance(g, _Task)]
        outcomes: list[Outcome] = [g for g in group if not isinstance(g, _Task)]
        try:
            done = self._commit(db, tasks, outcomes)
        except BaseException as exc:  # any failure must reach the event loop
            self._failure = exc
            logger.exception("journal commit failed")
            # Nothing more is committed by this writer: the run must stop. What the failed
            # group left on disk is reconciled by the recovery of the next open.
            loop.call_soon_threadsafe(self._deliver, [], tasks, exc)
            loop.call_soon_threadsafe(self._wake)
            return
        loop.call_soon_threadsafe(self._deliver, done, tasks, None)
        try:
            self._journal.after_commit(db, done)  # the Parquet layout's shards
        except BaseException as exc:  # what is committed stays; the run must stop
            self._failure = exc
            logger.exception("writing a shard failed")
            loop.call_soon_threadsafe(self._wake)

    def _commit(self, db: sqlite3.Connection, tasks: list[_Task], outcomes: list[Outcome]
                ) -> list[Committed]:  # fmt: skip
        rows = _rows(db, [str(o.request.id) for o in outcomes])
        files: dict[str, list[tuple[str, str]]] = {}
        temps: list[tuple[str, str]] = []  # str paths: no pathlib objects per file
        try:
            self._write_images(outcomes, rows, files, temps)
            if temps and self._sync:
                sync_files(self._journal.tmp, [path for path, _ in temps])
            _step("temps")
            lines = self._transaction(db, tasks, outcomes, rows, files)
        except Exception:
            for path, _ in temps:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # noqa: PTH108  (str paths: no Path object per file)
            raise
        _step("committed")
        move_into_place(self._journal.out, self._journal.tmp, files)  # placed by the transaction
        _step("renamed")
        self._append(lines)
        committed = []
        for o in outcomes:
            item_id = str(o.request.id)
            row = rows.get(item_id)
            if row is not None:
                names = tuple(n for n, _ in files.get(item_id, ()))
                committed.append(Committed(id=item_id, line=row[1], ok=o.error is None,
                                           files=names, outcome=o))  # fmt: skip
        return committed

    def _write_images(self, outcomes: list[Outcome], rows: dict[str, tuple[Any, ...]],
                      files: dict[str, list[tuple[str, str]]], temps: list[tuple[str, str]]
                      ) -> None:  # fmt: skip
        """Write each new result's images under temporary names; ``files`` gets each item's
        (name, MIME type) list and ``temps`` every (temporary, final) path as it is created.
        """
        out, tmp = f"{self._journal.out}{os.sep}", f"{self._journal.tmp}{os.sep}"
        for outcome in outcomes:
            row = rows.get(str(outcome.request.id))
            if outcome.result is None or row is None or row[6] == "done":
                continue
            names = files[row[0]] = []
            for k, image in enumerate(outcome.result.images):
                name = file_name(row[5], k, image.extension)
                path = f"{tmp}{name}.part"
                temps.append((path, out + name))
                data: bytes | None = image.data  # None only with download=False
                if not data:
                    raise ValueError(f"item {row[0]!r}: an image was not downloaded")
                write_file(path, embed(data, image.provenance))  # no-op when provenance is off
                names.append((name, image.mime_type))

    def _transaction(self, db: sqlite3.Connection, tasks: list[_Task], outcomes: list[Outcome],
                     rows: dict[str, tuple[Any, ...]], files: dict[str, list[tuple[str, str]]]
                     ) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
        """One transaction for the group: every row's values are computed before it begins,
        then written with one ``executemany`` per kind of update.
        """
        now = time.time()
        meta: list[bytes] = []
        errors: list[bytes] = []
        done: list[tuple[Any, ...]] = []
        failed: list[tuple[Any, ...]] = []
        layout = self._journal.layout
        db.execute("BEGIN IMMEDIATE")
        try:
            # Bucket folders: a counter in the journal, so the names (and the metadata lines
            # that carry them) are decided inside the transaction that records them.
            layout.place(db, files)
            for outcome in outcomes:
                row = rows.get(str(outcome.request.id))
                if row is None or row[6] == "done":
                    continue
                if outcome.result is not None:
                    done.append(_done(outcome, outcome.result, row, files[row[0]], now, meta,
                                      layout.strip))  # fmt: skip
                elif outcome.error is not None:
                    failed.append(_failed(outcome, outcome.error, row, now, errors))
            if tasks:
                db.executemany(_SUBMITTED, [(t.task_id, t.request_id, now, t.id) for t in tasks])
            if done:
                db.executemany(_DONE, done)
            if failed:
                db.executemany(_FAILED, failed)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return meta, errors

    def _append(self, lines: tuple[list[bytes], list[bytes]]) -> None:
        # Live lines for readers during the run; the files are rewritten from the journal at
        # the end (and after a crash), so a failed append loses nothing.
        for name, chunk in zip((self._journal.layout.metadata, ERRORS), lines, strict=True):
            if chunk and name is not None:
                try:
                    append_lines(self._journal.out / name, b"".join(chunk))
                except OSError as exc:
                    logger.warning("could not append to %s (rewritten at the end): %s", name, exc)
