"""The Parquet layout: done journal rows packed into shards ``data/train-00000.parquet`` ...

Images are committed like any other (temporary name, one transaction, rename) into
``.aihubmix/staged/``; once the rows committed since the last shard reach the target size, a
shard takes every done row no shard holds yet:

1. **claim** (one transaction): a new shard name from a counter, recorded as ``writing`` by its
   owner, and every unsharded done row recorded as that shard's;
2. **write** under a temporary name, fsync, rename into ``data/``;
3. **seal** (one transaction): the shard is ``done``; then its staged images are deleted.

A crash before the seal leaves a ``writing`` shard: the recovery of the next open (its owner
cannot be running) deletes its file, if any, and gives its rows back, so they go into a later
shard: no row is ever in two shards, none is lost. A sealed shard is never written again.

What the journal cannot vouch for is reported and repaired, never taken as done: a sealed shard
deleted or cut short between runs (moved aside to ``.aihubmix/damaged/``), or a staged image
gone before a shard took it (deleted by hand or a cleaner) puts its items back to pending, and
the run generates them again (one staged image lost must not keep every row out of the shards).
``pyarrow`` is imported only here, only when a shard is written (the ``parquet`` extra).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from ._card import PARQUET_FEATURES
from ._journal_files import SHARDS_DIR, STAGED_DIR, fsync_dir, stem_of
from ._journal_repair import back_to_pending
from ._journal_types import Committed

__all__ = [
    "DAMAGED_DIR",
    "SHARDS_DIR",
    "MissingPyarrowError",
    "ShardTarget",
    "Sharder",
    "check_shards",
    "parse_shard_size",
    "recover_shards",
    "require_pyarrow",
    "reset_lost",
]

logger = logging.getLogger("aihubmix_async.journal")

_SEQ_KEY = "parquet:seq"
#: A record batch (a row group) is written at this many rows or bytes of images, whichever
#: first: memory stays bounded by bytes whatever the images' size (64 rows of 10 MB images held
#: at once took over 900 MB).
_BATCH_ROWS = 64
_BATCH_BYTES = 32_000_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shards(name TEXT PRIMARY KEY, owner TEXT NOT NULL,
    state TEXT NOT NULL, rows INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sharded(id TEXT PRIMARY KEY, shard TEXT NOT NULL) WITHOUT ROWID;
"""
_ROWS = (
    "SELECT i.id, i.prompt, i.model, i.params, i.files, i.request_id, i.usage, i.attempts,"
    " i.elapsed FROM items i JOIN sharded s USING (id) WHERE s.shard = ? ORDER BY i.line, i.id"
)

#: Test-only: called with "claimed" and "renamed"; raising there stops like a crash would.
test_hook: Callable[[str], None] | None = None


class MissingPyarrowError(ImportError):
    """``--output-format parquet`` without pyarrow installed."""


def require_pyarrow() -> tuple[Any, Any]:
    """The ``pyarrow`` and ``pyarrow.parquet`` modules, or a clear error naming the extra."""
    try:  # optional (the parquet extra), untyped: imported by name
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MissingPyarrowError(
            "--output-format parquet needs pyarrow: pip install 'aihubmix-async[parquet]'"
        ) from None
    return pa, pq


@attrs.frozen
class ShardTarget:
    """When a shard is written: at ``megabytes`` of images or ``rows`` rows, whichever set."""

    megabytes: float | None = 500.0
    rows: int | None = None

    def __str__(self) -> str:  # as written on the command line (``--help`` shows the default)
        return f"{self.rows}rows" if self.rows is not None else f"{self.megabytes:g}MB"

    def reached(self, size: int, rows: int) -> bool:
        if self.rows is not None:
            return rows >= self.rows
        return self.megabytes is not None and size >= self.megabytes * 1e6


