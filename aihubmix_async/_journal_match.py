"""The staged input matched against the journal: repeats numbered, collisions found, every
line classified. Only tables of the ``stage`` schema are written: safe on a read-only journal.

The staging tables live in a private on-disk database attached as ``stage`` (SQLite deletes its
file when it is detached): dropping a million-row temporary table walks every page it holds
(seconds), detaching is a file deletion.

A staged row is kept narrow, as a million are written at a resume and nearly all of them are
only matched: ``id`` and ``stem`` are NULL for a derived id (the id and the file stem are then
the ``stem_key``), ``model`` and ``params`` are NULL for a line under the run's defaults (held
once, in ``defaults``). Where rows become items, ``coalesce`` spells the values out:
``coalesce(s.id, s.stem_key)``, ``coalesce(s.model, d.model)`` (``d``: the ``defaults`` row).
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from ._journal_types import ChangedItem, Conflict, StageReport

__all__ = ["attach", "detach", "match"]

SCHEMA = "stage"
_PAGE_SIZE = 16384

_TABLES = (
    """CREATE TABLE stage.staged(
        line INTEGER PRIMARY KEY, stem_key TEXT NOT NULL, fp TEXT NOT NULL,
        mine INTEGER NOT NULL, prompt TEXT NOT NULL, id TEXT, stem TEXT, model TEXT,
        params TEXT)""",
    "CREATE TABLE stage.defaults(model TEXT, params TEXT)",
)

# The rows this run must act on (everything but done-and-unchanged), classified in one pass.
# Items are matched on the file stem, so an id whose files would overwrite another item's is
# found in the same lookup ("clash"). Walking staged rows in stem order makes the lookups into
# the journal's index sequential: a million of them take a second, not several. That index
# holds no state (commits would rewrite it); an item's state comes from ``undone``, the items
# not done (few, usually), read through the state index. ``other``: the journal's item.
_UNDONE = "CREATE TABLE stage.undone(id TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID"
_TODO = """
CREATE TABLE stage.todo AS SELECT line, k, other FROM (
    SELECT s.line AS line, i.id AS other, CASE
        WHEN i.id IS NULL THEN 'new'
        WHEN i.id != coalesce(s.id, s.stem_key) THEN 'clash'
        WHEN i.fp != s.fp THEN 'changed-' || coalesce(u.state, 'done')
        WHEN u.state IS NULL AND i.line != s.line THEN 'moved'
        ELSE coalesce(u.state, 'done') END AS k
    FROM staged s INDEXED BY staged_key LEFT JOIN items i ON i.stem_key = s.stem_key
    LEFT JOIN undone u ON u.id = i.id
    WHERE s.mine ORDER BY s.stem_key)
