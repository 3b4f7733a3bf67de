"""Resume of a huge run: how long until the first generation request, and peak memory.

A run folder whose journal holds N (default 1,000,000) done items is built directly with
SQLite (the ids and fingerprints staging would compute), the prompts file gets NEW extra lines
at its end, and the CLI resumes it against a sandbox in its own process::

    python benchmarks/bench_resume.py [N] [NEW]

Run twice: a full ingest (the journal has no record of this input), then the same command
again after marking the new items unfinished (the restart shortcut). Reported for each:
seconds from starting the CLI to the sandbox's first generation request (the
sandbox's monotonic clock, which on Linux is the same clock as ours), the CLI's wall time and
CPU time and peak RSS (``getrusage(RUSAGE_CHILDREN)`` once it has exited; the sandbox is still
running, so it is not counted), and the load average (on a shared machine wall times stretch;
the CPU time does not). Targets from issue 9: first request < 10 s, peak RSS < 100 MB.

Before them, where the seconds of a full ingest go, measured in this process on a read-only
open of the folder (as ``--dry-run`` does; nothing is recorded): the one pass over the input
(read, fingerprinted, staged), then the match against the journal (the staged rows indexed,
repeats numbered, collisions found, every line classified), each with its wall and CPU time.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _harness import sandbox_process

from aihubmix_async._journal import DB_NAME, JOURNAL_DIR, Journal
from aihubmix_async._journal_stage import bare_identity
from aihubmix_async._prompts import PromptLine, PromptReader
from aihubmix_async._registry import Registry
from aihubmix_async.sandbox import DEFAULT_API_KEY

MODEL = "gpt-image-1"


def prompt(k: int) -> str:
    return f"a small watercolour study number {k}, soft light"


def build(folder: Path, prompts: Path, done: int, new: int) -> None:
    """The prompts file and a journal in which its first ``done`` lines are done."""
    with prompts.open("w") as handle:
        for k in range(done + new):
            handle.write(prompt(k) + "\n")
    Journal.open(folder).close()  # the schema, the lock files, the folders
    registry = Registry.default()
    files = '[["x.png", "image/png"]]'

    def rows() -> object:
        for k in range(done):
            item_id, fp, path, params = bare_identity(prompt(k), MODEL, registry=registry)
            yield (item_id, k + 1, item_id, item_id, fp, prompt(k), path, params, files)

    db = sqlite3.connect(folder / JOURNAL_DIR / DB_NAME, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:  # rebuilt by sorting once, faster than a million random inserts
        db.execute(f"DROP INDEX {name}")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO items(id, line, stem, stem_key, fp, prompt, model, params, state, files)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'done', ?)",
        rows(),  # type: ignore[arg-type]
    )
    db.execute("COMMIT")
    for _, sql in indexes:
        db.execute(sql)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def resume(label: str, command: list[str], env: dict[str, str], base_url: str) -> None:
    """Run the CLI once; print its time to the first generation request, wall, CPU, RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    cli = subprocess.run(command, env=env, capture_output=True, check=False, text=True)
    wall = time.monotonic() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    with urllib.request.urlopen(f"{base_url}/_sandbox/stats") as response:  # noqa: S310  (loopback)
        stats = json.loads(response.read())
    if cli.returncode != 0:
        raise SystemExit(f"the CLI failed ({cli.returncode}): {cli.stderr[-2000:]}")
    first = min(t for t in stats["submit_times"] if t >= t0) - t0
    print(f"{label}: first generation request after {first:.2f}s (target < 10 s); CLI wall"
          f" {wall:.1f}s, CPU {cpu:.1f}s; peak RSS so far {usage.ru_maxrss / 1024:.0f} MB"
          f" (target < 100 MB); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()}"
          f" CPUs; {cli.stdout.strip().splitlines()[-1]}")  # fmt: skip


def phases(folder: Path, prompts: Path) -> None:
    """The staging phases of a full ingest, in this process, as the CLI runs them for a text
    file (read-only: nothing is recorded).
    """
    reader = PromptReader(Registry.default(), model=MODEL)
    with Journal.open(folder, read_only=True) as journal, prompts.open("rb") as stream:
        w0, c0 = time.perf_counter(), time.process_time()
        stager = journal.stager(model=MODEL)
        for entry in reader.read(stream):
            if isinstance(entry, PromptLine):
                stager.add_prompt(entry.line, entry.prompt)
        w1, c1 = time.perf_counter(), time.process_time()
        report = stager.finish()
        w2, c2 = time.perf_counter(), time.process_time()
    print(f"phases (in process): read + stage {w1 - w0:.2f}s wall, {c1 - c0:.2f}s CPU; match"
          f" {w2 - w1:.2f}s wall, {c2 - c1:.2f}s CPU ({report.done:,} done, {report.new:,} new);"
          f" load average {os.getloadavg()[0]:.1f}")  # fmt: skip


def main() -> None:
    done = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    new = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    with tempfile.TemporaryDirectory() as tmp:
        folder, prompts = Path(tmp) / "out", Path(tmp) / "prompts.txt"
        started = time.perf_counter()
        build(folder, prompts, done, new)
        print(f"built a journal of {done:,} done items in {time.perf_counter() - started:.1f}s")
        phases(folder, prompts)
        with sandbox_process() as base_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AIHUBMIX_")}
            env.update(AIHUBMIX_API_KEY=DEFAULT_API_KEY, AIHUBMIX_BASE_URL=base_url)
            command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m",
                       MODEL, "-o", str(folder), "--concurrency", "16"]  # fmt: skip
            resume(f"full ingest of {done:,} done + {new:,} new lines", command, env, base_url)
            # As if that run had been killed before its new items: the same command again
            # takes the shortcut (the input is provably unchanged, nothing is re-staged).
            db = sqlite3.connect(folder / JOURNAL_DIR / DB_NAME, isolation_level=None)
            db.execute("UPDATE items SET state = 'pending', files = NULL WHERE line > ?", (done,))
            db.close()
            resume(f"same input, {new:,} items left (restart)", command, env, base_url)


if __name__ == "__main__":
    main()
