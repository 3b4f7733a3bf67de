"""A local emulator of AIHubMix for tests, demos and benchmarks: no key, no network.

.. code-block:: python

    async with aihubmix_async.sandbox.serve() as sandbox:
        async with Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as client:
            result = await client.generate("flux-kontext-max", "a red fox")

Its routes, the fields each family accepts and the answer shapes come from the provider specs
(the same ones the adapters build requests from): a field a family does not document is
answered 400 with a server-style error body, so a wrong wire name fails a test. It returns real
PNG/JPEG images (URL outputs are served from a second loopback host acting as a CDN), keeps
finished tasks, records events in arrival order (``sandbox.events``) and takes scripted
faults: ``sandbox.fail("status", status=429, retry_after=1)``. It accepts the key
:data:`DEFAULT_API_KEY` (``"sk-sandbox"``) unless given another ``api_key``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ._app import DEFAULT_API_KEY, Event, Sandbox, SandboxStats
from ._faults import FAULT_KINDS, Fault

__all__ = ["DEFAULT_API_KEY", "FAULT_KINDS", "Event", "Fault", "Sandbox", "SandboxStats", "serve"]


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


@contextlib.asynccontextmanager
async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cdn_host: str = "127.0.0.2",
    **options: Any,
) -> AsyncIterator[Sandbox]:
    """Run the emulator on ``host`` (port 0 = any free port) until the block exits.

    Image URLs point at a second listener on ``cdn_host`` (another loopback address, so a
    different origin); if it cannot be bound, a second port on ``host`` is used instead.
    ``options`` go to :class:`Sandbox` (``api_key``, ``pending_polls``, ``latency``,
    ``image_bytes``, ``openai_form``, ``redirect_downloads``, ``registry``, and the per-key
    limit ``key_concurrency`` / ``key_rpm``: API requests beyond it are answered 429).
    """
    sandbox = Sandbox(**options)
    runner, sandbox.base_url = await _start(sandbox.api_app(), host, port)
    try:
        try:
            cdn_runner, sandbox.cdn_url = await _start(sandbox.cdn_app(), cdn_host, 0)
        except OSError:
            cdn_runner, sandbox.cdn_url = await _start(sandbox.cdn_app(), host, 0)
        try:
            yield sandbox
        finally:
            await cdn_runner.cleanup()
    finally:
        await runner.cleanup()
