"""A large batch under a storm of injected faults: every item accounted for exactly once,
transient faults retried to success, permanent ones reported with their typed error.
"""

from __future__ import annotations

from collections import Counter

import pytest

import aihubmix_async as ah
from aihubmix_async import PollPolicy, RetryPolicy
from aihubmix_async.sandbox import Fault, serve

from ..support import make_client

# Faults a billed POST can be retried through (the server surely did not process it).
TRANSIENT_SUBMIT = {"submit:status:429", "submit:status:503"}

FAULTS = (
    Fault(kind="status", status=429),
    Fault(kind="status", status=429, retry_after=0.001),
    Fault(kind="status", status=503),
    Fault(kind="status", status=500),
    Fault(kind="status", status=502),
    Fault(kind="reset"),
    Fault(kind="truncated"),
    Fault(kind="error_body"),
    Fault(kind="delay", delay=3.0),  # slower than the client's timeout
    Fault(kind="moderated"),  # flux: task ends moderated; others: 400 moderation
    Fault(kind="never_finish"),  # flux: pending past the poll deadline
    Fault(kind="status", status=500, route="poll"),
    Fault(kind="reset", route="poll"),
    Fault(kind="status", status=503, route="download"),
    Fault(kind="reset", route="download"),
)

EXPECTED_ERRORS = {
    "ServerError",  # 500 / 502 on a billed POST
    "TransportError",  # reset mid-body after the POST was sent
    "ResponseFormatError",  # truncated JSON
    "APIStatusError",  # HTTP 200 with an error body
    "RequestTimeout",  # slower than the timeout, or a task past its deadline
    "ContentPolicyError",  # moderated
}


@pytest.mark.slow
async def test_5000_items_with_20_percent_faults_lose_nothing() -> None:
    """5,000 items, ~20% of responses faulted: 0 lost, 0 duplicated, faults reconciled."""
    n = 5000
    models = ["gpt-image-1", "dall-e-3", "flux-kontext-pro", "qwen-image"]
    items = ({"prompt": f"p{i}", "model": models[i % len(models)]} for i in range(n))
    policy = RetryPolicy(max_retries=8)
    # Timeouts well above what a loaded 2-core machine needs for a loopback answer, so that only
    # the injected faults (a 3 s delay, a task that never finishes) hit them.
    poll = PollPolicy(initial_interval=0.005, max_interval=0.01, deadline=2.0)
    async with serve(pending_polls=1) as sandbox:
        sandbox.faults.seed(1234)
        sandbox.faults.rate = 0.2
        sandbox.faults.random_kinds = FAULTS
        async with make_client(sandbox, retry=policy, poll=poll, timeout=1.5) as client:
            async with client.batch(items, concurrency=64) as batch:
                outcomes = [outcome async for outcome in batch]
        injected = Counter(sandbox.stats.fault_kinds)

    counts = Counter(o.index for o in outcomes)
    lost = n - len(counts)
    assert lost == 0
    assert max(counts.values()) == 1
    assert all((o.result is None) != (o.error is None) for o in outcomes)
    failures = Counter(type(o.error).__name__ for o in outcomes if o.error is not None)
    assert set(failures) <= EXPECTED_ERRORS, failures
    # Every fault that is safe to retry was retried to success: the only failures are the
    # permanent faults, one failure per permanent fault injected on a submit or task.
    permanent = sum(
        count
        for label, count in injected.items()
        if label.startswith("submit:")
        and label not in TRANSIENT_SUBMIT
        and not label.endswith(("never_finish", "moderated", "task_failed"))
    )
    task_fates = injected["submit:never_finish"] + injected["submit:moderated"]
    total_failed = sum(failures.values())
    # never_finish / moderated on a non-task model is a no-op (or a 400 moderation) at submit.
    assert permanent <= total_failed <= permanent + task_fates
    retries = batch.summary.retries
    print(
        f"\nitems={n} faults_injected={sum(injected.values())} retries={retries}"
        f" failed={total_failed} lost={lost} by_error={dict(failures)}"
    )
    assert retries >= sum(v for k, v in injected.items() if k in TRANSIENT_SUBMIT)


async def test_lost_answer_is_not_resent_unless_opted_in() -> None:
    """A POST whose body was sent and whose answer was lost is sent once, or again on opt-in."""
    async with serve() as sandbox:
        for kind, options in (("reset", {}), ("delay", {"delay": 0.5})):
            sandbox.fail(kind, **options)
            async with make_client(sandbox, timeout=0.2, max_retries=3) as client:
                with pytest.raises(ah.TransportError):
                    await client.generate("gpt-image-1", "a cat")
        assert sandbox.stats.submits == 2  # one POST each, never resent

        sandbox.fail("reset")
        opted_in = RetryPolicy(max_retries=3, retry_unsafe_posts=True)
        async with make_client(sandbox, retry=opted_in) as client:
            assert (await client.generate("gpt-image-1", "a cat")).images
        assert sandbox.stats.submits == 4  # the lost one and its deliberate resend
