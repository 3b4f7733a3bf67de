"""Stopping a run: signals, a closed output pipe (issue 9: findings 10 and 11).

These need a real process (signals, pipes): the CLI runs in a subprocess against a sandbox in
its own process, whose submit count says what was billed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..test_cli import SandboxProcess, cli_env, metadata


@pytest.fixture
def slow() -> Iterator[SandboxProcess]:
    running = SandboxProcess("--latency", "0.05")
    yield running
    running.close()


def write_prompts(path: Path, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"i{k}", "prompt": f"p{k}"}) + "\n" for k in range(n))
    )
    return path


def start(server: SandboxProcess, prompts: Path, out: Path, *extra: str, **popen: object
          ) -> subprocess.Popen[str]:  # fmt: skip
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m", "dall-e-3",
               "-o", str(out), "--concurrency", "16", *extra]  # fmt: skip
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    options.update(popen)
    return subprocess.Popen(command, env=cli_env(server), text=True, **options)  # type: ignore[call-overload, no-any-return]


def wait_for_submits(server: SandboxProcess, n: int) -> None:
    deadline = time.monotonic() + 60
    while server.stats()["submits"] < n:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_every_billed_generation(
    slow: SandboxProcess, tmp_path: Path, signum: int, code: int
) -> None:
    """Finding 10: SIGTERM/SIGINT stop taking items; the generations in flight (billed) are
    committed, the exit status is 128+signal and the message says how to resume.
    """
    prompts = write_prompts(tmp_path / "p.jsonl", 400)
    out = tmp_path / "out"
    proc = start(slow, prompts, out)
    wait_for_submits(slow, 40)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    name = signal.Signals(signum).name
    assert f"{name}: taking no new items" in err
    assert "rerun the same command to resume" in err
    assert "Traceback" not in err
    billed = slow.stats()["submits"]
    assert len(metadata(out)) == billed < 400  # nothing billed was dropped
    rerun = start(slow, prompts, out)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert len(metadata(out)) == 400
    assert slow.stats()["submits"] == 400  # and nothing was paid for twice


@pytest.fixture
def stuck() -> Iterator[SandboxProcess]:
    """A sandbox whose generations take ten minutes: whatever is in flight stays in flight."""
    running = SandboxProcess("--latency", "600")
    yield running
    running.close()


def start_stuck(stuck: SandboxProcess, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    """20 items at concurrency 16 against the stuck sandbox, once all 16 are in flight."""
    proc = start(stuck, write_prompts(tmp_path / "p.jsonl", 20), tmp_path / "out", *extra)
    wait_for_submits(stuck, 16)
    return proc


def test_second_signal_aborts_the_wait(stuck: SandboxProcess, tmp_path: Path) -> None:
    """Finding 10: a second signal does not wait for slow generations in flight."""
    proc = start_stuck(stuck, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    seen = [proc.stderr.readline() for _ in range(2)]  # the plan, then the signal's note
    assert "SIGTERM: taking no new items" in seen[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM again: aborting" in err
    assert "rerun the same command to resume" in err


def test_grace_period_is_bounded(stuck: SandboxProcess, tmp_path: Path) -> None:
    """Finding 10: --grace bounds the wait for generations in flight."""
    proc = start_stuck(stuck, tmp_path, "--grace", "0.2")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "waiting up to 0.2s" in err
    assert "20 item(s) not generated yet; rerun the same command to resume" in err


def test_closed_output_pipe_does_not_lose_the_run(slow: SandboxProcess, tmp_path: Path) -> None:
    """Finding 11: ``... 2>&1 | head -1``: the reader goes away after one line; the run still
    commits every item it pays for and exits 0.
    """
    prompts = write_prompts(tmp_path / "p.jsonl", 200)
    out = tmp_path / "out"
    proc = start(slow, prompts, out, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert len(metadata(out)) == 200
    assert slow.stats()["submits"] == 200


def test_signal_while_waiting_for_a_fifo(tmp_path: Path) -> None:
    """Finding 6: a run reading a named FIFO nobody writes to yet stops at once on Ctrl-C,
    having sent nothing (the blocked read does not hold the process).
    """
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(fifo), "-m", "dall-e-3",
               "-o", str(out), "--sandbox"]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".aihubmix" / "journal.sqlite3").exists():  # locked, now reading input
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped before anything was sent" in err
    assert "Traceback" not in err
