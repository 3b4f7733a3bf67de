"""The stdlib JSON fallback behaves like orjson for what the SDK sends and reads."""

from __future__ import annotations

import importlib
import sys

import pytest

import aihubmix_async._json as json_backend


def test_stdlib_fallback_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without orjson the SDK still encodes compact UTF-8 JSON and decodes bytes."""
    value = {"input": {"prompt": "un chat sur la lune ☾", "n": 2, "flag": True, "x": None}}
    fast = json_backend.dumps(value)
    monkeypatch.setitem(sys.modules, "orjson", None)  # import now fails
    try:
        fallback = importlib.reload(json_backend)
        assert fallback.BACKEND == "json"
        assert fallback.dumps(value) == fast
        assert fallback.loads(fast) == value
        with pytest.raises(ValueError, match=r"Expecting|Unexpected|Invalid"):
            fallback.loads(b"{not json")
    finally:
        monkeypatch.undo()
        importlib.reload(json_backend)
