"""Hostile pass: a real file-size limit (``ulimit -f``) hit by the journal or a Parquet shard.
Whatever the limit, the run stops with exit 3 and a message that names the real cause (never a
secondary SQLite error that hides it), and the rerun without the limit completes the folder:
every item in exactly one shard, ``datasets`` loads it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from aihubmix_async.sandbox import DEFAULT_API_KEY

pq = pytest.importorskip("pyarrow.parquet")


def batch(prompts: Path, out: Path, limit_kb: int | None) -> subprocess.CompletedProcess[str]:
    command = shlex.join([sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-o",
                          str(out), "-m", "gpt-image-1", "--sandbox", "--output-format", "parquet",
                          "--parquet-shard-size", "10rows", "--concurrency", "4"])  # fmt: skip
    limit = f"ulimit -f {limit_kb}; " if limit_kb else ""
    env = {**os.environ, "AIHUBMIX_API_KEY": DEFAULT_API_KEY}
    return subprocess.run(["bash", "-c", limit + command], env=env, capture_output=True,
                          text=True, check=False, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_a_file_size_limit_reports_its_cause_and_the_rerun_completes(tmp_path: Path) -> None:
    """``ulimit -f`` at several sizes (so the limit strikes the journal's commits, its plan,
    and the shards): before, most ended in "cannot rollback - no transaction is active".
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {k}\n" for k in range(60)))
    for limit in (60, 80, 100, 120, 160):
        out = tmp_path / f"out-{limit}"
        stopped = batch(prompts, out, limit)
        assert stopped.returncode == 3, stopped.stderr[-2000:]
        assert "cannot rollback" not in stopped.stderr
        assert "within a transaction" not in stopped.stderr
        resumed = batch(prompts, out, None)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        ids: Counter[str] = Counter()
        for shard in sorted((out / "data").glob("*.parquet")):
            ids.update(pq.read_table(shard, columns=["id"])["id"].to_pylist())
        assert len(ids) == 60
        assert set(ids.values()) == {1}
