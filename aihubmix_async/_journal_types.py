"""Values and errors of the run journal (kept apart so its modules can share them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal, Protocol

import attrs

from ._batch import Outcome
from ._journal_files import Layout

__all__ = [
    "ChangedItem",
    "ChangedItemsError",
    "Committed",
    "Conflict",
    "InputConflictError",
    "JournalError",
    "JournalFolder",
    "JournalWriteError",
    "StageReport",
]


class JournalError(Exception):
    """The run cannot start as asked; nothing was sent. ``exit_code`` is the CLI's."""

    exit_code = 2


class JournalWriteError(JournalError):
    """Results could not be committed (a full disk, a read-only folder): the run must stop.
    Everything reported durable before stays; the rest is generated again on a rerun.
    """

    exit_code = 3


@attrs.frozen
class Conflict:
    """Input lines that would share an item id or an image file name. ``other`` names an item
    of an earlier run whose files the line's item would overwrite.
    """

    kind: Literal["id", "file name"]
    key: str
    lines: tuple[int, ...]
    other: str | None = None

    def __str__(self) -> str:
        where = ", ".join(map(str, self.lines))
        label = "line" if len(self.lines) == 1 else "lines"
        if self.other is not None:
            return (
                f"id {self.key!r} on {label} {where}: its file names would overwrite those of"
                f" item {self.other!r} already in the folder"
            )
        return f"{self.kind} {self.key!r} on {label} {where}"


@attrs.frozen
class ChangedItem:
    line: int
    id: str


@attrs.frozen(kw_only=True)
class StageReport:
    """What the staged input means for this folder; computed without writing anything."""

    items: int  #: lines staged (every shard)
    mine: int  #: of which in this run's shard
    new: int
    done: int  #: done with the same fingerprint: skipped
    pending: int  #: pending or submitted in an earlier run: resumed
    tasks: int  #: of which journaled tasks (polled, not submitted again)
    failed: int  #: failed before: retried unless the run says otherwise
    changed: int  #: done items whose fingerprint changed (the on_change policy decides)
    changed_examples: tuple[ChangedItem, ...]
    changed_unfinished: int  #: not-yet-done items whose input changed: simply updated
    absent: int | None  #: items in the journal that are not in this input (None for shards)
    conflicts: tuple[Conflict, ...]  #: the first few
    conflict_count: int


class InputConflictError(JournalError):
    """Colliding ids or file names in the input (``report.conflicts``): never an overwrite,
    never a second bill.
    """

    def __init__(self, report: StageReport) -> None:
        shown = "; ".join(map(str, report.conflicts))
        more = report.conflict_count - len(report.conflicts)
        super().__init__(
            f"{report.conflict_count} colliding id(s) or file name(s) in the input: {shown}"
            + (f" (and {more} more)" if more > 0 else "")
            + "; give those lines distinct ids"
        )
        self.report = report


class ChangedItemsError(JournalError):
    """Done items whose input changed while the policy is to refuse (the default)."""

    def __init__(self, report: StageReport) -> None:
        examples = ", ".join(f"line {c.line} (id {c.id!r})" for c in report.changed_examples)
        super().__init__(
            f"{report.changed} item(s) already done in this folder have changed inputs (model,"
            f" prompt, parameters or images), e.g. {examples}; pass --on-change regenerate to"
            " generate them again (billed) or --on-change keep to keep their images"
        )
        self.report = report


@attrs.frozen(kw_only=True)
class Committed:
    """An item whose outcome is durable in the journal (and its files on disk)."""

    id: str
    line: int
    ok: bool
    files: tuple[str, ...]
    outcome: Outcome


class JournalFolder(Protocol):
    """What the writer and the recovery need of an open journal (``Journal`` is one); a
    protocol so those modules do not import the facade that imports them.
    """

    out: Path
    tmp: Path
    db: sqlite3.Connection
    db_path: Path
    shard: tuple[int, int]
    layout: Layout

    def export(self) -> None: ...

    def after_commit(self, db: sqlite3.Connection, done: list[Committed]) -> None: ...

    def set_meta(self, key: str, value: object) -> None: ...
