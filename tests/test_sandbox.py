"""The sandbox: as a command, its task store and event log, its key header per route, and the
layering rule that only _transport.py touches aiohttp.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

import aihubmix_async
from aihubmix_async.sandbox import DEFAULT_API_KEY, Sandbox

from .conftest import make_client

PACKAGE = Path(aihubmix_async.__file__).parent


def test_only_the_transport_imports_aiohttp() -> None:
    """Client code reaches HTTP only through _transport.py (the sandbox is a server, apart)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_transport.py" or "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "aiohttp" for name in names):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


async def _exercise(base_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base_url}/v1/models/openai/dall-e-3/predictions",
            json={"input": {"prompt": "a cat"}},
            headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
        ) as response:
            body = await response.json()
        assert response.status == 200
        assert body["output"][0]["url"].startswith("http://")
        async with session.get(f"{base_url}/_sandbox/stats") as response:
            assert (await response.json())["submits"] == 1


def test_sandbox_runs_as_a_command() -> None:
    """`python -m aihubmix_async.sandbox --port 0` serves predictions until stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aihubmix_async.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        asyncio.run(_exercise(line.split(" on ")[1].split()[0]))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, **options: object
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    async with session.request(method, url, headers=headers, **options) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_finished_tasks_stay_queryable(sandbox: Sandbox) -> None:
    """A task answers its final state on every poll after it finished, as a real server does:
    a client that timed out and polls again gets the image, not a 404.
    """
    base = sandbox.base_url
    async with aiohttp.ClientSession() as session:
        status, submitted = await _call(
            session, "POST", f"{base}/v1/models/bfl/flux-kontext-max/predictions",
            json={"input": {"prompt": "a fox"}},
        )  # fmt: skip
        assert status == 200
        task_id = submitted["output"][0]["taskId"]  # type: ignore[index]
        states = [await _call(session, "GET", f"{base}/v1/tasks/{task_id}") for _ in range(4)]
    assert [s for s, _ in states] == [200, 200, 200, 200]
    assert [body["status"] for _, body in states] == ["Pending", "Ready", "Ready", "Ready"]
    assert states[1][1] == states[2][1] == states[3][1]  # the same image every time


async def test_events_record_what_arrived_in_order(sandbox: Sandbox) -> None:
    """sandbox.events lists submits, polls and downloads in arrival order with their route and
    model, so tests assert on order rather than on wall-clock windows.
    """
    async with make_client(sandbox) as client:
        await client.generate("flux-kontext-max", "a fox")
        await client.generate("dall-e-3", "a cat")
    kinds = [(e.route, e.model, e.kind) for e in sandbox.events]
    assert kinds == [
        ("predictions", "bfl/flux-kontext-max", "submit"),
        ("tasks", None, "poll"),
        ("tasks", None, "poll"),
        ("cdn", None, "download"),
        ("predictions", "openai/dall-e-3", "submit"),
        ("cdn", None, "download"),
    ]
    times = [e.time for e in sandbox.events]
    assert times == sorted(times)
    assert sandbox.stats.max_in_flight_by_kind == {"submit": 1, "poll": 1, "download": 1}


async def test_route_key_header_and_unknown_models(sandbox: Sandbox) -> None:
    """Each route takes the key where its spec says (Gemini: x-goog-api-key, not Bearer), and
    a model no family serves is the server's 503 'no available channel'.
    """
    gemini = f"{sandbox.base_url}/gemini/v1beta/models/gemini-2.5-flash-image:generateContent"
    body = {"contents": [{"parts": [{"text": "a banana"}]}]}
    async with aiohttp.ClientSession() as session:
        status, answer = await _call(session, "POST", gemini, json=body)
        assert status == 401
        async with session.post(
            gemini, json=body, headers={"x-goog-api-key": DEFAULT_API_KEY}
        ) as response:
            assert response.status == 200
            parts = (await response.json())["candidates"][0]["content"]["parts"]
            assert parts[0]["inlineData"]["mimeType"] == "image/png"
        status, answer = await _call(
            session, "POST", f"{sandbox.base_url}/v1/models/acme/nothing/predictions",
            json={"input": {"prompt": "x"}},
        )  # fmt: skip
    assert status == 503
    assert answer["error"]["code"] == "model_not_found"  # type: ignore[index]
    assert sandbox.stats.unauthorized == 1
