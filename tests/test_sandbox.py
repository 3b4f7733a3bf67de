"""The sandbox as a command, and the layering rule that only _transport.py touches aiohttp."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

import aihubmix_async
from aihubmix_async.sandbox import DEFAULT_API_KEY

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
