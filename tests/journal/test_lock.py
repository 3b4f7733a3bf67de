"""One writer per folder, or per shard (finding 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from aihubmix_async import Client
from aihubmix_async._journal import FolderLockedError, Journal, read_status
from aihubmix_async.sandbox import Sandbox

from .conftest import Line, assert_consistent, items, run, stage, temps

OPEN = "import sys; from aihubmix_async._journal import Journal; Journal.open(sys.argv[1]{})"


def open_elsewhere(out: Path, shard: str = "") -> subprocess.CompletedProcess[str]:
    """Journal.open in another process (flock is per process and open file)."""
    code = OPEN.format(f", shard={shard}" if shard else "")
    return subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, check=False,
                          text=True, timeout=60)  # fmt: skip


def test_second_process_is_refused_at_once_and_touches_nothing(tmp_path: Path) -> None:
    """A second writer fails at once, naming the folder and the holder's pid, before any
    recovery: the running writer's temporary files stay.
    """
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        mine = journal.tmp / "item.png.part"
        mine.write_bytes(b"being written")
        second = open_elsewhere(out)
        assert second.returncode != 0
        assert "FolderLockedError" in second.stderr
        assert f"{str(out)!r} is in use by another aihubmix-async process (pid {os.getpid()})" in (
            second.stderr
        )
        assert mine.read_bytes() == b"being written"
        with pytest.raises(FolderLockedError) as caught:
            Journal.open(out)  # also from this process: the lock is per open, not per pid
        assert caught.value.exit_code == 4
    assert open_elsewhere(out).returncode == 0  # released on close (and by the kernel on exit)


def test_shard_locks(tmp_path: Path) -> None:
    """Shards of one split share a folder; the same shard twice, a whole run, or a run split
    another way is refused while they run.
    """
    out = tmp_path / "out"
    with Journal.open(out, shard=(0, 2)), Journal.open(out, shard=(1, 2)):
        for shard in [(0, 2), (1, 2), (0, 3), (0, 1)]:
            with pytest.raises(FolderLockedError):
                Journal.open(out, shard=shard)
        assert "shard 1/2" in open_elsewhere(out, "(1, 2)").stderr
    with Journal.open(out, shard=(0, 3)):
        with pytest.raises(FolderLockedError, match="split shards-3"):
            Journal.open(out, shard=(0, 2))
    Journal.open(out).close()


def test_recovery_spares_a_running_shards_temporary_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Journal.open(out, shard=(0, 2)) as first:
        busy = first.tmp / "x.png.part"
        busy.write_bytes(b"busy")
        with Journal.open(out, shard=(1, 2)):
            assert busy.exists()
    assert busy.exists()  # as after a crash of shard 0: the next opener cleans it up
    Journal.open(out, shard=(1, 2)).close()
    assert temps(out) == []


async def test_two_shards_run_together_into_one_folder(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """Two shard runs at the same time: every item generated exactly once, by one of them, and
    the folder agrees with the journal at the end.
    """
    out = tmp_path / "out"
    lines: list[Line] = [f"prompt {k}" for k in range(60)] + [
        {"id": f"e{k}", "prompt": f"explicit {k}", "n": 2} for k in range(20)]  # fmt: skip
    done: dict[int, int] = {}

    async def shard(index: int) -> None:
        with Journal.open(out, shard=(index, 2)) as journal:
            report = stage(journal, items(lines))
            assert report.items == 80
            _, committed = await run(journal, client, report)
            done[index] = len(committed)

    async with anyio.create_task_group() as group:
        group.start_soon(shard, 0)
        group.start_soon(shard, 1)
    assert done[0] + done[1] == 80
    assert min(done.values()) > 10
    assert sandbox.stats.submits == 80
    assert len(assert_consistent(out)) == 100
    with Journal.open(out) as journal:
        report = stage(journal, items(lines))
        assert (report.done, report.new, report.absent) == (80, 0, 0)
    assert read_status(out).counts["done"] == 80
