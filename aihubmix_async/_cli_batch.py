"""``aihubmix-async batch``: a prompts file into an image dataset, through the run journal.

Preflight (nothing read or billed), the folder lock, one pass over the input into the journal
(bad lines counted, colliding ids and changed items refused), then the generation itself:
pending items stream out of the journal into the batch runner and every outcome is committed
in groups, off the event loop; an item counts as saved only once it is durable.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from functools import partial
from typing import Any

import anyio.to_thread
import attrs

from . import __version__
from ._cli_client import open_client
from ._cli_spend import EXIT_CAPPED, SpendFence, Tally, caps_left, price_book
from ._journal import (
    Committed,
    FolderLockedError,
    Journal,
    JournalError,
    RunPlan,
    StageReport,
    read_status,
)
from ._models import Outcome
from ._parquet import ShardTarget
from ._preflight import BatchSettings, preflight
from ._progress import Reporter, make_reporter, say
from ._prompts import BadLine, BadLines, PromptReader, input_key, open_source
from ._registry import Registry
from ._spend import SpendCapReached, check_cap
from ._stopping import Stopped, Stopper, in_daemon_thread

__all__ = ["dry_run", "run_batch", "show_status"]

RERUN = "rerun the same command to resume"
#: The one meaning of "retries" in the bar, the progress lines and the summary.
_RETRIES = " (requests resent after a 429, 5xx or timeout)"


def _settings(args: argparse.Namespace, *, need_key: bool) -> BatchSettings:
    check_cap(args.max_cost, "--max-cost")
    check_cap(args.max_images, "--max-images")
    price_book(args, args.model)  # a bad --prices file is refused before anything is sent
    return preflight(
        source=args.prompts, fmt=args.format, model=args.model, params=args.param,
        shard=args.shard, concurrency=args.concurrency, sandbox=args.sandbox,
        max_concurrency=args.max_concurrency,
        need_key=need_key, registry=Registry.default(),
    )  # fmt: skip


def _stage(journal: Journal, args: argparse.Namespace, settings: BatchSettings,
           bad: BadLines, stopper: Stopper | None = None,
           tally: Tally | None = None) -> StageReport:  # fmt: skip
    """One pass over the input into the journal's staging table (a worker thread)."""
    registry = Registry.default()
    reader = PromptReader(registry, model=settings.model, params=settings.params,
                          allow_local_files=args.allow_local_files)  # fmt: skip
    stager = journal.stager(model=settings.model, params=settings.params, registry=registry)
    stream = open_source(settings.source)
    try:
        for entry in reader.read(stream, settings.fmt):
            if stopper is not None and stopper.signum is not None:
                raise Stopped
            if isinstance(entry, BadLine):
                bad.add(entry)
                continue
            try:
                if entry.request is None:  # a text line: the run's model and parameters
                    stager.add_prompt(entry.line, entry.prompt)
                else:
                    stager.add(entry.line, entry.request)
                if tally is not None:
                    tally.add(entry.request)
            except ValueError as exc:  # InvalidRequestError: a line that cannot be an item
                bad.add(BadLine(line=entry.line, message=str(exc)))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return stager.finish()


def _report_input(bad: BadLines, report: StageReport) -> None:
    for text in bad.describe():
        say(text, sys.stderr)
    for conflict in report.conflicts:
        say(f"collision: {conflict}", sys.stderr)


# --- dry run ----------------------------------------------------------------------------------


async def dry_run(args: argparse.Namespace) -> int:
    """Check every line and what the folder's journal would make of it; send nothing."""
    settings = _settings(args, need_key=False)
    bad = BadLines()
    tally = Tally(args, settings.model, settings.params)
    journal = await anyio.to_thread.run_sync(
        lambda: Journal.open(args.out, shard=settings.shard, read_only=True)
    )
    try:
        report = await anyio.to_thread.run_sync(_stage, journal, args, settings, bad, None, tally)
    finally:
        journal.close()
    _report_input(bad, report)
    refused = report.changed and args.on_change == "refuse"
    say(
        f"{report.items} line(s) valid, {bad.count} invalid, {report.conflict_count}"
        f" collision(s); {report.new} new, {report.done} already done, {report.pending}"
        f" to resume, {report.failed} failed before, {report.changed} changed;"
        " nothing was sent"
    )
    done = f" (every valid line; {report.done} already done)" if report.done else ""
    say(f"estimate{done}:")
    for line in tally.estimate().lines():
        say(line)
    return 1 if bad.count or report.conflict_count or refused else 0


# --- the run ----------------------------------------------------------------------------------


