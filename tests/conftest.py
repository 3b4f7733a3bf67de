"""Shared fixtures: the sandbox on loopback, a client pointed at it, a scrubbed environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from aihubmix_async import Client, set_testing
from aihubmix_async.sandbox import Sandbox, serve

# decode_image and make_client are re-exported for modules that still import them from here.
from .support import FAST_POLL, decode_image, make_client

__all__ = ["FAST_POLL", "decode_image", "make_client"]


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


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[Client]:
    async with make_client(sandbox) as opened:
        yield opened
