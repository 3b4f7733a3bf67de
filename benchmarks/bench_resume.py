"""Resume of a huge run: how long until the first generation request, and peak memory.

A run folder whose journal holds N (default 1,000,000) done items is built directly with
SQLite (the ids and fingerprints staging would compute), the prompts file gets NEW extra lines
at its end, and the CLI resumes it against a sandbox in its own process::

    python benchmarks/bench_resume.py [N] [NEW]

Reported: seconds from starting the CLI to the sandbox's first generation request (the
sandbox's monotonic clock, which on Linux is the same clock as ours), the CLI's wall time and
CPU time and peak RSS (``getrusage(RUSAGE_CHILDREN)`` once it has exited; the sandbox is still
running, so it is not counted), and the load average (on a shared machine wall times stretch;
the CPU time does not). Targets from issue 9: first request < 10 s, peak RSS < 100 MB.
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


def main() -> None:
    done = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    new = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    with tempfile.TemporaryDirectory() as tmp:
        folder, prompts = Path(tmp) / "out", Path(tmp) / "prompts.txt"
        started = time.perf_counter()
        build(folder, prompts, done, new)
        print(f"built a journal of {done:,} done items in {time.perf_counter() - started:.1f}s")
        with sandbox_process() as base_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AIHUBMIX_")}
            env.update(AIHUBMIX_API_KEY=DEFAULT_API_KEY, AIHUBMIX_BASE_URL=base_url)
            command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m",
                       MODEL, "-o", str(folder), "--concurrency", "16"]  # fmt: skip
            t0 = time.monotonic()
            cli = subprocess.run(command, env=env, capture_output=True, text=True)
            wall = time.monotonic() - t0
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
            with urllib.request.urlopen(f"{base_url}/_sandbox/stats") as response:
                stats = json.loads(response.read())
    if cli.returncode != 0:
        raise SystemExit(f"the CLI failed ({cli.returncode}): {cli.stderr[-2000:]}")
    first = min(stats["submit_times"]) - t0
    print(cli.stdout.strip().splitlines()[-1])
    print(f"resume of {done:,} done + {new:,} new items: first generation request after"
          f" {first:.2f}s (target < 10 s); CLI wall {wall:.1f}s, CPU {cpu:.1f}s;"
          f" {stats['submits']} submits; peak RSS {peak:.0f} MB (target < 100 MB);"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip


if __name__ == "__main__":
    main()