async def run_batch(args: argparse.Namespace) -> int:
    settings = _settings(args, need_key=True)
    for note in settings.notes:
        say(note, sys.stderr)
    stopper = Stopper(args.grace, lambda text: say(text, sys.stderr))
    with stopper.installed():
        try:
            journal = await anyio.to_thread.run_sync(
                lambda: Journal.open(args.out, shard=settings.shard, layout=args.output_format)
            )
        except (FolderLockedError, JournalError) as exc:
            say(f"error: {exc}", sys.stderr)
            return exc.exit_code
        if journal.sharder is not None:
            journal.sharder.target = args.parquet_shard_size or ShardTarget()
        try:
            fence = SpendFence.take(args, journal.out)  # a capped run spends alone
        except FolderLockedError as exc:
            journal.close()
            say(f"error: {exc}", sys.stderr)
            return exc.exit_code
        with fence:
            return await _run_in(args, settings, journal, stopper)


async def _run_in(args: argparse.Namespace, settings: BatchSettings, journal: Journal,
                  stopper: Stopper) -> int:  # fmt: skip
    try:
        code = await _run(args, settings, journal, stopper)
    except Stopped:
        # The input thread may still be blocked (a FIFO nobody writes): leave the journal
        # open; the process exits now and the kernel releases the lock.
        say("stopped before anything was sent", sys.stderr)
        return stopper.exit_code
    except JournalError as exc:
        journal.close()
        say(f"error: {exc}", sys.stderr)
        return exc.exit_code
    except BaseException:
        journal.close()
        raise
    journal.close()
    return code


async def _run(args: argparse.Namespace, settings: BatchSettings, journal: Journal,
               stopper: Stopper) -> int:  # fmt: skip
    bad = BadLines()
    key = await anyio.to_thread.run_sync(_input_key, args, settings)
    plan = None
    if key is not None:  # the same file and settings as the last run: no need to read it
        plan = await anyio.to_thread.run_sync(
            partial(journal.restart, key, retry_failed=args.retry_failed)
        )
        if plan is not None:
            say("[aihubmix] prompts and settings unchanged since the last run: not re-read",
                sys.stderr)  # fmt: skip
    if plan is None:
        with stopper.scope(billing=False):
            report = await in_daemon_thread(_stage, journal, args, settings, bad, stopper)
        _report_input(bad, report)
        if bad.count:  # a rerun must report the bad lines again: it reads the input
            key = None
        plan = await anyio.to_thread.run_sync(
            lambda: journal.start_run(
                report, on_change=args.on_change, retry_failed=args.retry_failed, input_key=key
            )
        )
    say(_plan_line(plan), sys.stderr)
    reporter = make_reporter(plan.to_run)
    stopper.tell = reporter.note
    spent = await _generate(args, settings, journal, stopper, reporter)
    reporter.close()
    return _summary(args, bad, plan, reporter, stopper, spent)


def _input_key(args: argparse.Namespace, settings: BatchSettings) -> str | None:
    """What makes a rerun provably the same as the last one (None: read the input again
    regardless). The change policy is part of it: after ``--on-change keep`` the kept items
    still differ from their lines, and ``--on-change regenerate`` must find them. Local image
    files are part of fingerprints but not of the prompts file: never skipped then.
    """
    if args.allow_local_files:
        return None
    return input_key(settings.source, {
        "model": settings.model, "params": settings.params, "shard": settings.shard,
        "format": settings.fmt, "on_change": args.on_change, "version": __version__,
    })  # fmt: skip


def _plan_line(plan: RunPlan) -> str:
    parts = [f"{plan.new} new"]
    if plan.resumed:
        tasks = f" ({plan.resumed_tasks} journaled tasks polled, not resubmitted)"
        parts.append(f"{plan.resumed} resumed" + (tasks if plan.resumed_tasks else ""))
    if plan.retried:
        parts.append(f"{plan.retried} failed before, retried")
    if plan.regenerated:
        parts.append(f"{plan.regenerated} changed, regenerated")
    skipped = f"; {plan.skipped_done} already done"
    if plan.kept_changed:
        skipped += f" ({plan.kept_changed} changed, kept as they are)"
    if plan.skipped_failed:
        skipped += f"; {plan.skipped_failed} failed before, left alone (--no-retry-failed)"
    return f"[aihubmix] {plan.to_run} to generate: {', '.join(parts)}{skipped}"


class _Spent:
    """What this run cost (priced items) and why the cap stopped it, if it did."""

    cost = 0.0
    capped: str | None = None


