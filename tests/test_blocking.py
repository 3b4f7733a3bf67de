"""The blocking facade, in a plain script and with an event loop already running."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import aihubmix_async as ah
from aihubmix_async import BlockingClient
from aihubmix_async.sandbox import DEFAULT_API_KEY, Sandbox

from .support import decode_image, sandbox_in_thread


@pytest.fixture
def server() -> Iterator[Sandbox]:
    with sandbox_in_thread() as running:
        yield running


def test_plain_script(server: Sandbox) -> None:
    """A script with no asyncio in sight generates and batches."""
    script = textwrap.dedent(f"""
        from aihubmix_async import BlockingClient
        with BlockingClient(api_key="{DEFAULT_API_KEY}", base_url="{server.base_url}") as client:
            result = client.generate("gpt-image-1", "a cat")
            print(result.image.mime_type, len(result.image.data) > 0)
            print(sorted(o.index for o in client.batch(["a", "b", "c"], model="dall-e-3")))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=False, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["image/png True", "[0, 1, 2]"]


def test_inside_a_running_loop(server: Sandbox) -> None:
    """Called from a coroutine (as in Jupyter), it still works: its loop runs in its own thread."""

    async def notebook_cell() -> bytes | None:
        with BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url) as client:
            result = client.generate("flux-kontext-pro", "a fox")
            first = next(iter(client.batch(["x"] * 50, model="dall-e-3", concurrency=4)))
            assert first.ok
            return result.image.data

    data = asyncio.run(notebook_cell())
    assert decode_image(data)[0] == "JPEG"


def test_errors_and_close(server: Sandbox) -> None:
    """Typed errors come through unchanged; a closed facade says so."""
    client = BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url)
    with pytest.raises(ah.InvalidRequestError):
        client.generate("gpt-image-1", "a cat", size="9x9")  # type: ignore[call-overload]
    client.close()
    client.close()
    with pytest.raises(ah.ConfigurationError, match="closed"):
        client.generate("gpt-image-1", "a cat")


def test_results_save_synchronously(server: Sandbox, tmp_path: Path) -> None:
    """save() on a blocking result writes the file before it returns (no coroutine to await),
    for single calls and batch outcomes alike; the values are the async types' subclasses.
    """
    with BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url) as client:
        result = client.generate("gpt-image-1", "a cat")
        written = result.image.save(tmp_path / "cat.png")
        assert written == tmp_path / "cat.png"
        assert decode_image(written.read_bytes())[0] == "PNG"
        # Like the async save: the prompt travels in the file unless told otherwise.
        assert b"a cat" in written.read_bytes()
        bare = result.image.save(tmp_path / "bare.png", provenance=False)
        assert bare.read_bytes() == result.image.data
        assert isinstance(result, ah.ImageResult)
        assert result.model == "openai/gpt-image-1"
        assert result.request_id is not None
        saved = []
        (tmp_path / "batch").mkdir()
        for outcome in client.batch(["a", "b"], model="dall-e-3"):
            assert isinstance(outcome, ah.Success)
            saved.append(outcome.result.image.save(tmp_path / "batch"))
            assert isinstance(outcome.result, ah.BlockingResult)
    # A folder gets a file name by content type (the second save replaces the first).
    assert saved == [tmp_path / "batch" / "image.png"] * 2
    assert (tmp_path / "batch" / "image.png").stat().st_size > 0


def test_failed_batch_items_stay_failures(server: Sandbox) -> None:
    """A failed item comes through the blocking batch as the same Failure, error intact."""
    with BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url) as client:
        outcomes = list(client.batch([{"prompt": "x", "model": "no-such-model"}, "y"],
                                     model="dall-e-3"))  # fmt: skip
    failures = [o for o in outcomes if isinstance(o, ah.Failure)]
    assert len(failures) == 1
    assert isinstance(failures[0].error, ah.InvalidRequestError)
    assert failures[0].result is None
    assert not failures[0].ok


def test_saving_an_image_that_was_not_downloaded_says_so(server: Sandbox, tmp_path: Path) -> None:
    """With download=False there are no bytes: save() refuses instead of writing nothing."""
    with BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url) as client:
        result = client.generate("dall-e-3", "a cat", download=False)
    assert result.image.url is not None
    with pytest.raises(ValueError, match="not downloaded"):
        result.image.save(tmp_path / "cat.png")
    assert not (tmp_path / "cat.png").exists()


def test_prices_catalogue_and_estimates_without_asyncio(server: Sandbox) -> None:
    """The blocking facade offers what Client offers for spend: prices with their source, the
    live catalogue (read once) and an estimate that sends nothing.
    """
    server.prices = {"imagen-4.0-fast-generate-001": 0.5}
    with BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url) as client:
        fast = "imagen-4.0-fast-generate-001"
        before = len(server.events)
        estimate = client.estimate(["a", "b"], model=fast)
        assert estimate.images == 2
        assert len(server.events) == before  # an estimate sends nothing
        book = client.catalogue()
        client.catalogue()
        assert [e.kind for e in server.events].count("catalogue") == 1
        price = book.price(fast)
        assert price is not None
        assert (price.per_image, price.source) == (0.5, "catalogue")
        info = next(m for m in client.models(prices=True) if m.path == f"google/{fast}")
        assert (info.price_per_image, info.price_source) == (0.5, "catalogue")