WHERE k != 'done'
"""
_COLLIDING = (
    "SELECT stem_key FROM staged WHERE stem_key IN (SELECT stem_key FROM dups)"
    " GROUP BY stem_key HAVING count(*) > 1"
)


def detach(db: sqlite3.Connection) -> None:
    """Drop every staging table at once (the schema's file goes with it)."""
    # Only the names: a folder's path need not be UTF-8 (PRAGMA database_list returns it too).
    if db.execute("SELECT 1 FROM pragma_database_list WHERE name = ?", (SCHEMA,)).fetchone():
        db.execute(f"DETACH {SCHEMA}")


def attach(db: sqlite3.Connection, model: str | None, params: str | None) -> None:
    """A fresh ``stage`` schema (an earlier one detached): the staging table and the run's
    default model path and parameter JSON.
    """
    detach(db)
    db.execute(f"ATTACH '' AS {SCHEMA}")
    # 16 KB pages: the file a million rows spill to is written and read back in 4 times fewer
    # system calls; staging and matching a million lines took ~0.5 s less CPU than with 4 KB
    # (64 KB pages did no better). The cache is set in KB, so its memory is the same.
    db.execute(f"PRAGMA {SCHEMA}.page_size = {_PAGE_SIZE}")
    db.execute(f"PRAGMA {SCHEMA}.cache_size = -4000")  # 4 MB: its pages spill to its file
    # Scratch data: never synced to the disk (an attached file is synced on every commit by
    # default, a hundred MB and more at a million lines), its rollback journal in memory.
    db.execute(f"PRAGMA {SCHEMA}.synchronous = OFF")
    db.execute(f"PRAGMA {SCHEMA}.journal_mode = MEMORY")
    for sql in _TABLES:
        db.execute(sql)
    db.execute("INSERT INTO stage.defaults VALUES (?, ?)", (model, params))


def match(db: sqlite3.Connection, *, items: int, mine: int, sharded: bool,
          examples: int = 5) -> StageReport:  # fmt: skip
    """Number repeated lines, find collisions and compare with the journal; ``items`` and
    ``mine``: the lines staged, and those of this shard.
    """
    db.execute("CREATE INDEX stage.staged_key ON staged(stem_key, mine, id, fp)")
    _number_repeats(db)
    conflicts, count = _collisions(db)
    db.execute(_UNDONE)
    db.execute(
        "INSERT INTO undone SELECT id, state FROM items"
        " WHERE state IN ('pending', 'submitted', 'failed')"
    )
    db.execute(_TODO)
    counts = dict(db.execute("SELECT k, count(*) FROM todo GROUP BY k").fetchall())
    clashes = db.execute(
        "SELECT t.line, coalesce(s.id, s.stem_key), t.other FROM todo t JOIN staged s"
        " USING (line)"
        " WHERE t.k = 'clash' ORDER BY t.line LIMIT 10"
    ).fetchall()
    for line, item_id, other in clashes:
        conflicts.append(Conflict("file name", item_id, (line,), other=other))
    changed = db.execute(
        "SELECT line, other FROM todo WHERE k = 'changed-done' ORDER BY line LIMIT ?",
        (examples,),
    ).fetchall()
    matched = mine - counts.get("new", 0) - counts.get("clash", 0)
    absent = None
    if not sharded:
        (total,) = db.execute("SELECT count(*) FROM items").fetchone()
        absent = total - matched
    undone = sum(v for k, v in counts.items() if k not in ("new", "clash", "moved"))
    return StageReport(
        items=items,
        mine=mine,
        new=counts.get("new", 0),
        done=matched - undone,
        pending=counts.get("pending", 0) + counts.get("submitted", 0),
        tasks=counts.get("submitted", 0),
        failed=counts.get("failed", 0),
        changed=counts.get("changed-done", 0),
        changed_examples=tuple(ChangedItem(line, item_id) for line, item_id in changed),
        changed_unfinished=sum(
            counts.get(f"changed-{s}", 0) for s in ("pending", "submitted", "failed")
        ),
        absent=absent,
        conflicts=tuple(conflicts),
        conflict_count=count + counts.get("clash", 0),
    )


def _number_repeats(db: sqlite3.Connection) -> None:
    """The 2nd, 3rd ... identical line without an id gets ``-2``, ``-3`` (in line order).
    Leaves the table ``dups``: every key that was repeated or that numbering made.
    """
    db.execute(
        "CREATE TABLE stage.dups AS SELECT stem_key FROM staged GROUP BY stem_key"
        " HAVING count(*) > 1"
    )
    db.execute(
        "CREATE TABLE stage.repeats AS SELECT line, n FROM (SELECT line, row_number() OVER"
        " (PARTITION BY stem_key ORDER BY line) AS n FROM staged WHERE id IS NULL AND"
        " stem_key IN (SELECT stem_key FROM dups)) WHERE n > 1"
    )
    # A derived id is its stem_key (id and stem NULL): numbering it renames all three.
    db.execute(
        "UPDATE staged SET stem_key = stem_key || '-' || r.n FROM repeats AS r"
        " WHERE staged.line = r.line"
    )
    db.execute(
        "INSERT INTO dups SELECT stem_key FROM staged WHERE line IN (SELECT line FROM repeats)"
    )
    db.execute("DROP TABLE stage.repeats")


def _collisions(db: sqlite3.Connection) -> tuple[list[Conflict], int]:
    """The first ten keys that more than one line has (with up to 20 of their lines), and how
    many there are. Only keys that were repeated, or made by numbering repeats, can collide.
    """
    groups = db.execute(_COLLIDING).fetchmany(10)
    (count,) = db.execute(f"SELECT count(*) FROM ({_COLLIDING})").fetchone()  # noqa: S608  (fixed)
    conflicts = []
    for (stem_key,) in groups:
        rows = db.execute(
            "SELECT line, coalesce(id, stem_key) FROM staged WHERE stem_key = ? ORDER BY line"
            " LIMIT 20",
            (stem_key,),
        ).fetchall()
        same = len({r[1] for r in rows}) == 1
        kind: Literal["id", "file name"] = "id" if same else "file name"
        conflicts.append(Conflict(kind, rows[0][1], tuple(r[0] for r in rows)))
    return conflicts, count
