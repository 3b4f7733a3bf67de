"""Journals written by an earlier version open, migrate and resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aihubmix_async import Client
from aihubmix_async._journal import DB_NAME, JOURNAL_DIR, Journal
from aihubmix_async.sandbox import Sandbox

from .conftest import assert_consistent, items, stage


def _indexes(out: Path) -> set[str]:
    db = sqlite3.connect(out / JOURNAL_DIR / DB_NAME)
    try:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    finally:
        db.close()
    return {name for (name,) in rows}


async def test_a_journal_with_the_old_stem_index_resumes(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """The stem index once held the state (rewritten by every commit); such a journal gets
    the new index on open and its done, pending and changed items are told apart as before.
    """
    out = tmp_path / "out"
    lines = [f"prompt {k}" for k in range(5)]
    with Journal.open(out) as journal:
        journal.start_run(stage(journal, items(lines)))
        async with journal.writer(sync=False) as writer:
            async with client.batch(journal.pending(), concurrency=1) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)
                    if outcome.index == 2:
                        break
    db = sqlite3.connect(out / JOURNAL_DIR / DB_NAME)
    db.execute("DROP INDEX items_key")  # the schema as the previous version wrote it
    db.execute("CREATE INDEX items_stem ON items(stem_key, id, fp, state, line)")
    db.commit()
    db.close()
    with Journal.open(out) as journal:
        assert "items_stem" not in _indexes(out)
        assert "items_key" in _indexes(out)
        changed = [*lines[:4], "prompt 4, changed"]  # the last line replaced: new + absent
        report = stage(journal, items(changed))
        assert (report.done, report.pending, report.new, report.absent) == (3, 1, 1, 1)
        plan = journal.start_run(report)
        assert plan.to_run == 2
        async with journal.writer(sync=False) as writer:
            async with client.batch(journal.pending()) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)
    assert sorted(r["prompt"] for r in assert_consistent(out)) == sorted(changed)
    assert sandbox.stats.submits == 5
