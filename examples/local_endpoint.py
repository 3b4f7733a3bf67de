"""The endpoint the scale-out examples use: the real API when ``AIHUBMIX_API_KEY`` is set, else
the sandbox in a process of its own (workers in other processes reach it over loopback).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def endpoint() -> Iterator[None]:
    """Set ``AIHUBMIX_BASE_URL`` / ``AIHUBMIX_API_KEY`` for a local sandbox unless a key is set
    (Ray's workers inherit the environment of the process that starts Ray).
    """
    if os.environ.get("AIHUBMIX_API_KEY"):
        yield
        return
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "aihubmix_async.sandbox"], stdout=subprocess.PIPE, text=True
    )
    assert sandbox.stdout is not None
    os.environ["AIHUBMIX_BASE_URL"] = sandbox.stdout.readline().split()[3]
    os.environ["AIHUBMIX_API_KEY"] = "sk-sandbox"
    try:
        yield
    finally:
        del os.environ["AIHUBMIX_API_KEY"], os.environ["AIHUBMIX_BASE_URL"]
        sandbox.terminate()
        sandbox.wait()
        sandbox.stdout.close()
