"""Helpers for the Ray and ``datasets`` tests (tests/scale and tests/hostile/test_scale_*):
a sandbox where the helpers' clients find it, and an event loop run the way Ray runs an actor's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aihubmix_async.sandbox import Sandbox

from .support import sandbox_in_thread


@contextmanager
def endpoint_in_env(monkeypatch: pytest.MonkeyPatch, api_key: str) -> Iterator[Sandbox]:
    """The sandbox on a thread of its own (``datasets`` and Ray run their own event loops), with
    the key and URL in the environment, where the helpers' clients read them.
    """
    with sandbox_in_thread(api_key=api_key) as sandbox:
        monkeypatch.setenv("AIHUBMIX_API_KEY", api_key)
        monkeypatch.setenv("AIHUBMIX_BASE_URL", sandbox.base_url)
        yield sandbox


@contextmanager
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a daemon thread, as Ray Data runs an async UDF's calls."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
