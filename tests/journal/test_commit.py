"""Commits: atomic per item, durable before reported, recoverable at every step (findings 3,
8, 12 and 15), and the folder's own files (status, permissions).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aihubmix_async import Client
from aihubmix_async import _journal_writer as writer_module
from aihubmix_async._journal import Committed, Journal, JournalWriteError, read_status
from aihubmix_async.sandbox import Sandbox, serve

from ..conftest import make_client
from .conftest import Line, assert_consistent, errors, images, items, metadata, run, stage, temps


class Crash(SystemExit):
    """Stops the writer thread between two steps of a commit, as a kill would."""


@contextlib.contextmanager
def crash_at(step: str) -> Iterator[None]:
    def hook(name: str) -> None:
        if name == step:
            raise Crash(step)

    writer_module.test_hook = hook
    try:
        yield
    finally:
        writer_module.test_hook = None


def states(out: Path) -> dict[str, int]:
    return dict(read_status(out).counts)


@pytest.mark.parametrize("step", ["temps", "committed", "renamed"])
async def test_crash_at_every_commit_step_recovers_exactly_once(
    tmp_path: Path, sandbox: Sandbox, client: Client, step: str
) -> None:
    """Finding 3: a crash between any two steps of a commit (files written / rows committed /
    files renamed) leaves, after recovery, no file without a done row and no done row without
    its files; the resume generates every other item exactly once.
    """
    out = tmp_path / "out"
    lines: list[Line] = [{"id": f"i{k}", "prompt": f"p{k}", "n": 1 + k % 3} for k in range(12)]
    with Journal.open(out) as journal, crash_at(step):
        with pytest.raises(JournalWriteError):
            await run(journal, client, stage(journal, items(lines)), concurrency=2)
    assert temps(out) or step == "renamed"  # the crash left work behind
    with Journal.open(out) as journal:  # recovery
        done = states(out)["done"]
        assert done == (0 if step == "temps" else done)
        rows = assert_consistent(out)
        assert len({r["id"] for r in rows}) == done
        billed = sandbox.stats.submits
        report = stage(journal, items(lines))
        assert report.done == done
        await run(journal, client, report)
    assert sandbox.stats.submits == billed + 12 - done
    rows = assert_consistent(out)
    assert sorted({r["id"] for r in rows}) == sorted(f"i{k}" for k in range(12))
    assert len(rows) == sum(1 + k % 3 for k in range(12))


async def test_done_is_reported_only_when_durable(tmp_path: Path, client: Client) -> None:
    """When on_durable fires, the row is committed (seen by another connection) and every
    file is in place under its final name.
    """
    out = tmp_path / "out"
    seen: list[tuple[str, tuple[str, ...]]] = []

    def check(committed: Committed) -> None:
        db = sqlite3.connect(out / ".aihubmix" / "journal.sqlite3")
        try:
            (state,) = db.execute(
                "SELECT state FROM items WHERE id = ?", (committed.id,)
            ).fetchone()
        finally:
            db.close()
        assert all((out / name).is_file() for name in committed.files)
        seen.append((state, committed.files))

    with Journal.open(out) as journal:
        journal.start_run(stage(journal, items([{"prompt": f"p{k}", "n": 2} for k in range(6)])))
        async with journal.writer(on_durable=check) as writer:
            async with client.batch(journal.pending(), concurrency=3) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)
    assert [state for state, _ in seen] == ["done"] * 6
    assert all(len(files) == 2 for _, files in seen)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, check=False)  # fmt: skip
    return mounted.returncode == 0


async def test_full_disk_during_an_n4_commit_leaves_no_partial_item(tmp_path: Path) -> None:
    """Finding 3: the disk fills while the 4 images of one item are written: no image, no
    temporary file, no metadata line of it stays, the item is not done; once there is room a
    rerun commits all four.
    """
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        out = disk / "out"
        lines: list[Line] = [
            {"id": "small", "prompt": "one"},
            {"id": "four", "prompt": "four", "n": 4},
        ]
        async with serve(image_bytes=400_000) as sandbox:
            async with make_client(sandbox) as client:
                with Journal.open(out) as journal:
                    journal.start_run(stage(journal, items(lines)))
                    free = os.statvfs(disk)
                    room = free.f_bavail * free.f_frsize
                    filler = disk / "filler"
                    filler.write_bytes(b"\0" * (room - 1_000_000))  # room for ~2 images
                    with pytest.raises(JournalWriteError, match="No space left"):
                        async with journal.writer() as writer:
                            async with client.batch(journal.pending(), concurrency=1) as outcomes:
                                async for outcome in outcomes:
                                    await writer.put(outcome)
                filler.unlink()
                with Journal.open(out) as journal:
                    assert temps(out) == []
                    status = read_status(out)
                    assert status.counts["done"] + status.counts["pending"] == 2
                    assert not any(n.startswith("four") for n in images(out))
                    rows = metadata(out) if (out / "metadata.jsonl").exists() else []
                    assert [r for r in rows if r["id"] == "four"] == []
                    await run(journal, client, stage(journal, items(lines)))
        rows = assert_consistent(out)
        assert sorted(r["file_name"] for r in rows if r["id"] == "four") == [
            "four.png", "four~1.png", "four~2.png", "four~3.png"]  # fmt: skip
    finally:
        subprocess.run(["umount", str(disk)], check=False)  # noqa: ASYNC221 (test teardown)


async def test_errors_file_holds_only_current_failures(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """Finding 12: a failure is listed in errors.jsonl; a rerun that does not retry keeps it;
    the rerun that retries and succeeds removes it.
    """
    out = tmp_path / "out"
    lines = [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(3)]
    sandbox.fail("status", status=400, message="bad luck")
    with Journal.open(out) as journal:
        await run(journal, client, stage(journal, items(lines)), concurrency=1)
    assert [(e["error"], e["message"], e["retryable"]) for e in errors(out)] == [
        ("BadRequestError", "bad luck", False)]  # fmt: skip
    failed_id = errors(out)[0]["id"]
    assert read_status(out).failures[0].id == failed_id
    with Journal.open(out) as journal:
        plan, _ = await run(journal, client, stage(journal, items(lines)), retry_failed=False)
        assert (plan.skipped_failed, plan.to_run) == (1, 0)
    assert [e["id"] for e in errors(out)] == [failed_id]
    with Journal.open(out) as journal:
        plan, _ = await run(journal, client, stage(journal, items(lines)))
        assert (plan.retried, plan.to_run) == (1, 1)
    assert errors(out) == []
    assert len(assert_consistent(out)) == 3
    assert read_status(out).counts == {"pending": 0, "submitted": 0, "done": 3, "failed": 0}


@pytest.mark.parametrize("umask", [0o022, 0o027])
async def test_files_get_the_umasks_permissions(tmp_path: Path, client: Client, umask: int) -> None:
    """Finding 15: images and metadata.jsonl alike get 0666 minus the umask (not 0600)."""
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        with Journal.open(out) as journal:
            await run(journal, client, stage(journal, items(["a", "b"])))
    finally:
        os.umask(old)
    modes = {name: (out / name).stat().st_mode & 0o777 for name in images(out)}
    modes["metadata.jsonl"] = (out / "metadata.jsonl").stat().st_mode & 0o777
    assert set(modes.values()) == {0o666 & ~umask}


async def test_corrupt_metadata_file_does_not_break_a_resume(
    tmp_path: Path, client: Client
) -> None:
    """Finding 8: an invalid byte in a middle line of metadata.jsonl: the resume works (the
    journal is the truth) and rewrites the file whole.
    """
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        await run(journal, client, stage(journal, items(["a", "b", "c"])))
    raw = (out / "metadata.jsonl").read_bytes().split(b"\n")
    raw[1] = raw[1][:10] + b"\xff" + raw[1][11:]
    (out / "metadata.jsonl").write_bytes(b"\n".join(raw))
    with Journal.open(out) as journal:
        plan, _ = await run(journal, client, stage(journal, items(["a", "b", "c", "d"])))
        assert (plan.new, plan.skipped_done) == (1, 3)
    assert len(assert_consistent(out)) == 4


async def test_status_counts_states_images_usage_and_failures(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    out = tmp_path / "out"
    sandbox.fail("status", status=400, message="refused")
    with Journal.open(out) as journal:
        await run(journal, client, stage(journal, items([{"prompt": "a", "n": 3}, "b", "c"])),
                  concurrency=1)  # fmt: skip
        status = read_status(out)
    assert status.counts == {"pending": 0, "submitted": 0, "done": 2, "failed": 1}
    assert status.images == len(images(out))
    assert status.total_tokens > 0
    assert status.total_tokens == sum(
        r["total_tokens"] for r in metadata(out) if r["image_index"] == 0
    )
    assert [(f.line, f.error, f.message) for f in status.failures] == [
        (1, "BadRequestError", "refused")]  # fmt: skip


def test_status_of_a_folder_without_journal_is_a_clear_error(tmp_path: Path) -> None:
    from aihubmix_async._journal import JournalError

    with pytest.raises(JournalError, match="has no run journal"):
        read_status(tmp_path)


def test_folder_written_by_an_older_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "000000.png", "id": "000000"}\n')
    from aihubmix_async._journal import JournalError

    with pytest.raises(JournalError, match="without a journal"):
        Journal.open(tmp_path)
    assert not (tmp_path / ".aihubmix").exists()
    shutil.rmtree(tmp_path / ".aihubmix", ignore_errors=True)


async def test_outcomes_arriving_apart_are_committed_as_one_group(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each group costs a sync, a transaction and a wake-up of the loop: outcomes that come
    one by one wait (up to LINGER) for half the backlog and commit together, rather than one
    group each. A run's end does not wait for a group to fill.
    """
    monkeypatch.setattr(writer_module, "LINGER", 600.0)  # the fill decides, not the clock
    steps: list[str] = []
    monkeypatch.setattr(writer_module, "test_hook", steps.append)
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        journal.start_run(stage(journal, items([f"p{k}" for k in range(7)])))
        async with client.batch(journal.pending(), concurrency=1) as outcomes:
            received = [outcome async for outcome in outcomes]
        committed: list[Committed] = []
        async with journal.writer(on_durable=committed.append, backlog=8, sync=False) as writer:
            for outcome in received[:4]:  # half the backlog: one group
                await writer.put(outcome)
                await asyncio.sleep(0.2)  # the writer would commit each one alone
            for outcome in received[4:]:  # the rest: committed at the end, at once
                await writer.put(outcome)
    assert steps.count("committed") == 2
    assert sorted(c.id for c in committed) == sorted(str(o.request.id) for o in received)
    assert len(assert_consistent(out)) == 7
