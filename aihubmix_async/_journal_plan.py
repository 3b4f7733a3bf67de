"""A run's plan recorded in the journal, and its pending items streamed back out of it."""

from __future__ import annotations

import json
import sqlite3
import time

from ._batch import ImageRequest

__all__ = ["apply_plan", "pending_chunk", "restart_plan"]

# Fixed SQL fragments (the S608 noqa below: no outside text is spliced in; values are bound).
# ``s``: a staged row (NULLs: a derived id, the run's defaults ``d``; see _journal_match).
_COPY = (
    "line = s.line, fp = s.fp, prompt = s.prompt, model = coalesce(s.model, d.model),"
    " params = coalesce(s.params, d.params), run = :run, updated = :now"
)
# ``t.other``: the journal's item the staged line matched (same id; never a clash here).
_FROM = "FROM todo t JOIN staged s USING (line), defaults d WHERE items.id = t.other AND t.k"
_NEW = (
    "INSERT INTO items(id, line, stem, stem_key, fp, prompt, model, params, run, updated)"
    " SELECT coalesce(s.id, s.stem_key), s.line, coalesce(s.stem, s.stem_key), s.stem_key,"
    " s.fp, s.prompt, coalesce(s.model, d.model), coalesce(s.params, d.params), :run, :now"
    " FROM todo t JOIN staged s USING (line), defaults d WHERE t.k = 'new'"
    # In line order: rowids follow the lines the run works through, so a group of
    # commits rewrites a few neighbouring pages, not one random page per item.
    " ORDER BY s.line"
)


def _next_run(db: sqlite3.Connection, input_key: str | None, tag: str) -> int:
    """A new run number; and the input key: every recorded one is void once a run changed the
    items, so only this run's (if it gives one) stays.
    """
    row = db.execute("SELECT value FROM meta WHERE key = 'runs'").fetchone()
    run = int(row[0] if row else 0) + 1
    db.execute("INSERT OR REPLACE INTO meta VALUES ('runs', ?)", (run,))
    db.execute("DELETE FROM meta WHERE key LIKE 'input:%'")
    if input_key is not None:
        value = json.dumps({"key": input_key, "run": run})
        db.execute("INSERT INTO meta VALUES (?, ?)", (f"input:{tag}", value))
    return run


def apply_plan(db: sqlite3.Connection, *, on_change: str, retry_failed: bool,
               input_key: str | None, tag: str, mine: int
               ) -> tuple[int, dict[str, int]]:  # fmt: skip
    """Record the plan of a new run in one transaction; returns (run number, RunPlan counts).
    Changed done items to regenerate have their files moved to the trash table. ``mine``:
    the staged lines of this shard (``StageReport.mine``).
    """
    now = time.time()
    db.execute("BEGIN IMMEDIATE")
    try:
        run = _next_run(db, input_key, tag)
        counts = dict(db.execute("SELECT k, count(*) FROM todo GROUP BY k").fetchall())
        _record(db, {"run": run, "now": now}, on_change=on_change, retry_failed=retry_failed)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite rolls back by itself on a full disk: keep that error
            db.execute("ROLLBACK")
        raise
    return run, _plan_counts(counts, on_change=on_change, retry_failed=retry_failed, mine=mine)


def _record(db: sqlite3.Connection, args: dict[str, float], *, on_change: str,
            retry_failed: bool) -> None:  # fmt: skip
    """The plan's writes, by class of ``todo`` line: new items inserted, unfinished ones
    taken over, moved ones renumbered, failed ones reset (``retry_failed``), changed ones
    reset (done ones only to ``regenerate``, their files to the trash).
    """
    db.execute(_NEW, args)
    db.execute(f"UPDATE items SET {_COPY} {_FROM} IN ('pending', 'submitted')", args)  # noqa: S608
    db.execute(f"UPDATE items SET line = s.line {_FROM} = 'moved'", args)  # noqa: S608  (moved)
    if retry_failed:
        db.execute(
            f"UPDATE items SET {_COPY}, state = CASE WHEN task_id IS NULL THEN 'pending'"  # noqa: S608
            f" ELSE 'submitted' END {_FROM} = 'failed'",
            args,
        )
    changed = ["'changed-pending'", "'changed-submitted'", "'changed-failed'"]
    if on_change == "regenerate":
        db.execute(
            "INSERT OR IGNORE INTO trash SELECT json_extract(f.value, '$[0]') FROM todo t"
            " JOIN items i ON i.id = t.other, json_each(i.files) AS f"
            " WHERE t.k = 'changed-done'"
        )
        changed.append("'changed-done'")
    db.execute(
        f"UPDATE items SET {_COPY}, state = 'pending', task_id = NULL, files = NULL,"  # noqa: S608
        f" usage = NULL {_FROM} IN ({', '.join(changed)})",
        args,
    )


