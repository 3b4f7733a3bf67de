"""Hostile use of the blocking facade: never closed, abandoned, closed mid-loop, closed
under other threads, and its values' reprs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

import aihubmix_async as ah
from aihubmix_async import BlockingClient
from aihubmix_async.sandbox import DEFAULT_API_KEY, Sandbox

from ..support import sandbox_in_thread

#: Only a hang reaches it (each script does a few loopback requests).
HANG_GUARD = 120


@pytest.fixture
def server() -> Iterator[Sandbox]:
    with sandbox_in_thread() as running:
        yield running


def run_script(server: Sandbox, body: str) -> subprocess.CompletedProcess[str]:
    """``body`` in a fresh interpreter with ``client`` open on the sandbox; a hang fails."""
    script = textwrap.dedent(f"""
        from aihubmix_async import BlockingClient
        client = BlockingClient(api_key="{DEFAULT_API_KEY}", base_url="{server.base_url}")
    """) + textwrap.dedent(body)
    try:
        return subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            check=False,
            text=True,
            timeout=HANG_GUARD,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script hung: {exc.stdout!r} {exc.stderr!r}")


@pytest.mark.slow
def test_a_script_that_never_closes_its_client_still_exits(server: Sandbox) -> None:
    """Forgetting close(): the interpreter exits (the client is closed at exit)."""
    done = run_script(server, 'print(client.generate("gpt-image-1", "a cat").image.mime_type)')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["image/png"]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_close_with_a_batch_iterator_left_unfinished(server: Sandbox) -> None:
    """A batch iterator taken one step and dropped on the floor does not block close()."""
    done = run_script(
        server,
        """
        outcomes = client.batch(["a", "b", "c"], model="gpt-image-1")
        print(next(outcomes).ok)
        client.close()
        print("closed")
        print(list(outcomes))
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "closed", "[]"]


def test_close_inside_the_batch_loop_ends_the_loop(server: Sandbox) -> None:
    """close() from the body of a ``for`` over a batch: the loop ends after that item."""
    client = BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url)
    seen = []
    for outcome in client.batch(["a", "b", "c"], model="gpt-image-1", concurrency=1):
        seen.append(outcome.ok)
        client.close()
    assert seen == [True]
    with pytest.raises(ah.ConfigurationError, match="closed"):
        client.generate("gpt-image-1", "a cat")


def test_calls_cut_off_by_close_in_another_thread_say_so(server: Sandbox) -> None:
    """Generations running in other threads when close() is called end with a
    ConfigurationError naming the close, not a transport error blaming the server.
    """
    server.fail("delay", delay=30.0, route="submit", times=4)
    client = BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            client.generate("gpt-image-1", f"cat {i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(HANG_GUARD * 100):  # until all four are held by the server
        if server.stats.faults >= 4:
            break
        threading.Event().wait(0.01)
    assert server.stats.faults == 4
    client.close()
    for thread in threads:
        thread.join(HANG_GUARD)
    assert len(errors) == 4
    assert all(isinstance(e, ah.ConfigurationError) for e in errors), errors
    assert all("closed while" in str(e) for e in errors)


def test_reprs_never_show_the_key() -> None:
    """Client, BlockingClient, results, outcomes and errors: no repr contains the key, even
    when the server echoes it back in its error message.
    """
    key = "sk-hostile-observe-0123456789"
    with (
        sandbox_in_thread(api_key=key) as server,
        BlockingClient(api_key=key, base_url=server.base_url) as client,
    ):
        server.fail("status", status=401, route="submit", message=f"bad key Bearer {key}")
        with pytest.raises(ah.AuthenticationError) as refused:
            client.generate("gpt-image-1", "a cat")
        result = client.generate("gpt-image-1", "a cat")
        texts = [repr(client), repr(client._client), repr(client._client.config)]
        texts += [repr(refused.value), str(refused.value), repr(vars(refused.value))]
        texts += [repr(result), repr(result.image), repr(result.raw)]
        texts += [repr(outcome) for outcome in client.batch(["a"], model="gpt-image-1")]
    assert not [t for t in texts if key in t]
    assert "sk-***" in texts[0]
