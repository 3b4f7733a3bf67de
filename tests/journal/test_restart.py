"""Rerunning the same input: a run restarted from the journal without staging the input
again, only while the journal provably holds that input's staging (the 1M-resume path).
"""

from __future__ import annotations

from pathlib import Path

from aihubmix_async import Client
from aihubmix_async._journal import Journal
from aihubmix_async.sandbox import Sandbox

from .conftest import assert_consistent, items, stage


async def test_restart_takes_the_last_runs_unfinished_items(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    out = tmp_path / "out"
    lines = [f"prompt {k}" for k in range(10)]
    with Journal.open(out) as journal:
        plan = journal.start_run(stage(journal, items(lines)), input_key="K")
        assert plan.to_run == 10
        async with journal.writer() as writer:  # stop after 4 results, as a kill would
            async with client.batch(journal.pending(), concurrency=1) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)
                    if outcome.index == 3:
                        break
    sandbox.fail("status", status=400)  # one failure in the restarted run
    with Journal.open(out) as journal:
        assert journal.restart("other key") is None
        restarted = journal.restart("K")
        assert restarted is not None
        assert (restarted.to_run, restarted.new, restarted.skipped_done) == (6, 0, 4)
        async with journal.writer() as writer:
            async with client.batch(journal.pending(), concurrency=2) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)
    with Journal.open(out) as journal:  # the failure is retried by a restart too ...
        restarted = journal.restart("K", retry_failed=False)
        assert restarted is not None
        assert (restarted.to_run, restarted.skipped_failed) == (0, 1)
    with Journal.open(out) as journal:  # ... unless an earlier run left it alone
        assert journal.restart("K") is None
        plan = journal.start_run(stage(journal, items(lines)), input_key="K")
        assert plan.retried == 1
        async with journal.writer() as writer:
            async with client.batch(journal.pending()) as outcomes:
                async for outcome in outcomes:
                    await writer.put(outcome)
    assert len(assert_consistent(out)) == 10
    assert sandbox.stats.submits == 11


async def test_any_other_run_voids_the_recorded_input(tmp_path: Path) -> None:
    """Once another input changed the journal (here: regenerated with another model), the
    old key no longer vouches for anything: a full staging is required.
    """
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        journal.start_run(stage(journal, items(["a", "b"])), input_key="K")
    with Journal.open(out) as journal:
        journal.start_run(stage(journal, items(["a", "b"], model="dall-e-3")))
    with Journal.open(out) as journal:
        assert journal.restart("K") is None
    with Journal.open(out, shard=(0, 2)) as journal:  # keys are per shard
        journal.start_run(stage(journal, items(["a", "b"])), input_key="K")
    with Journal.open(out, shard=(1, 2)) as journal:
        assert journal.restart("K") is None
    with Journal.open(out, shard=(0, 2)) as journal:
        assert journal.restart("K") is not None
