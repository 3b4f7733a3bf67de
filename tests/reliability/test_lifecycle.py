"""Lifecycle under load: cancellations at random points leave nothing behind."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from aihubmix_async.sandbox import serve

from ..support import make_client, other_tasks, wait_until


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.mark.slow
async def test_1000_random_cancellations_leave_no_tasks_connections_or_warnings() -> None:
    """1,000 batches cancelled at random moments: no tasks, no sockets, no warnings remain."""
    rng = random.Random(99)
    baseline_tasks = other_tasks()
    async with serve(latency=0.002) as sandbox:
        fds_before = open_fds()
        async with make_client(sandbox, max_concurrency=16) as client:
            for _ in range(1000):
                with anyio.move_on_after(rng.uniform(0, 0.01)):
                    async with client.batch(["x"] * 50, model="gpt-image-1", concurrency=8) as b:
                        async for _outcome in b:
                            pass
                assert other_tasks() - baseline_tasks == set()
            # the client is still healthy after all that
            assert (await client.generate("gpt-image-1", "after")).images
        await wait_until(lambda: sandbox.stats.in_flight == 0)
        assert open_fds() <= fds_before + 2  # every client socket was closed
    assert other_tasks() - baseline_tasks == set()


async def test_generate_cancelled_mid_flight_frees_its_slot() -> None:
    """Cancelling single calls releases their concurrency slots: later calls still run."""
    async with serve(latency=0.05) as sandbox, make_client(sandbox, max_concurrency=2) as client:
        for _ in range(20):
            with anyio.move_on_after(0.01):
                await client.generate("gpt-image-1", "x")
        with anyio.fail_after(30):  # a leaked slot would hang here forever
            assert (await client.generate("gpt-image-1", "x")).images
