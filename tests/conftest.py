"""Shared fixtures: the sandbox on loopback, a client pointed at it, a scrubbed environment."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

import pytest

from aihubmix_async import Client, PollPolicy, RetryPolicy, set_testing
from aihubmix_async.sandbox import Sandbox, serve

#: Fast polling so task-style models finish in milliseconds against the sandbox.
FAST_POLL = PollPolicy(initial_interval=0.01, max_interval=0.05, deadline=5.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp is asyncio-only


@pytest.fixture(autouse=True)
def _scrub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL", "AIHUBMIX_TASKS_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    """Retries happen but without backoff sleeps; tests that time waits turn this off."""
    with set_testing(True):
        yield


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve() as running:
        yield running


def make_client(sandbox: Sandbox, **options: object) -> Client:
    settings: dict[str, object] = {
        "api_key": sandbox.api_key,
        "base_url": sandbox.base_url,
        "poll": FAST_POLL,
        "retry": RetryPolicy(max_retries=2),
    }
    settings.update(options)
    return Client(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[Client]:
    async with make_client(sandbox) as opened:
        yield opened


def decode_image(data: bytes | None) -> tuple[str, tuple[int, int]]:
    """Decode image bytes with Pillow; returns (format, size). Fails on anything not an image."""
    assert data is not None, "the image was not downloaded"
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return str(image.format), image.size
