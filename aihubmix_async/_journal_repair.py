"""What the journal cannot vouch for, found and repaired rather than taken as done.

* A folder without a journal that already holds another dataset (its metadata in any layout,
  Parquet files where shards go) is refused: a run would overwrite it.
* A file where a layout writes its folder (``train``, ``data``) is refused before anything is
  billed, not found when the first results cannot be written.
* An image gone from an image folder between runs (deleted by hand or by a cleaner): found when
  the metadata is exported (a count of the bucket folders first, file by file only when it falls
  short), named, and its item put back to pending, so the next run generates it and the
  metadata lists only images that are there. (The Parquet layout's shards and staged images:
  ``_parquet``.)
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._journal_files import (
    METADATA,
    SHARDS_DIR,
    SPLIT_DIR,
    STAGED_DIR,
    Layout,
    export_metadata,
)
from ._json import loads

__all__ = ["back_to_pending", "check_layout_folder", "export_checked", "foreign_dataset"]

logger = logging.getLogger("aihubmix_async.journal")


def foreign_dataset(folder: Path) -> str | None:
    """In a folder without a journal: the first file of a dataset another tool (or a version
    before the journal) wrote, which a run would overwrite (its metadata in any layout, Parquet
    files where shards go); None if there is none.
    """
    for rel in (METADATA, f"{SPLIT_DIR}/{METADATA}"):
        if (folder / rel).exists():
            return rel
    shards = folder / SHARDS_DIR
    found = sorted(shards.glob("*.parquet")) if shards.is_dir() else []
    return f"{SHARDS_DIR}/{found[0].name}" if found else None


def check_layout_folder(out: Path, layout: Layout) -> None:
    """Refuse (ValueError) a file where the layout writes its folder (``train``, ``data``):
    found before anything is billed, not when the first results cannot be written.
    """
    top = {"imagefolder": SPLIT_DIR, "parquet": SHARDS_DIR}.get(layout.name)
    if top is not None and (out / top).exists() and not (out / top).is_dir():
        raise ValueError(
            f"{str(out / top)!r} is not a folder: the {layout.name} layout writes into {top}/;"
            " move it away or write into a new folder"
        )


def export_checked(db: sqlite3.Connection, out: Path, scratch: Path, layout: Layout) -> None:
    """:func:`export_metadata`, then (image folders) the images it lists are there: those
    gone put their items back to pending and the metadata is written again without them.
    """
    listed = export_metadata(db, out, scratch, layout)
    if layout.name == "imagefolder" and _bucketed(out) < listed and _gone_back(db, out):
        export_metadata(db, out, scratch, layout)


def _bucketed(out: Path) -> int:
    """How many files the bucket folders hold (``train/NNNNN/*``)."""
    count = 0
    with os.scandir(out / SPLIT_DIR) as buckets:
        for bucket in buckets:
            if bucket.is_dir(follow_symlinks=False):
                with os.scandir(bucket.path) as entries:
                    count += sum(1 for _ in entries)
    return count


def _gone(out: Path, rel: str, parts: list[str]) -> bool:
    """Whether a committed image is not in the folder and will not be: not there, not a
    temporary file a running writer is about to rename (checked in that order, then again).
    """
    if os.path.exists(out / rel):  # noqa: PTH110
        return False
    part = f"{rel.rsplit('/', 1)[-1]}.part"
    if any(os.path.exists(os.path.join(tmp, part)) for tmp in parts):  # noqa: PTH110, PTH118
        return False
    return not os.path.exists(out / rel)  # noqa: PTH110  (renamed in between: there)


def _gone_back(db: sqlite3.Connection, out: Path) -> int:
    """Done items with an image gone from the folder: named, back to pending. How many."""
    parts = [str(p) for p in (out / STAGED_DIR).parent.glob("tmp-*")]
    gone: list[tuple[str, str, str]] = []
    for item_id, files in db.execute("SELECT id, files FROM items WHERE state = 'done'"):
        missing = [rel for rel, _ in loads(files) if _gone(out, rel, parts)]
        if missing:
            gone.append((item_id, files, missing[0]))
    for item_id, _, rel in gone[:5]:
        logger.warning("item %r: its image %s is gone from the folder; the item is pending"
                       " again: rerun the same command to generate it", item_id, rel)  # fmt: skip
    if len(gone) > 5:
        logger.warning("... and %d more item(s) whose image is gone", len(gone) - 5)
    return back_to_pending(db, [(item_id, files) for item_id, files, _ in gone])


_BACK = (
    "UPDATE items SET state = 'pending', files = NULL, usage = NULL, task_id = NULL"
    " WHERE id = ? AND state = 'done' AND files IS ?"
)


def back_to_pending(db: sqlite3.Connection, items: Sequence[tuple[str, str]], *,
                    first: Sequence[tuple[str, tuple[Any, ...]]] = (), unless: str = ""
                    ) -> int:  # fmt: skip
    """Put done items whose images are gone back to pending, in one transaction (``first``:
    statements run in it before): only those whose files are still the ones given (another
    writer may have changed them), and not matching ``unless`` (an SQL condition). The input
    key goes, so the next run reads its input and generates them. How many went back.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, args in first:
            db.execute(sql, args)
        back = sum(db.execute(_BACK + unless, item).rowcount for item in items)
        db.execute("DELETE FROM meta WHERE key LIKE 'input:%'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return back