def _plan_counts(counts: dict[str, int], *, on_change: str, retry_failed: bool,
                 mine: int) -> dict[str, int]:  # fmt: skip
    """RunPlan's counts from the ``todo`` classes' counts."""
    unfinished = sum(counts.get(f"changed-{s}", 0) for s in ("pending", "submitted", "failed"))
    resumed = counts.get("pending", 0) + counts.get("submitted", 0) + unfinished
    retried = counts.get("failed", 0) if retry_failed else 0
    regenerated = counts.get("changed-done", 0) if on_change == "regenerate" else 0
    # Every line of this shard has a ``todo`` row unless it is done and unchanged ("moved"
    # ones are done too): counted from the classification, not by a pass over the lines.
    done = mine - sum(n for k, n in counts.items() if k != "moved")
    return {
        "to_run": counts.get("new", 0) + resumed + retried + regenerated,
        "new": counts.get("new", 0),
        "resumed": resumed,
        "resumed_tasks": counts.get("submitted", 0),
        "retried": retried,
        "skipped_done": done,
        "skipped_failed": 0 if retry_failed else counts.get("failed", 0),
        "regenerated": regenerated,
        "kept_changed": counts.get("changed-done", 0) if on_change == "keep" else 0,
    }


def pending_chunk(db: sqlite3.Connection, run: int, after: int, limit: int
                  ) -> list[tuple[ImageRequest, int]]:  # fmt: skip
    """The next ``limit`` requests of ``run`` still to do, after input line ``after``."""
    rows = db.execute(
        "SELECT id, line, prompt, model, params, task_id, state FROM items WHERE run = ?"
        " AND state IN ('pending', 'submitted') AND line > ? ORDER BY line LIMIT ?",
        (run, after, limit),
    ).fetchall()
    out = []
    for item_id, line, prompt, model, params, task_id, state in rows:
        resume = task_id if state == "submitted" else None
        request = ImageRequest(prompt=prompt, model=model, params=json.loads(params), id=item_id,
                               task_id=resume)  # fmt: skip
        out.append((request, line))
    return out


def restart_plan(db: sqlite3.Connection, input_key: str, tag: str, *, retry_failed: bool
                 ) -> tuple[int, dict[str, int]] | None:  # fmt: skip
    """A new run over the items of the last run of this input, without staging, if the last
    run that changed the journal recorded ``input_key`` for this owner; else None.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (f"input:{tag}",)).fetchone()
        recorded = json.loads(row[0]) if row else {}
        previous = recorded.get("run")
        skipped_failed = db.execute(  # failed items an earlier run left alone: not sure they
            "SELECT 1 FROM items WHERE state = 'failed' AND run IS NOT ? LIMIT 1", (previous,)
        ).fetchone()  # belong to this input: a full ingest decides
        if recorded.get("key") != input_key or (retry_failed and skipped_failed):
            db.execute("ROLLBACK")
            return None
        run = _next_run(db, input_key, tag)
        args = {"run": run, "previous": previous, "now": time.time()}
        resumed = db.execute(
            "UPDATE items SET run = :run WHERE run = :previous"
            " AND state IN ('pending', 'submitted')",
            args,
        ).rowcount
        (tasks,) = db.execute(
            "SELECT count(*) FROM items WHERE run = :run AND state = 'submitted'", args
        ).fetchone()
        retried = skipped = 0
        if retry_failed:
            retried = db.execute(
                "UPDATE items SET run = :run, updated = :now, state = CASE WHEN task_id IS NULL"
                " THEN 'pending' ELSE 'submitted' END WHERE run = :previous AND state = 'failed'",
                args,
            ).rowcount
        else:
            (skipped,) = db.execute("SELECT count(*) FROM items WHERE state = 'failed'").fetchone()
        (done,) = db.execute("SELECT count(*) FROM items WHERE state = 'done'").fetchone()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return run, {
        "to_run": resumed + retried, "new": 0, "resumed": resumed, "resumed_tasks": tasks,
        "retried": retried, "skipped_done": done, "skipped_failed": skipped, "regenerated": 0,
        "kept_changed": 0,
    }  # fmt: skip