async def _generate(args: argparse.Namespace, settings: BatchSettings, journal: Journal,
                    stopper: Stopper, reporter: Reporter) -> _Spent:  # fmt: skip
    spent = _Spent()
    caps = caps_left(args, journal.db)

    def saved(item: Committed) -> None:
        reporter.item(ok=item.ok, images=len(item.files),
                      retries=max(item.outcome.attempts - 1, 0))  # fmt: skip
        result = item.outcome.result
        if result is not None and result.cost is not None:
            spent.cost += result.cost.amount

    async with (
        open_client(args, settings.concurrency) as client,
        journal.writer(on_durable=saved, backlog=settings.concurrency) as writer,
    ):
        # Only the batch is cancelled (grace over, or a second signal): the writer still
        # commits every outcome received (put() queues before it waits for room).
        with stopper.scope(billing=True):
            async with client.batch(
                journal.pending(),
                concurrency="auto" if settings.adaptive else settings.concurrency,
                rpm=args.rpm,
                on_task=writer.record_task,
                max_cost=caps.cost,
                max_total_images=caps.images,
            ) as outcomes:
                stopper.watch(outcomes)
                async for outcome in outcomes:
                    if isinstance(outcome.error, SpendCapReached):  # never sent: stays pending
                        spent.capped = caps.words(outcome.error.cap)
                        continue
                    await writer.put(_provenance(args, outcome))
    return spent


def _provenance(args: argparse.Namespace, outcome: Outcome) -> Outcome:
    """``--no-provenance``: the item's images are written as they came."""
    if getattr(args, "provenance", True) or outcome.result is None:
        return outcome
    return attrs.evolve(outcome, result=outcome.result.without_provenance())


def _summary(args: argparse.Namespace, bad: BadLines, plan: RunPlan, reporter: Reporter,
             stopper: Stopper, spent: _Spent) -> int:  # fmt: skip
    failed = reporter.failed
    left = plan.to_run - reporter.done  # this run's items not settled (other shards aside)
    say(
        f"{reporter.done - failed} saved ({reporter.images} images), {failed} failed,"
        f" {bad.count} bad line(s), {plan.skipped_done} already done, {reporter.retries}"
        f" retries{_RETRIES if reporter.retries else ''} -> {args.out}"
    )
    say(f"cost: ${spent.cost:.4f} estimated for this run's priced items")
    again = _rerun(args)
    if spent.capped is not None:
        say(f"stopped at the cap: {spent.capped}; {left} item(s) not generated; rerun with a"
            " higher --max-cost / --max-images to continue", sys.stderr)  # fmt: skip
        return EXIT_CAPPED
    if failed:
        say(f"{failed} item(s) failed (see errors.jsonl); a rerun of the same command retries"
            f" them{again}", sys.stderr)  # fmt: skip
    if reporter.done:
        say(f"contact sheet: aihubmix-async gallery {shlex.quote(str(args.out))}")
    if stopper.signum is not None:
        say(f"stopped: {left} item(s) not generated yet; {RERUN}{again}", sys.stderr)
        return stopper.exit_code
    if left:
        say(f"{left} item(s) not finished; {RERUN}{again}", sys.stderr)
        return 1
    return 1 if failed or bad.count else 0


def _rerun(args: argparse.Namespace) -> str:
    """``: <the exact command>`` to resume or retry (empty when the command is not known)."""
    argv = getattr(args, "argv", None)
    if not argv:
        return ""
    command = shlex.join(["aihubmix-async", *argv])
    stdin = " (with the same prompts on standard input)" if args.prompts == "-" else ""
    return f":\n  {command}{stdin}"


# --- status -----------------------------------------------------------------------------------


async def show_status(folder: Any) -> int:
    try:
        status = await anyio.to_thread.run_sync(read_status, folder)
    except JournalError as exc:
        say(f"error: {exc}", sys.stderr)
        return exc.exit_code
    counts = status.counts
    say(f"{folder}: " + ", ".join(f"{counts[k]} {k}" for k in counts))
    say(f"{status.images} image(s); tokens: {status.input_tokens} in, {status.output_tokens} out,"
        f" {status.total_tokens} total; cost: ${status.cost:.4f} estimated for {status.priced}"
        " priced item(s)")  # fmt: skip
    if counts["failed"]:
        say(f"{counts['failed']} failed ({status.retryable_failures} retryable); a rerun retries"
            " them. First failures:")  # fmt: skip
        for failure in status.failures:
            say(f"  line {failure.line} (id {failure.id!r}): {failure.error}: {failure.message}")
    return 0
