"""Issue 12's command-line caps attacked: shards spending into one capped folder at once, and
a capped run killed with kill -9 then resumed under the same cap and a higher one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from aihubmix_async._cli import main
from aihubmix_async.sandbox import DEFAULT_API_KEY

from ..cli.conftest import ThreadSandbox

FAST: Final = "imagen-4.0-fast-generate-001"  # $0.02 an image in the shipped snapshot


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadSandbox]:
    running = ThreadSandbox()
    monkeypatch.setenv("AIHUBMIX_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("AIHUBMIX_BASE_URL", running.base_url)
    yield running
    running.close()


def _until(condition: object, what: str) -> None:
    """Wait for an event another process causes (a bound on a hang, not a timing window)."""
    for _ in range(1200):
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _child(*argv: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # our own interpreter and module
        [sys.executable, "-m", "aihubmix_async", *map(str, argv)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def _prompts(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "p.txt"
    path.write_text("".join(f"prompt {i}\n" for i in range(count)))
    return path


@pytest.mark.slow
def test_a_capped_folder_is_spent_by_one_run_at_a_time(
    api: ThreadSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two shards with --max-cost 0.1 at once each counted the folder as it was when they
    started, and spent $0.16 together. Now the second is refused (exit 4, nothing sent) while
    the first holds the folder's spend, and runs once the first is gone (even by kill -9).
    """
    prompts, out = _prompts(tmp_path, 20), tmp_path / "out"
    api.fail("delay", delay=3600)  # the first shard's one submit stays in flight
    first = _child("batch", prompts, "-m", FAST, "-o", out, "--shard", "0/2",
                   "--max-cost", "0.1", "--concurrency", "1")  # fmt: skip
    try:
        _until(lambda: api.requests >= 1, "the first shard's submit reached the server")
        sent = api.requests
        for cap in (["--max-cost", "0.1"], []):  # capped or not, no second run spends meanwhile
            code = main(["batch", str(prompts), "-m", FAST, "-o", str(out), "--shard", "1/2", *cap])
            err = capsys.readouterr().err
            assert code == 4, err
            assert "count the whole folder" in err
        assert api.requests == sent
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    capped = main(["batch", str(prompts), "-m", FAST, "-o", str(out), "--shard", "1/2",
                   "--max-cost", "1"])  # fmt: skip
    assert capped == 0, capsys.readouterr().err  # the kernel dropped the dead run's claim
    assert api.submits == 1 + 10  # the killed shard's one submit, then shard 1's ten items


def test_a_resumed_capped_run_names_the_cap_as_given(
    api: ThreadSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rerun's message said "--max-cost 0.05 reached" (what was left of it) to a user who
    typed 0.15, and "--max-cost 0 reached: $0.0000 spent" to one who reran the same command.
    """
    prompts, out = _prompts(tmp_path, 12), tmp_path / "out"
    run = ["batch", str(prompts), "-m", FAST, "-o", str(out), "--concurrency", "1"]
    assert main([*run, "--max-cost", "0.1"]) == 5
    capsys.readouterr()
    assert main([*run, "--max-cost", "0.1"]) == 5
    same = capsys.readouterr().err
    assert "--max-cost 0.1 reached: $0.1000 in the folder before this run," in same
    assert main([*run, "--max-cost", "0.15"]) == 5
    higher = capsys.readouterr().err
    assert "--max-cost 0.15 reached: $0.1000 in the folder before this run, $0.0400 spent" in higher
    assert api.submits == 7
    assert main([*run, "--max-images", "8"]) == 5
    images = capsys.readouterr().err
    assert (
        "--max-images 8 reached: 7 image(s) in the folder before this run, 1 image(s) made"
        in images
    )