def parse_shard_size(text: str) -> ShardTarget:
    """``--parquet-shard-size``: ``500MB`` (megabytes of images) or ``10000rows``."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(mb|rows)\s*", text, re.IGNORECASE)
    if not found or float(found[1]) <= 0 or (found[2].lower() == "rows" and "." in found[1]):
        raise ValueError(f"expected a size such as 500MB or 10000rows, got {text!r}")
    if found[2].lower() == "rows":
        return ShardTarget(megabytes=None, rows=int(found[1]))
    return ShardTarget(megabytes=float(found[1]))


def _step(name: str) -> None:
    if test_hook is not None:
        test_hook(name)


def _features() -> dict[str, Any]:
    """The ``datasets`` features of a shard, as it stores them in the schema's metadata."""
    return {
        name: {"_type": "Image"} if dtype == "image" else {"dtype": dtype, "_type": "Value"}
        for name, dtype in PARQUET_FEATURES
    }


def _schema(pa: Any) -> Any:
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "image": pa.struct([("bytes", pa.binary()), ("path", pa.string())])}  # fmt: skip
    metadata = {"huggingface": json.dumps({"info": {"features": _features()}})}
    return pa.schema([(name, types[dtype]) for name, dtype in PARQUET_FEATURES], metadata=metadata)


def _records(out: Path, row: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    """The shard rows of one done item: one per image, its bytes read from the staging area."""
    item_id, prompt, model, params, files, request_id, usage, attempts, elapsed = row
    names = json.loads(files)
    cost = json.loads(usage).get("cost") if usage else None
    share = None if cost is None or not names else cost / len(names)  # rows sum to the item
    for rel, mime_type in names:
        name = rel.rsplit("/", 1)[-1]
        yield {
            "id": item_id, "prompt": prompt, "model": model, "params": params,
            "image": {"bytes": (out / rel).read_bytes(), "path": name},
            "mime_type": mime_type, "request_id": request_id, "usage": usage, "cost": share,
            "attempts": attempts, "elapsed": elapsed, "error_type": None, "error_message": None,
        }  # fmt: skip


class Sharder:
    """The shards of one writer (see the module docstring): :meth:`after_commit` after each
    group commit, :meth:`flush` at the end of the run.
    """

    def __init__(self, out: Path, tmp: Path, owner: str, target: ShardTarget | None = None
                 ) -> None:  # fmt: skip
        self.out, self.tmp, self.owner = out, tmp, owner
        self.target = target or ShardTarget()
        self._size = self._rows = 0

    @staticmethod
    def prepare(db: sqlite3.Connection) -> None:
        db.executescript(_SCHEMA)

    def after_commit(self, db: sqlite3.Connection, done: list[Committed]) -> None:
        """Count what a commit added (images, rows); write a shard once the target is met."""
        for item in done:
            result = item.outcome.result
            if item.ok and result is not None:
                self._size += sum(len(image.data or b"") for image in result.images)
                self._rows += len(item.files)
        if self.target.reached(self._size, self._rows):
            self.flush(db)

    def flush(self, db: sqlite3.Connection) -> str | None:
        """Write every done row no shard holds yet into a new shard; its name, or None."""
        self._size = self._rows = 0
        while (name := self._claim(db)) is not None:
            _step("claimed")
            try:
                rows = self._write(db, name)
            except FileNotFoundError:
                _release(db, self.out, name)
                if reset_lost(db, self.out):  # gone for good: the others go into a shard
                    continue
                # Another process (a shard run into this folder) committed a row whose image
                # it has not renamed into the staging area yet: a later shard (at the latest
                # that process's last) takes the rows.
                logger.warning("shard %s: an image is not staged yet; its rows wait for the next",
                               name)  # fmt: skip
                return None
            self._seal(db, name, rows)
            return name
        return None

    def _seal(self, db: sqlite3.Connection, name: str, rows: int) -> None:
        _step("renamed")
        staged = [rel for (files,) in db.execute(
            "SELECT i.files FROM items i JOIN sharded s USING (id) WHERE s.shard = ?", (name,)
        ) for rel, _ in json.loads(files)]  # fmt: skip
        db.execute("UPDATE shards SET state = 'done', rows = ? WHERE name = ?", (rows, name))
        for rel in staged:
            with contextlib.suppress(FileNotFoundError):
                (self.out / rel).unlink()

    def _claim(self, db: sqlite3.Connection) -> str | None:
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (_SEQ_KEY,)).fetchone()
            seq = int(row[0]) + 1 if row else 0
            name = f"{SHARDS_DIR}/train-{seq:05d}.parquet"
            claimed = db.execute(
                "INSERT INTO sharded SELECT id, ? FROM items WHERE state = 'done'"
                " AND id NOT IN (SELECT id FROM sharded)",
                (name,),
            ).rowcount
            if not claimed:
                db.execute("ROLLBACK")
                return None
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_SEQ_KEY, seq))
            db.execute("INSERT INTO shards VALUES (?, ?, 'writing', NULL)", (name, self.owner))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return name

    def _write(self, db: sqlite3.Connection, name: str) -> int:
        pa, pq = require_pyarrow()
        schema = _schema(pa)
        final = self.out / name
        part = self.tmp / f"{final.name}.{secrets.token_hex(4)}.shard"
        written = 0
        try:
            with pq.ParquetWriter(part, schema, compression="zstd") as writer:
                batch: list[dict[str, Any]] = []
                size = 0
                for row in db.execute(_ROWS, (name,)):
                    for record in _records(self.out, row):
                        batch.append(record)
                        size += len(record["image"]["bytes"])
                    if len(batch) >= _BATCH_ROWS or size >= _BATCH_BYTES:
                        writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                        written, batch, size = written + len(batch), [], 0
                if batch:
                    writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                    written += len(batch)
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            final.parent.mkdir(exist_ok=True)
            part.replace(final)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        fsync_dir(final.parent)
        return written


