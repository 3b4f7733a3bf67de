"""The committer: outcomes in, durable rows and files out, in groups, off the event loop.

One writer thread takes everything queued since its last commit as one group: it writes the
group's image files under temporary names, makes them durable with ONE ``syncfs`` (not an
fsync per file), commits ONE transaction for all its rows (task ids, results, failures),
renames the files into place, appends the new lines to ``metadata.jsonl``/``errors.jsonl``,
and only then tells the event loop (one ``call_soon_threadsafe`` per group) which items are
durable. The renames need no fsync of their own: a done row with its file still under the
temporary name is finished by the recovery of the next open. While a group commits the next one
queues up, so groups grow with the load and the loop never waits on the disk; a group also
waits a moment (``LINGER``) to fill, as each one costs a sync and a transaction.
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
from typing import Any, Self

import anyio.to_thread

from ._batch import ImageRequest, Outcome
from ._journal_files import ERRORS, append_lines, file_name, move_into_place, sync_files, write_file
from ._journal_lock import owner_tag
from ._journal_rows import FAILED, SUBMITTED, mark_done, rows_of, updates
from ._journal_types import Committed, JournalFolder, JournalWriteError
from ._provenance import embed

__all__ = ["JournalWriter"]

logger = logging.getLogger("aihubmix_async.journal")

#: Test-only: called with the name of each commit step ("temps", "committed", "renamed");
#: raising a BaseException there stops the writer between steps like a crash would.
test_hook: Callable[[str], None] | None = None

_STOP = object()
#: How long (seconds) a group may wait for more outcomes before it commits; it commits as soon
#: as half the backlog is queued. A put() finds room meanwhile: the other half is free.
LINGER = 0.05
_TICK = 0.005


class _Task:
    __slots__ = ("future", "id", "request_id", "task_id")

    def __init__(self, item_id: str, task_id: str, request_id: str | None,
                 future: asyncio.Future[None]) -> None:  # fmt: skip
        self.id, self.task_id, self.request_id, self.future = item_id, task_id, request_id, future


def _step(name: str) -> None:
    if test_hook is not None:
        test_hook(name)


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
        self._fill = min(max_group, max(backlog // 2, 1))
        self._stopping = False
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
        self._stopping = True  # the last group commits without waiting to fill
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
                group = self._take()
                if _STOP in group:
                    stop = True
                    group = [g for g in group if g is not _STOP]
                if group and self._failure is None:
                    self._group(db, group)
        finally:
            db.close()

    def _take(self) -> list[Any]:
        """The next group: what is queued once the first entry came, after waiting up to
        :data:`LINGER` for the group to fill to half the backlog. Every group costs a sync,
        a transaction and a loop wake-up whatever its size: taken as they come, groups held
        four items at 300 items/s and those costs were most of the writer's CPU.
        """
        group = [self._queue.get()]
        waited = 0.0
        while (waited < LINGER and not self._stopping
               and self._queue.qsize() + 1 < self._fill):  # fmt: skip
            time.sleep(_TICK)  # no wake-up per arriving item: one check per tick
            waited += _TICK
        while len(group) < self._max_group:
            try:
                group.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return group

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
        rows = rows_of(db, [str(o.request.id) for o in outcomes])
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
        """One transaction for the group: a few statements for its done items (see
        ``mark_done``), one ``executemany`` for each other kind of update (few rows).
        """
        now = time.time()
        layout = self._journal.layout
        db.execute("BEGIN IMMEDIATE")
        try:
            # Bucket folders: a counter in the journal, so the names (and the metadata lines
            # that carry them) are decided inside the transaction that records them.
            layout.place(db, files)
            new = updates(outcomes, rows, files, now, layout.strip)
            if tasks:
                db.executemany(SUBMITTED, [(t.task_id, t.request_id, now, t.id) for t in tasks])
            mark_done(db, new.done)
            if new.failed:
                db.executemany(FAILED, new.failed)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return new.meta, new.errors

    def _append(self, lines: tuple[list[bytes], list[bytes]]) -> None:
        # Live lines for readers during the run; the files are rewritten from the journal at
        # the end (and after a crash), so a failed append loses nothing.
        for name, chunk in zip((self._journal.layout.metadata, ERRORS), lines, strict=True):
            if chunk and name is not None:
                try:
                    append_lines(self._journal.out / name, b"".join(chunk))
                except OSError as exc:
                    logger.warning("could not append to %s (rewritten at the end): %s", name, exc)
