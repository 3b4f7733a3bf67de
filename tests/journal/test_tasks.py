"""Task models: the task id is journaled before polling and resumed, never re-billed
(finding 16).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aihubmix_async import ImageRequest, PollPolicy
from aihubmix_async._journal import Journal, read_status
from aihubmix_async.sandbox import serve

from ..conftest import make_client
from .conftest import Line, assert_consistent, items, run, stage

pytestmark = pytest.mark.skipif(
    "task_id" not in ImageRequest.__init__.__code__.co_varnames,
    reason="needs the core batch API (ImageRequest.task_id, on_task)",
)

SLOW_TASKS = PollPolicy(initial_interval=0.01, max_interval=0.01, deadline=30.0)


async def test_tasks_submitted_before_a_stop_are_polled_not_resubmitted(tmp_path: Path) -> None:
    """A run stopped while its Flux tasks are still pending (after their ids are journaled):
    the resume polls those tasks; the sandbox sees no second submit for any of them.
    """
    out = tmp_path / "out"
    lines: list[Line] = [f"a lighthouse, take {k}" for k in range(8)]
    async with serve(pending_polls=30) as sandbox:
        async with make_client(sandbox, poll=SLOW_TASKS) as client:
            with Journal.open(out) as journal:
                journal.start_run(stage(journal, items(lines, model="flux-kontext-max")))
                journaled = anyio.Event()
                count = 0
                with anyio.CancelScope() as scope:
                    async with journal.writer() as writer:

                        async def on_task(request: ImageRequest, task_id: str,
                                          request_id: str | None) -> None:  # fmt: skip
                            nonlocal count
                            await writer.record_task(request, task_id, request_id)
                            count += 1
                            if count == len(lines):
                                journaled.set()

                        async with client.batch(
                            journal.pending(), concurrency=8, on_task=on_task
                        ) as outcomes:
                            async with anyio.create_task_group() as group:

                                async def stop_when_journaled() -> None:
                                    await journaled.wait()
                                    scope.cancel()  # like a kill: in-flight polls are dropped

                                group.start_soon(stop_when_journaled)
                                async for outcome in outcomes:
                                    await writer.put(outcome)
                assert scope.cancelled_caught
            assert read_status(out).counts["submitted"] == len(lines)
            assert sandbox.stats.submits == len(lines)
            with Journal.open(out) as journal:
                report = stage(journal, items(lines, model="flux-kontext-max"))
                assert (report.pending, report.tasks) == (8, 8)
                plan, _ = await run(journal, client, report, concurrency=8)
                assert plan.resumed_tasks == 8
            assert sandbox.stats.submits == len(lines)  # zero re-billed submits
    rows = assert_consistent(out)
    assert len(rows) == 8
    assert all(r["task_id"] for r in rows)


async def test_a_failed_task_is_submitted_again(tmp_path: Path) -> None:
    """A task the provider failed is not polled again on the retry: its id is dropped."""
    out = tmp_path / "out"
    async with serve() as sandbox:
        sandbox.fail("task_failed")
        async with make_client(sandbox) as client:
            with Journal.open(out) as journal:
                await run(journal, client, stage(journal, items(["fox"], model="flux-kontext-max")))
            assert read_status(out).counts["failed"] == 1
            with Journal.open(out) as journal:
                plan, committed = await run(
                    journal, client, stage(journal, items(["fox"], model="flux-kontext-max"))
                )
            assert (plan.retried, plan.resumed_tasks, len(committed)) == (1, 0, 1)
            assert sandbox.stats.submits == 2
    assert len(assert_consistent(out)) == 1