def _release(db: sqlite3.Connection, out: Path, name: str) -> None:
    """Forget an unsealed shard: its file (if it got that far) and its claim on its rows."""
    with contextlib.suppress(FileNotFoundError):
        (out / name).unlink()
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM sharded WHERE shard = ?", (name,))
        db.execute("DELETE FROM shards WHERE name = ?", (name,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def recover_shards(db: sqlite3.Connection, out: Path, holds: Callable[[str], bool]) -> None:
    """Undo the shards a crash left unsealed (their owners cannot be running): delete their
    files, give their rows back; delete staged images that a sealed shard already holds.
    Sealed shards missing or cut short and staged images lost put their items back to pending.
    """
    Sharder.prepare(db)
    unsealed = db.execute("SELECT name, owner FROM shards WHERE state = 'writing'").fetchall()
    for name, owner in unsealed:
        if not holds(owner):
            continue
        _release(db, out, name)
    check_shards(db, out)
    reset_lost(db, out)
    staged = out / STAGED_DIR
    if not staged.is_dir():
        return
    for entry in os.scandir(staged):
        rel = f"{STAGED_DIR}/{entry.name}"
        sealed = db.execute(
            "SELECT 1 FROM items i, json_each(i.files) f JOIN sharded s ON s.id = i.id"
            " JOIN shards h ON h.name = s.shard AND h.state = 'done'"
            " WHERE i.stem_key = ? AND json_extract(f.value, '$[0]') = ?",
            (stem_of(entry.name).lower(), rel),
        ).fetchone()
        if sealed:
            Path(entry.path).unlink()


# --- damage done between runs -------------------------------------------------------------------

DAMAGED_DIR = ".aihubmix/damaged"


def _shard_fault(path: Path, rows: int, pq: Any) -> str | None:
    """What is wrong with a sealed shard's file, or None."""
    if not path.is_file():
        return "missing"
    try:
        found = pq.read_metadata(path).num_rows
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        return f"damaged ({type(exc).__name__}: {str(exc)[:200]})"
    return None if found == rows else f"damaged ({found} rows where {rows} were sealed)"


def check_shards(db: sqlite3.Connection, out: Path) -> None:
    """Sealed shards whose file is missing or not the one sealed (deleted or cut short between
    runs): moved aside (a damaged file would stop ``datasets`` loading the folder), and their
    items put back to pending, to be generated again into a new shard. Parquet files in the
    shards' folder that the journal did not write are named (``datasets`` would load them).
    """
    sealed = db.execute("SELECT name, rows FROM shards WHERE state = 'done' ORDER BY name")
    faults = [(n, f) for n, rows in sealed.fetchall()
              if (f := _shard_fault(out / n, rows, require_pyarrow()[1])) is not None]  # fmt: skip
    for name, fault in faults:
        kept = ""
        if (out / name).exists():
            aside = out / DAMAGED_DIR / f"{Path(name).name}.{secrets.token_hex(4)}"
            aside.parent.mkdir(exist_ok=True)
            (out / name).replace(aside)
            kept = f", moved to {aside.relative_to(out)}"
        held = db.execute(
            "SELECT i.id, i.files FROM items i JOIN sharded s USING (id) WHERE s.shard = ?",
            (name,),
        ).fetchall()
        forget = [("DELETE FROM sharded WHERE shard = ?", (name,)),
                  ("DELETE FROM shards WHERE name = ?", (name,))]  # fmt: skip
        back = back_to_pending(db, held, first=forget)
        logger.warning("%s is %s%s: its %d item(s) are pending again; this run generates them",
                       name, fault, kept, back)  # fmt: skip
    known = {name for (name,) in db.execute("SELECT name FROM shards")}
    for path in sorted((out / SHARDS_DIR).glob("*.parquet")):
        if f"{SHARDS_DIR}/{path.name}" not in known:
            logger.warning("%s/%s is not a shard this folder's journal wrote: datasets loads its"
                           " rows with the others; move it out of %s/ if they do not belong",
                           SHARDS_DIR, path.name, SHARDS_DIR)  # fmt: skip


def reset_lost(db: sqlite3.Connection, out: Path) -> int:
    """Done items no shard holds whose staged image is gone and in no temporary folder (so no
    writer will ever rename it into place): back to pending. How many.
    """
    (done,) = db.execute("SELECT count(*) FROM items WHERE state = 'done'").fetchone()
    (sharded,) = db.execute("SELECT count(*) FROM sharded").fetchone()
    if sharded >= done:  # every done row is in a shard (two index counts, not a scan)
        return 0
    waiting = db.execute(
        "SELECT id, files FROM items WHERE state = 'done' AND id NOT IN (SELECT id FROM sharded)"
    ).fetchall()  # first: an image of these rows is staged, or still a temporary file, by now
    parts = {e.name for tmp in (out / STAGED_DIR).parent.glob("tmp-*") for e in os.scandir(tmp)}
    lost: list[tuple[str, str, str]] = []
    for item_id, files in waiting:
        gone = [rel for rel, _ in json.loads(files) if not (out / rel).exists()
                and f"{rel.rsplit('/', 1)[-1]}.part" not in parts]  # fmt: skip
        if gone:
            lost.append((item_id, files, gone[0]))
    if not lost:
        return 0
    for item_id, _, rel in lost[:5]:
        logger.warning("item %r: its image %s is gone before a shard took it; the item is"
                       " pending again (this run or the next generates it)",
                       item_id, rel)  # fmt: skip
    if len(lost) > 5:
        logger.warning("... and %d more item(s) whose staged image is gone", len(lost) - 5)
    unsharded = " AND id NOT IN (SELECT id FROM sharded)"  # a shard took it meanwhile: done
    return back_to_pending(db, [(i, files) for i, files, _ in lost], unless=unsharded)
