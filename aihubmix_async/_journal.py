"""The run journal: an SQLite database (WAL) in the output folder, the single source of truth
of a bulk run. ``metadata.jsonl``, ``errors.jsonl`` and the images are written from it.

How the CLI drives it (every step before :meth:`Journal.start_run` sends and bills nothing)::

    with Journal.open(out, shard=(i, n)) as journal:      # lock, then recovery
        stager = journal.stager(model=default_model, params=cli_params)
        for line, request in lines:                        # one pass over the input
            stager.add(line, request)                      # InvalidRequestError: a bad line
        report = stager.finish()                           # collisions, changes: no writes
        plan = journal.start_run(report, on_change="refuse", retry_failed=True)
        async with journal.writer(on_durable=report_done, backlog=concurrency) as writer:
            async with client.batch(journal.pending(), on_task=writer.record_task) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)              # committed in groups, off the loop

Item states: ``pending`` -> ``submitted`` (a task id is journaled) -> ``done`` | ``failed``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import anyio.to_thread
import attrs

from ._batch import ImageRequest
from ._card import write_card
from ._journal_files import Layout, export_errors, resolve_layout
from ._journal_lock import FolderLock, FolderLockedError, owner_tag
from ._journal_match import detach
from ._journal_plan import apply_plan, pending_chunk, restart_plan
from ._journal_recover import empty_trash, recover
from ._journal_repair import check_layout_folder, export_checked, foreign_dataset
from ._journal_stage import Stager
from ._journal_types import (
    ChangedItemsError,
    Committed,
    Conflict,
    InputConflictError,
    JournalError,
    JournalWriteError,
    StageReport,
)
from ._journal_writer import JournalWriter
from ._parquet import MissingPyarrowError, Sharder, recover_shards, require_pyarrow
from ._registry import Registry

__all__ = [
    "ChangedItemsError",
    "Committed",
    "Conflict",
    "FolderLockedError",
    "InputConflictError",
    "Journal",
    "JournalError",
    "JournalStatus",
    "JournalWriteError",
    "RunPlan",
    "StageReport",
    "read_status",
]

JOURNAL_DIR = ".aihubmix"
DB_NAME = "journal.sqlite3"
OnChange = Literal["refuse", "regenerate", "keep"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items(
    id TEXT PRIMARY KEY NOT NULL,
    line INTEGER NOT NULL,
    stem TEXT NOT NULL,
    stem_key TEXT NOT NULL,
    fp TEXT NOT NULL,
    prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    run INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    task_id TEXT,
    request_id TEXT,
    error_type TEXT,
    error_message TEXT,
    status_code INTEGER,
    retryable INTEGER,
    files TEXT,
    usage TEXT,
    elapsed REAL,
    updated REAL
);
CREATE INDEX IF NOT EXISTS items_todo ON items(run, line) WHERE state IN ('pending', 'submitted');
CREATE INDEX IF NOT EXISTS items_state ON items(state, line);
-- Staging matches input lines on the file stem; covering, so a million lookups read no rows.
-- Without the state: committing an item changes its state and then leaves this index (random
-- pages, one per item) alone. Journals written before had the state in it (items_stem).
DROP INDEX IF EXISTS items_stem;
CREATE INDEX IF NOT EXISTS items_key ON items(stem_key, id, fp, line);
CREATE TABLE IF NOT EXISTS trash(path TEXT PRIMARY KEY) WITHOUT ROWID;
"""


@attrs.frozen(kw_only=True)
class RunPlan:
    """What a run will do, decided before anything is sent."""

    to_run: int  #: items the run will generate (or poll), in line order
    new: int
    resumed: int  #: pending/submitted items of an earlier run
    resumed_tasks: int  #: of which journaled tasks, polled without a new submit
    retried: int  #: failed items tried again
    skipped_done: int
    skipped_failed: int  #: failed items left alone (retry_failed=False)
    regenerated: int  #: changed done items whose images were removed to generate again
    kept_changed: int  #: changed done items kept as they are (on_change="keep")


@attrs.frozen(kw_only=True)
class Failure:
    id: str
    line: int
    error: str
    message: str


@attrs.frozen(kw_only=True)
class JournalStatus:
    """``aihubmix-async status DIR``: counts per state, images and usage, first failures."""

    counts: Mapping[str, int]
    images: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    failures: tuple[Failure, ...]
    #: US dollars recorded for done items (those with a price), and how many had one.
    cost: float = 0.0
    priced: int = 0
    retryable_failures: int


def _connect(path: Path | str, *, uri: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, uri=uri, isolation_level=None, check_same_thread=False,
                         timeout=60.0)  # fmt: skip
    db.execute("PRAGMA busy_timeout = 60000")
    # 8 MB of pages. SQLite's sorter (CREATE INDEX at staging, the card's GROUP BY) takes as
    # much again, so this bounds peak memory at a million rows; the big reads are sequential.
    db.execute("PRAGMA cache_size = -8000")
    db.execute("PRAGMA temp.cache_size = -4000")  # temporary results (staging: its own schema)
    return db


