"""Fixtures for the reliability suite: small hostile aiohttp.web servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: ``await start(handler)`` serves ``handler`` on every path of a new 127.0.0.1 server.
Start = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start one-route servers on 127.0.0.1 with the handler a test gives; yields their URL."""
    runners: list[web.AppRunner] = []

    async def run(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield run
    for runner in runners:
        await runner.cleanup()
