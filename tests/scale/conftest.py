"""A sandbox in its own process (as a Ray cluster's workers see a real endpoint), and skips
for a missing extra that apply only outside CI.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from aihubmix_async.sandbox import Sandbox

from ..scale_support import endpoint_in_env


@attrs.frozen
class SandboxProcess:
    """``python -m aihubmix_async.sandbox`` running apart, driven over HTTP."""

    base_url: str
    api_key: str

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_sandbox/stats", timeout=10) as answer:
            stats: dict[str, Any] = json.load(answer)
            return stats

    def fail(self, **fault: Any) -> None:
        """Script a fault (``sandbox.fail`` in another process)."""
        request = urllib.request.Request(
            f"{self.base_url}/_sandbox/faults", data=json.dumps(fault).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


def require(module: str) -> None:
    """Skip without the optional dependency, except in CI, where a missing extra must fail."""
    if os.environ.get("CI"):
        __import__(module)
    else:
        pytest.importorskip(module)


def start_sandbox(*args: str) -> tuple[subprocess.Popen[str], SandboxProcess]:
    key = f"sk-scale-{secrets.token_hex(8)}"
    process = subprocess.Popen(
        [sys.executable, "-m", "aihubmix_async.sandbox", "--api-key", key, *args],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"on (http://\S+)", line)
    if found is None:
        process.kill()
        raise RuntimeError(f"the sandbox did not start: {line!r}")
    return process, SandboxProcess(base_url=found.group(1), api_key=key)


def stop_sandbox(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox where the helpers' clients find it (key and URL in the environment)."""
    with endpoint_in_env(monkeypatch, "sk-scale-thread") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[SandboxProcess]:
    process, running = start_sandbox()
    try:
        yield running
    finally:
        stop_sandbox(process)
