"""JSON encoding for the hot path: orjson when installed (the ``speed`` extra), else stdlib."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "dumps", "loads"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes], Any]

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    BACKEND = "json"
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

    def dumps(value: Any) -> bytes:
        return _encoder.encode(value).encode()

    loads = json.loads
else:
    BACKEND = "orjson"
    dumps = orjson.dumps

    def loads(data: bytes) -> Any:
        """orjson, or stdlib json for what orjson refuses but JSON allows (an integer past
        64 bits, such as a huge number in ``usage``): a paid answer is not lost to a counter.
        """
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data)  # really invalid: raises its own ValueError
