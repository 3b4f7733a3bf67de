"""The transport's own contract: every failure is an SDK error, whatever URL it is handed."""

from __future__ import annotations

import aiohttp
import pytest

from aihubmix_async import InvalidRequestError
from aihubmix_async._transport import Transport


@pytest.mark.parametrize("url", ["http://[::1/v1/x", "http://127.0.0.1:99999/v1/x"])
async def test_a_url_that_does_not_parse_is_an_invalid_request_not_a_value_error(url: str) -> None:
    """Parsed URLs are cached; one that does not parse still fails as the SDK's error."""
    async with aiohttp.ClientSession() as session:
        transport = Transport.borrow(session)
        with pytest.raises(InvalidRequestError, match="invalid URL"):
            await transport.request("GET", url, headers={}, timeout=5, max_bytes=1000)
        with pytest.raises(InvalidRequestError, match="invalid URL"):  # and again: not cached
            await transport.request("GET", url, headers={}, timeout=5, max_bytes=1000)
