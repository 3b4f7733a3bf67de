"""A million items: staging and a resume keep memory flat, collisions are still found
(finding 9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, resource, sys
from aihubmix_async._batch import ImageRequest
from aihubmix_async._journal import Journal

n = int(sys.argv[2])

def stage(journal, extra):
    stager = journal.stager(model="gpt-image-1")
    for k in range(n):
        stager.add(k + 1, ImageRequest(prompt=f"prompt {k % (n - 3)}"))  # 3 repeated lines
    for line, request in extra:
        stager.add(line, request)
    return stager.finish()

with Journal.open(sys.argv[1]) as journal:
    first = stage(journal, [])
    plan = journal.start_run(first)
    journal.db.execute("UPDATE items SET state = 'done', files = '[]'")
with Journal.open(sys.argv[1]) as journal:  # the resume
    dups = [(n + k, ImageRequest(prompt=p, id="dup")) for k, p in ((1, "x"), (2, "y"))]
    report = stage(journal, dups)
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "first_new": first.new, "to_run": plan.to_run, "items": report.items,
                  "done": report.done, "conflicts": [str(c) for c in report.conflicts]}))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_staging_a_million_lines_keeps_memory_flat(tmp_path: Path) -> None:
    n = 1_000_000
    # Measured without coverage's tracer in the child (it adds its own tens of MB).
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "out"), str(n)],
        capture_output=True, check=False, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["first_new"] == result["to_run"] == n  # repeated lines are items too (-2 ids)
    assert (result["items"], result["done"]) == (n + 2, n)
    assert result["conflicts"] == [f"id 'dup' on lines {n + 1}, {n + 2}"]
    assert result["rss_mb"] < 100, result