def _drop_staging(db: sqlite3.Connection) -> None:
    """Free what staging held (a million lines' rows in the stage schema, their pages in the
    caches) before generating: the run's peak memory is then staging's, not the sum.
    """
    detach(db)
    db.execute("PRAGMA shrink_memory")


class Journal:
    """The journal of one output folder, opened by one run (see the module docstring)."""

    def __init__(self, out: Path, db: sqlite3.Connection, lock: FolderLock | None,
                 shard: tuple[int, int], *, read_only: bool, layout: str | None = None
                 ) -> None:  # fmt: skip
        self.out = out
        self.db = db
        self.shard = shard
        self.read_only = read_only
        self.run: int | None = None
        self._lock = lock
        self.tmp = out / JOURNAL_DIR / f"tmp-{owner_tag(shard)}"
        self.db_path = out / JOURNAL_DIR / DB_NAME
        try:
            self.layout: Layout = resolve_layout(db, layout, write=not read_only)
            if not read_only:
                check_layout_folder(out, self.layout)
            self.sharder = self._sharder()
        except (ValueError, MissingPyarrowError) as exc:
            raise JournalError(str(exc)) from None

    def _sharder(self) -> Sharder | None:
        if self.layout.name != "parquet":
            return None
        require_pyarrow()  # refused before anything is billed
        if not self.read_only:
            Sharder.prepare(self.db)
        return Sharder(self.out, self.tmp, owner_tag(self.shard))

    @classmethod
    def open(cls, out: str | os.PathLike[str], *, shard: tuple[int, int] = (0, 1),
             read_only: bool = False, layout: str | None = None) -> Journal:  # fmt: skip
        """Open (creating) the journal of ``out``: take the folder lock (FolderLockedError at
        once if another process writes it), then recover from any crash. ``read_only`` (for
        ``--dry-run``) takes no lock, creates nothing and writes nothing. ``layout``:
        ``imagefolder``, ``parquet`` or ``flat`` (None: the folder's own, flat for a new one);
        another layout than the folder's is refused (JournalError).
        """
        folder = Path(out)
        journal_dir = folder / JOURNAL_DIR
        if read_only:
            db_path = journal_dir / DB_NAME
            if db_path.exists():
                db = _connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
            else:
                db = _connect(":memory:")
                db.executescript(_SCHEMA)
            return cls(folder, db, None, shard, read_only=True, layout=layout)
        if not (journal_dir / DB_NAME).exists() and (found := foreign_dataset(folder)):
            raise JournalError(
                f"{str(folder)!r} holds a dataset written without a journal ({found}: another"
                " tool, or an older version); write into a new folder"
            )
        journal_dir.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(folder, journal_dir, shard)
        lock.acquire()  # before anything is read, billed, or any temporary file touched
        try:
            db = _connect(journal_dir / DB_NAME)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # "done" means on disk, power loss too
            db.executescript(_SCHEMA)
            journal = cls(folder, db, lock, shard, read_only=False, layout=layout)
            if journal.sharder is not None:  # before recover(), whose export writes shards
                recover_shards(db, folder, lock.holds)
            recover(journal, lock)
        except BaseException:
            lock.release()
            raise
        return journal

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database and release the folder lock."""
        self.db.close()
        if self._lock is not None:
            self._lock.release()

    # --- staging and planning ------------------------------------------------------------------

    def stager(self, *, model: str | None = None, params: Mapping[str, Any] | None = None,
               registry: Registry | None = None) -> Stager:  # fmt: skip
        """A staging pass for this run's input: ``model``/``params`` are the run's defaults
        (``-m``, ``--param``); a line's own model and parameters win.
        """
        return Stager(self.db, model=model, params=params or {}, shard=self.shard,
                      registry=registry or Registry.default())  # fmt: skip

    def start_run(self, report: StageReport, *, on_change: OnChange = "refuse",
                  retry_failed: bool = True, input_key: str | None = None) -> RunPlan:  # fmt: skip
        """Check the staged input and record what this run does. Raises InputConflictError
        (colliding ids or file names) or ChangedItemsError (changed done items and
        ``on_change="refuse"``) before anything is written or billed. ``regenerate`` deletes
        the changed items' images now; ``keep`` leaves them as they are. ``input_key`` (a
        digest of the input and the run's settings, from the caller) is recorded with the
        plan, for :meth:`restart`.
        """
        if report.conflict_count:
            raise InputConflictError(report)
        if report.changed and on_change == "refuse":
            raise ChangedItemsError(report)
        if report.changed and on_change == "regenerate" and self.sharder is not None:
            raise JournalError(
                f"{report.changed} changed item(s) may already be in Parquet shards, which are"
                " never rewritten: pass --on-change keep, or write into a new folder"
            )
        if self.read_only:
            raise JournalError("a read-only journal (dry run) cannot start a run")
        self.run, counts = apply_plan(self.db, on_change=on_change, retry_failed=retry_failed,
                                      input_key=input_key, tag=owner_tag(self.shard),
                                      mine=report.mine)  # fmt: skip
        if counts["regenerated"]:
            empty_trash(self.db, self.out)
            self.export()
        _drop_staging(self.db)
        return RunPlan(**counts)

    def restart(self, input_key: str, *, retry_failed: bool = True) -> RunPlan | None:
        """Start a run without staging when the input is provably the one staged last:
        ``input_key`` equals the key the last run that changed this journal recorded (for
        this shard). The run takes that run's unfinished items (and its failures, with
        ``retry_failed``). None means: stage the input as usual.
        """
        if self.read_only:
            raise JournalError("a read-only journal (dry run) cannot start a run")
        found = restart_plan(self.db, input_key, owner_tag(self.shard), retry_failed=retry_failed)
        if found is None:
            return None
        self.run, counts = found
        return RunPlan(**counts)

    async def pending(self, chunk: int = 512) -> AsyncIterator[ImageRequest]:
        """The requests of this run still to do, in line order, read from the journal in
        chunks (never all in memory). Journaled tasks come with ``task_id`` set: polled, not
        submitted again. Each carries its resolved model, merged parameters and its id.
        """
        if self.run is None:
            raise JournalError("start_run() first")
        after = -1
        while True:
            rows = await anyio.to_thread.run_sync(pending_chunk, self.db, self.run, after, chunk)
            for request, line in rows:
                after = line
                yield request
            if len(rows) < chunk:
                return

    def writer(
        self,
        *,
        on_durable: Callable[[Committed], object] | None = None,
        sync: bool = True,
        max_group: int = 256,
        backlog: int = 64,
    ) -> JournalWriter:
        """The committer of this run (an async context manager; see JournalWriter).
        ``backlog``: how many received outcomes may wait for the disk before ``put`` waits
        (pass the batch's concurrency: a crash then loses at most that many billed results
        beyond those in flight). ``sync=False`` skips syncfs/fsync (tests, tmpfs).
        """
        if self.run is None:
            raise JournalError("start_run() first")
        return JournalWriter(self, on_durable=on_durable, sync=sync, max_group=max_group,
                             backlog=backlog)  # fmt: skip

    def export(self) -> None:
        """Rewrite the metadata file, ``errors.jsonl`` and the dataset card (README.md) from
        the journal (atomically).
        """
        export_checked(self.db, self.out, self.tmp, self.layout)
        export_errors(self.db, self.out, self.tmp)
        if self.sharder is not None:  # the rows left since the last shard
            self.sharder.flush(self.db)
        write_card(self.db, self.out, self.layout, self.tmp)

    def after_commit(self, db: sqlite3.Connection, done: list[Committed]) -> None:
        """Called by the writer after each group commit, on its thread and connection."""
        if self.sharder is not None:
            self.sharder.after_commit(db, done)

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def read_status(out: str | os.PathLike[str], *, failures: int = 5) -> JournalStatus:
    """The state of a run folder, read without a lock (safe while a run writes it)."""
    db_path = Path(out) / JOURNAL_DIR / DB_NAME
    if not db_path.exists():
        raise JournalError(f"{str(out)!r} has no run journal ({JOURNAL_DIR}/{DB_NAME})")
    db = _connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        counts = dict(db.execute("SELECT state, count(*) FROM items GROUP BY state").fetchall())
        images, tin, tout, ttotal, cost, priced = db.execute(
            "SELECT coalesce(sum(json_array_length(files)), 0),"
            " coalesce(sum(usage ->> 'input_tokens'), 0),"
            " coalesce(sum(usage ->> 'output_tokens'), 0),"
            " coalesce(sum(usage ->> 'total_tokens'), 0),"
            " coalesce(sum(usage ->> 'cost'), 0.0), count(usage ->> 'cost')"
            " FROM items WHERE state = 'done'"
        ).fetchone()
        rows = db.execute(
            "SELECT id, line, error_type, error_message FROM items WHERE state = 'failed'"
            " ORDER BY line LIMIT ?",
            (failures,),
        ).fetchall()
        (retryable,) = db.execute(
            "SELECT count(*) FROM items WHERE state = 'failed' AND retryable"
        ).fetchone()
    finally:
        db.close()
    return JournalStatus(
        counts={s: counts.get(s, 0) for s in ("pending", "submitted", "done", "failed")},
        images=images, input_tokens=tin, output_tokens=tout, total_tokens=ttotal,
        failures=tuple(Failure(id=r[0], line=r[1], error=r[2] or "", message=r[3] or "")
                       for r in rows),
        retryable_failures=retryable, cost=cost, priced=priced,
    )  # fmt: skip
