"""Issue 12's spend against a hostile server on loopback: lying token counts, a broken catalogue.

Each server is a small aiohttp.web app on 127.0.0.1; the client under test is the real one.
"""

from __future__ import annotations

import base64
from typing import Final

import pytest
from aiohttp import web

from aihubmix_async import (
    BatchSummary,
    Client,
    InvalidRequestError,
    Outcome,
    ResponseFormatError,
    RetryPolicy,
    SpendCapReached,
)
from aihubmix_async.sandbox import Sandbox
from aihubmix_async.sandbox._images import png

from ..reliability import conftest as reliability
from ..reliability.conftest import Handler, Start
from ..support import collect

#: The reliability suite's fixture: one-route aiohttp.web servers on 127.0.0.1 (their URL).
start = reliability.start

GPT: Final = "gpt-image-1"
LOW: Final = 0.016  # the snapshot's gpt-image-1 price per image at quality=low
PNG_B64: Final = base64.b64encode(png(8, 8)).decode()


def _client(base_url: str) -> Client:
    return Client(api_key="sk-test-hostile", base_url=base_url, retry=RetryPolicy(max_retries=0))


def _answering_usage(usage: str) -> tuple[Handler, list[str]]:
    """A gpt-image endpoint that makes one image and reports ``usage`` (raw JSON text)."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        body = '{"output":[{"b64_json":"%s"}],"usage":%s}' % (PNG_B64, usage)  # noqa: UP031
        return web.Response(body=body.encode(), content_type="application/json")

    return handler, seen


@pytest.mark.parametrize(
    "usage",
    [
        '{"input_tokens": 10, "output_tokens": -100000000, "total_tokens": 0}',
        '{"input_tokens": -900000000, "output_tokens": 10, "total_tokens": 0}',
    ],
)
async def test_negative_token_counts_cannot_lift_the_cap(start: Start, usage: str) -> None:
    """A server reporting negative tokens must not make an item cost less than nothing: the
    cap would count money back and let every item through.
    """
    handler, seen = _answering_usage(usage)
    async with _client(await start(handler)) as client:
        prompts = [f"p{i}" for i in range(6)]
        async with client.batch(
            prompts, model=GPT, quality="low", concurrency=1, max_cost=3 * LOW + 0.001
        ) as batch:
            outcomes = await collect(batch)
    assert len(seen) == 3  # three images at the low price fit; the rest are not sent
    costs = [o.result.cost for o in outcomes if o.result is not None]
    assert [c.amount for c in costs if c is not None] == [LOW] * 3
    assert {c.basis for c in costs if c is not None} == {"per image"}
    refused = [o.error for o in outcomes if o.error is not None]
    assert refused
    assert all(isinstance(e, SpendCapReached) for e in refused)
    assert batch.summary.cost == pytest.approx(3 * LOW)


async def test_an_absurd_token_count_keeps_the_image_and_its_per_image_price(
    start: Start,
) -> None:
    """A token count too large for a float must not turn a paid image into a failure."""
    handler, _ = _answering_usage('{"output_tokens": 1.7e308}')
    async with _client(await start(handler)) as client:
        result = await client.generate(GPT, "a fox", quality="low")
    assert len(result.images) == 1
    assert result.cost is not None
    assert (result.cost.amount, result.cost.basis) == (LOW, "per image")


async def test_a_catalogue_that_says_it_failed_is_a_typed_server_error(
    start: Start,
) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(
            {"success": False, "message": "catalogue temporarily down"},
            headers={"X-Request-Id": "req-cat-1"},
        )

    async with _client(await start(handler)) as client:
        with pytest.raises(ResponseFormatError) as caught:
            await client.catalogue()
        assert not isinstance(caught.value, InvalidRequestError)
        assert "catalogue temporarily down" in str(caught.value)
        assert caught.value.request_id == "req-cat-1"
        # The client still prices from the snapshot, saying so.
        price = client.models(prices=True)
        assert any(m.price_source and m.price_source.startswith("snapshot") for m in price)


async def test_a_model_listed_twice_keeps_its_higher_price(
    start: Start,
) -> None:
    """Duplicates (any case) in a catalogue: the cap must not trust the cheaper figure."""

    async def handler(_request: web.Request) -> web.Response:
        fast = "imagen-4.0-fast-generate-001"
        return web.json_response({
            "success": True,
            "data": [
                {"model_id": fast, "pricing": {"per_image": 0.5}},
                {"model_id": fast.upper(), "pricing": {"per_image": 0.0}},
                {"model_id": fast, "pricing": {"per_image": 0.1}},
            ],
        })  # fmt: skip

    async with _client(await start(handler)) as client:
        book = await client.catalogue()
    price = book.price("google/imagen-4.0-fast-generate-001")
    assert price is not None
    assert price.per_image == 0.5


# --- the caps' own values ---------------------------------------------------------------------


async def test_a_huge_whole_number_cap_is_no_cap_not_a_crash(
    start: Start,
) -> None:
    """``max_cost=10**400`` is a (silly) valid number: every item runs, none fails on floats."""
    handler, seen = _answering_usage("null")
    async with _client(await start(handler)) as client:
        async with client.batch(["a", "b"], model=GPT, quality="low", max_cost=10**400) as batch:
            outcomes = await collect(batch)
    assert [o.error for o in outcomes] == [None, None]
    assert len(seen) == 2
    assert batch.summary.capped is None


@pytest.mark.parametrize("cap", [2.5, float("inf"), float("nan"), "3"])
async def test_an_image_cap_must_be_a_whole_number(start: Start, cap: object) -> None:
    handler, seen = _answering_usage("null")
    async with _client(await start(handler)) as client:
        with pytest.raises(InvalidRequestError, match="max_total_images must be a whole number"):
            client.batch(["a"], model=GPT, max_total_images=cap)  # type: ignore[call-overload]
    assert seen == []


async def test_a_catalogue_too_large_to_be_real_is_refused_before_it_is_decoded(
    start: Start,
) -> None:
    """A 60 MB catalogue of valid JSON took ~500 MB to decode and kept 900,000 prices; the real
    one is well under 1 MiB. Over 8 MiB is a typed error, and the snapshot stays in use.
    """
    entry = b'{"model_id":"m%d","pricing":{"per_image":0.01}},'
    body = b'{"success":true,"data":[' + b"".join(entry % i for i in range(200_000)) + b"{}]}"
    assert len(body) > 8 * 1024 * 1024

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with _client(await start(handler)) as client:
        with pytest.raises(ResponseFormatError, match="larger than"):
            await client.catalogue()
        fast = next(m for m in client.models(prices=True) if m.path.endswith("fast-generate-001"))
        assert fast.price_source is not None
        assert fast.price_source.startswith("snapshot")


# --- token-billed models: the per-image figure is not their worst case -------------------------


async def _low_gpt_batch(
    client: Client, count: int, *, concurrency: int, max_cost: float
) -> tuple[list[Outcome], BatchSummary]:
    prompts = [f"p{i}" for i in range(count)]
    async with client.batch(
        prompts, model=GPT, quality="low", concurrency=concurrency, max_cost=max_cost
    ) as batch:
        outcomes = await collect(batch)
    return outcomes, batch.summary


async def test_a_token_billed_model_never_takes_the_batch_past_max_cost(
    client: Client, sandbox: Sandbox
) -> None:
    """gpt-image-1 at quality=low is reserved at the snapshot's $0.016 an image, but bills its
    tokens: $0.042 on the sandbox. With 8 in flight, a $0.10 cap spent $0.25. Now the first
    item of a token-billed model runs alone, and the rest are held at what it really cost.
    """
    outcomes, summary = await _low_gpt_batch(client, 12, concurrency=8, max_cost=0.1)
    assert summary.cost <= 0.1
    assert sandbox.stats.submits == 2  # two at $0.0424 fit under $0.10, a third does not
    done = [o.result.cost for o in outcomes if o.result is not None]
    assert all(c is not None and c.basis == "tokens" for c in done)
    assert summary.capped is not None


async def test_a_first_token_billed_item_over_the_cap_does_not_strand_the_others(
    client: Client, sandbox: Sandbox
) -> None:
    outcomes, _ = await _low_gpt_batch(client, 6, concurrency=4, max_cost=0.01)
    assert sandbox.stats.submits == 0
    assert outcomes
    assert all(isinstance(o.error, SpendCapReached) for o in outcomes)


async def test_what_one_quality_costs_in_tokens_does_not_price_another(
    client: Client, sandbox: Sandbox
) -> None:
    """A low-quality result costing 2.65x its figure must not hold a high-quality item at 2.65x
    the $0.25 figure (which would refuse it under a $0.30 cap it fits).
    """
    items = [{"prompt": "a", "quality": "low"}, {"prompt": "b", "quality": "high"}]
    async with client.batch(items, model=GPT, concurrency=1, max_cost=0.3) as batch:
        outcomes = await collect(batch)
    assert [o.error for o in outcomes] == [None, None]
    assert sandbox.stats.submits == 2
