"""Helpers for the CLI tests: ``main(argv)`` in-process against a sandbox on loopback.

The sandbox runs in a thread with its own event loop (the CLI runs its own loop with
``asyncio.run``), so a test reads what the server saw (``stats.submits``) directly.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from aihubmix_async._cli import main
from aihubmix_async.sandbox import DEFAULT_API_KEY, Sandbox, serve
from aihubmix_async.sandbox._images import png as make_png


class ThreadSandbox:
    """A sandbox served from a background thread's event loop."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.sandbox: Sandbox | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "sandbox did not start"

    async def _main(self) -> None:
        async with serve(**self._options) as sandbox:
            self.sandbox = sandbox
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    @property
    def base_url(self) -> str:
        assert self.sandbox is not None
        return self.sandbox.base_url

    @property
    def submits(self) -> int:
        assert self.sandbox is not None
        return self.sandbox.stats.submits

    @property
    def requests(self) -> int:
        assert self.sandbox is not None
        return self.sandbox.stats.requests

    def fail(self, kind: str, **options: Any) -> None:
        assert self._loop is not None
        assert self.sandbox is not None
        done = threading.Event()
        sandbox = self.sandbox

        def script() -> None:
            sandbox.fail(kind, **options)
            done.set()

        self._loop.call_soon_threadsafe(script)
        assert done.wait(10)

    def close(self) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadSandbox]:
    """A sandbox the CLI reaches through AIHUBMIX_BASE_URL/AIHUBMIX_API_KEY."""
    running = ThreadSandbox()
    monkeypatch.setenv("AIHUBMIX_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("AIHUBMIX_BASE_URL", running.base_url)
    yield running
    running.close()


@pytest.fixture
def png() -> bytes:
    return make_png(8, 8)


@attrs.frozen
class Ran:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*argv)``: run the command in-process; returns its exit status and output."""

    def run(*argv: str | Path) -> Ran:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def metadata_path(out: Path) -> Path:
    """``train/metadata.jsonl`` (the image-folder layout) or ``metadata.jsonl`` (flat)."""
    split = out / "train" / "metadata.jsonl"
    return split if split.exists() else out / "metadata.jsonl"


def metadata(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in metadata_path(out).read_text().splitlines()]


def errors(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def images(out: Path) -> list[str]:
    """The image file names in the folder (in bucket folders or not), the journal's aside."""
    return sorted(
        p.name
        for p in out.rglob("*")
        if p.suffix in (".png", ".jpg", ".webp") and ".aihubmix" not in p.parts
    )
