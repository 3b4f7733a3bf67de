"""Recovery on open: finish or undo what a crashed run left between the steps of a commit.

A commit is: image files written under temporary names in ``.aihubmix/tmp-<owner>/`` (and
fsynced), then ONE transaction marking the rows done with their file names, then the renames
into place. So after any crash: a temporary file whose row is done is renamed into place (the
commit happened); any other temporary file is deleted (it never did). Files of regenerated items
are listed in the ``trash`` table in the transaction that resets their rows, and deleted after.
Only the temporary folders of owners that cannot be running are touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

from ._journal_files import fsync_dir, rename_part, stem_of
from ._journal_lock import FolderLock
from ._journal_types import JournalFolder

__all__ = ["empty_trash", "recover"]

_PART = ".part"


def empty_trash(db: sqlite3.Connection, out: Path) -> None:
    """Delete the files the journal no longer refers to (regenerated items' old images)."""
    names = [name for (name,) in db.execute("SELECT path FROM trash")]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    if names:
        db.execute("DELETE FROM trash")


def _finish_temp(db: sqlite3.Connection, out: Path, entry: os.DirEntry[str]) -> bool:
    if not entry.name.endswith(_PART):  # an export cut short, or a stray file
        Path(entry.path).unlink()
        return False
    name = entry.name.removesuffix(_PART)
    row = db.execute(
        "SELECT state, files FROM items WHERE stem_key = ?", (stem_of(name).lower(),)
    ).fetchone()
    placed = [f[0] for f in json.loads(row[1] or "[]")] if row and row[0] == "done" else []
    for rel in placed:  # a path in the folder (a bucket folder, say) ending in the name
        if rel.rsplit("/", 1)[-1] == name:
            rename_part(Path(entry.path), out / rel)
            return True
    Path(entry.path).unlink()
    return False


def recover(journal: JournalFolder, lock: FolderLock) -> None:
    """Reconcile files and rows after a crash (see the module docstring); re-export
    ``metadata.jsonl``/``errors.jsonl`` if a run ended without its final export.
    """
    db, out = journal.db, journal.out
    empty_trash(db, out)
    renamed = False
    for tmp in sorted(journal.tmp.parent.glob("tmp-*")):
        if not lock.holds(tmp.name.removeprefix("tmp-")):
            continue  # a running shard's temporary files are its own
        with os.scandir(tmp) as entries:
            for entry in entries:
                renamed |= _finish_temp(db, out, entry)
    if renamed:
        fsync_dir(out)
    journal.tmp.mkdir(exist_ok=True)
    stale = [
        key
        for (key,) in db.execute("SELECT key FROM meta WHERE key LIKE 'dirty:%'")
        if lock.holds(key.removeprefix("dirty:"))
    ]
    if stale:
        journal.export()
        db.executemany("DELETE FROM meta WHERE key = ?", [(key,) for key in stale])
