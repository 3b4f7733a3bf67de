"""Issue 11 items 2 and 3 as the command line shows them: no HTML saved as ``000000.png``, and
no echoed key in ``errors.jsonl`` (the CLI runs in a worker thread, the server on this loop).
"""

from __future__ import annotations

import base64
from pathlib import Path

import anyio.to_thread
import pytest
from aiohttp import web

from aihubmix_async._cli import main

from .conftest import Start

KEY = "sk-cli-hostile-0123456789abcdef"
HTML = b"<!doctype html><html><body>Just a moment...</body></html>"


async def run_cli(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Path]:
    monkeypatch.setenv("AIHUBMIX_API_KEY", KEY)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\na dog\n")
    out = tmp_path / "out"
    argv = ["batch", str(prompts), "-m", "gpt-image-1", "-o", str(out), "--base-url", url]
    code = await anyio.to_thread.run_sync(main, argv)
    return code, out


async def test_cli_never_saves_html_as_png(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        item = {"b64_json": base64.b64encode(HTML).decode(), "mimeType": "image/png"}
        return web.json_response({"data": [item]})

    code, out = await run_cli(await start(answer), tmp_path, monkeypatch)
    assert code != 0
    assert not [p for p in out.rglob("*") if p.suffix in (".png", ".jpg", ".webp", ".gif")]
    errors = (out / "errors.jsonl").read_text()
    assert errors.count("ResponseFormatError") == 2


async def test_cli_files_hold_no_echoed_key(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"invalid header: {auth}"}}, status=400)

    code, out = await run_cli(await start(answer), tmp_path, monkeypatch)
    assert code != 0
    assert "invalid header: Bearer ***" in (out / "errors.jsonl").read_text()
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
