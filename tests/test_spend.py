"""Spend: one image per call unless asked, prices with their source, estimates, caps, costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from aihubmix_async import (
    Client,
    Cost,
    ImageRequest,
    InvalidRequestError,
    ModelName,
    PriceBook,
    Registry,
    SpendCapReached,
)
from aihubmix_async.providers import Adapter
from aihubmix_async.sandbox import Sandbox
from aihubmix_async.sandbox._images import png as make_png

from .support import collect, make_client

FAST: Final = "imagen-4.0-fast-generate-001"
SNAPSHOT = f"snapshot {PriceBook.snapshot().date}"


def _counted_models() -> list[str]:
    """Every model whose family sends its image count explicitly."""
    return [
        info.path
        for info in Registry.default().models()
        if isinstance(adapter := Registry.default().resolve(info.path)[0], Adapter)
        and adapter.answer.sent_count is not None
        and adapter.answer.sent_count in {p.name for p in info.params}
    ]


# --- one image per call unless asked ----------------------------------------------------------


async def test_the_sandbox_makes_four_imagen_images_when_the_count_is_absent(
    sandbox: Sandbox,
) -> None:
    """The emulated server default (4, each billed): what the SDK must never leave to chance."""
    url = f"{sandbox.base_url}/v1/models/google/{FAST}/predictions"
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"input": {"prompt": "x"}}, headers=headers) as response,
    ):
        body = await response.json()
    assert len(body["output"]) == 4


@pytest.mark.parametrize("model", _counted_models())
async def test_every_family_with_a_count_sends_one_and_gets_one(client: Client, model: str) -> None:
    adapter, path = client.registry.resolve(model)
    assert isinstance(adapter, Adapter)
    name = adapter.answer.sent_count
    assert name is not None
    needed: dict[str, Any] = dict.fromkeys(
        adapter.required_fields(path), "https://example.com/in.png"
    )
    request = adapter.build_request(path, "a red fox", needed)
    body = request.json
    assert isinstance(body, dict)
    assert isinstance(body["input"], dict)
    assert body["input"][name] == 1
    result = await client.generate(ModelName(model), "a red fox", **needed)
    assert len(result.images) == 1


async def test_imagen_makes_one_image_by_default_and_more_when_asked(client: Client) -> None:
    assert len((await client.generate(FAST, "a fox")).images) == 1
    assert len((await client.generate(FAST, "a fox", numberOfImages=3)).images) == 3
    adapter, path = client.registry.resolve(FAST)
    body = adapter.build_request(path, "a fox", {"sampleCount": 2}).json
    assert body == {"input": {"prompt": "a fox", "sampleCount": 2}}  # never both counts
    assert len((await client.generate(FAST, "a fox", sampleCount=2)).images) == 2


# --- prices and their sources -----------------------------------------------------------------


def test_the_snapshot_ships_with_the_package_dated() -> None:
    book = PriceBook.snapshot()
    assert book.date is not None
    assert len(book.date) == 10
    price = book.price(f"google/{FAST}")
    assert price is not None
    assert price.per_image == 0.02
    assert price.source == SNAPSHOT


async def test_a_result_costs_its_images_at_the_snapshot_price(client: Client) -> None:
    result = await client.generate(FAST, "a fox", numberOfImages=2)
    assert result.cost == Cost(amount=0.04, source=SNAPSHOT, basis="per image")


async def test_token_usage_prices_a_gpt_image_result(client: Client) -> None:
    result = await client.generate("gpt-image-1", "a fox")
    assert result.usage is not None
    assert result.cost is not None
    assert result.cost.basis == "tokens"
    assert result.cost.amount == pytest.approx((37 * 5 + 1056 * 40) / 1e6)


async def test_the_live_catalogue_is_read_once_cached_and_wins_over_the_snapshot(
    sandbox: Sandbox,
) -> None:
    sandbox.prices = {FAST: 0.5}
    async with make_client(sandbox) as client:
        assert client.models(prices=True)[0].price_source is not None  # snapshot at first
        snapshot = client.estimate(["a fox"], model=FAST).cost  # planned at the snapshot's price
        assert snapshot != 0.5
        before = await client.generate(FAST, "a fox")  # its cost is the snapshot's (and kept)
        assert before.cost is not None
        assert before.cost.source == SNAPSHOT
        book = await client.catalogue()
        await client.catalogue()
        assert [e.kind for e in sandbox.events].count("catalogue") == 1
        price = book.price(FAST)
        assert price is not None
        assert (price.per_image, price.source) == (0.5, "catalogue")
        info = next(m for m in client.models(prices=True) if m.path == f"google/{FAST}")
        assert (info.price_per_image, info.price_source) == (0.5, "catalogue")
        result = await client.generate(FAST, "a fox")
        assert result.cost == Cost(amount=0.5, source="catalogue")
        assert client.estimate(["a fox"], model=FAST).cost == 0.5  # not the snapshot's
        sandbox.prices = {FAST: 0.7}
        await client.catalogue(refresh=True)
        assert (await client.generate(FAST, "a fox")).cost == Cost(amount=0.7, source="catalogue")


async def test_the_callers_prices_win_as_a_mapping_or_a_file(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.prices = {FAST: 0.5}
    async with make_client(sandbox, prices={FAST: 0.25}) as client:
        await client.catalogue()
        assert (await client.generate(FAST, "a fox")).cost == Cost(amount=0.25, source="override")
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"qwen-image": {"per_image": 0.01}}))
    async with make_client(sandbox, prices=str(path)) as client:
        result = await client.generate("qwen-image", "a fox")
        assert result.cost == Cost(amount=0.01, source="override")


def test_a_bad_price_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="number from 0 to 1e6"):
        PriceBook.from_mapping({FAST: -1})
    with pytest.raises(InvalidRequestError, match="data"):
        PriceBook.from_catalogue({"success": False, "message": "down"})
    with pytest.raises(InvalidRequestError, match="cannot read prices"):
        PriceBook.load(tmp_path / "missing.json")


# --- before: the estimate ---------------------------------------------------------------------

ITEMS = [
    {"prompt": "a", "model": FAST},
    {"prompt": "b", "model": FAST, "numberOfImages": 3},
    {"prompt": "c", "model": "flux-kontext-max"},
    ImageRequest(prompt="d", model="ideogram/V3", params={"rendering_speed": "TURBO"}),
    "e",
]


async def test_the_estimate_equals_the_sum_of_the_real_runs_costs(client: Client) -> None:
    estimate = client.estimate(ITEMS, model="imagen-3.0-generate-002")
    assert (estimate.requests, estimate.images) == (5, 7)
    rows = {m.model: m for m in estimate.models}
    assert rows[f"google/{FAST}"].images == 4
    assert rows["ideogram/V3"].cost == pytest.approx(0.03)
    async with client.batch(ITEMS, model="imagen-3.0-generate-002") as batch:
        outcomes = await collect(batch)
    costs = [o.result.cost.amount for o in outcomes if o.result and o.result.cost]
    assert len(costs) == 5
    assert sum(costs) == pytest.approx(estimate.cost)
    assert batch.summary.cost == pytest.approx(estimate.cost)
    assert (batch.summary.images, batch.summary.priced) == (7, 5)
    assert "total: 5 request(s), 7 image(s)" in estimate.lines()[-1]


async def test_an_unpriced_model_is_named_not_guessed(client: Client) -> None:
    estimate = client.estimate(["a", "b"], model="qwen-image")
    assert estimate.unpriced == ("qianfan/qwen-image",)
    assert estimate.cost == 0
    assert "no price" in estimate.lines()[0]


# --- during: the caps -------------------------------------------------------------------------


async def test_max_images_stops_before_the_cap_and_loses_no_item(
    client: Client, sandbox: Sandbox
) -> None:
    prompts = [f"p{i}" for i in range(12)]
    async with client.batch(prompts, model=FAST, concurrency=4, max_total_images=5) as batch:
        outcomes = await collect(batch)
    ok = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if not o.ok]
    assert len(ok) == 5
    assert sandbox.stats.submits == 5
    assert refused
    assert all(isinstance(o.error, SpendCapReached) for o in refused)
    summary = batch.summary
    assert summary.capped is not None
    assert "max_total_images=5" in summary.capped
    assert summary.not_started is not None
    assert len(outcomes) + summary.not_started == 12


async def test_max_cost_counts_items_in_flight_at_their_worst_case(
    sandbox: Sandbox,
) -> None:
    async with make_client(sandbox, prices={FAST: 0.1}) as client:
        items = [{"prompt": f"p{i}", "numberOfImages": 2} for i in range(6)]
        async with client.batch(items, model=FAST, concurrency=6, max_cost=0.45) as batch:
            outcomes = await collect(batch)
    assert sum(len(o.result.images) for o in outcomes if o.result) == 4  # 2 items: $0.40
    assert sandbox.stats.submits == 2
    assert batch.summary.cost == pytest.approx(0.4)
    assert batch.summary.capped is not None
    assert "max_cost=0.45" in batch.summary.capped


async def test_max_cost_refuses_a_model_without_a_price(client: Client, sandbox: Sandbox) -> None:
    with pytest.raises(InvalidRequestError, match="no price"):  # the batch's model: up front
        client.batch(["a"], model="qwen-image", max_cost=1)
    async with client.batch([{"prompt": "a", "model": "qwen-image"}], max_cost=1) as batch:
        (outcome,) = await collect(batch)  # an item's own model: that item
    assert isinstance(outcome.error, InvalidRequestError)
    assert "no price" in str(outcome.error)
    assert sandbox.stats.submits == 0


@pytest.mark.parametrize("caps", [{"max_cost": -1}, {"max_total_images": "5"}, {"max_cost": True}])
async def test_bad_caps_are_refused_at_once(client: Client, caps: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        client.batch(["a"], model=FAST, **caps)  # type: ignore[call-overload]


async def test_a_capped_batch_takes_local_images(client: Client, sandbox: Sandbox) -> None:
    """Image inputs are encoded when sent; the cap's worst case does not trip over bytes."""
    png = make_png(8, 8)
    items = [{"prompt": "make it blue", "model": "qwen-image-edit", "image": png}]
    async with client.batch(items, max_total_images=1) as batch:
        (outcome,) = await collect(batch)
    assert outcome.ok, outcome.error
    estimate = client.estimate(items)
    assert estimate.images == 1


async def test_doubaos_sequential_mode_counts_its_most_images(client: Client) -> None:
    auto = {"sequential_image_generation": "auto"}
    assert client.estimate(["a"], model="seedream-4.0", **auto).images == 15
    assert client.estimate(["a"], model="seedream-4.0", max_images=3, **auto).images == 3
    assert client.estimate(["a"], model="seedream-4.0").images == 1


async def test_gemini_is_priced_from_its_token_usage(client: Client) -> None:
    result = await client.generate("nano-banana", "a fox")
    assert result.cost is not None
    assert result.cost.basis == "tokens"
    assert result.cost.amount == pytest.approx((37 * 0.3 + 1290 * 30) / 1e6)


def test_the_catalogue_reader_keeps_only_usable_prices() -> None:
    book = PriceBook.from_catalogue({
        "success": True,
        "data": [
            "not an entry",
            {"pricing": {"per_image": 1}},
            {"model_id": "free-model", "pricing": "free"},
            {"model_id": "empty", "pricing": {}},
            {"model_id": "flagged", "pricing": {"per_image": True}},
            {"model_id": "chat-model", "pricing": {"input": 1, "output": 2}},
            {"model_id": "V3", "pricing": {"per_image": 0.1,
                                           "per_image_by": {"param": "x", "prices": "nope"}}},
        ],
    })  # fmt: skip
    assert len(book) == 2
    chat = book.price("vendor/CHAT-MODEL")
    assert chat is not None
    assert (chat.input, chat.output, chat.per_image) == (1.0, 2.0, None)
    ideogram = book.price("ideogram/V3")
    assert ideogram is not None
    assert ideogram.per_image_by is None
    assert ideogram.image_price({"x": "y"}) == 0.1


def test_a_price_file_may_be_a_catalogue_answer(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({"data": [{"model_id": FAST, "pricing": {"per_image": 0.3}}]}))
    price = PriceBook.load(path).price(FAST)
    assert price is not None
    assert (price.per_image, price.source) == (0.3, "override")
    path.write_text("[1, 2]")
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        PriceBook.load(path)


async def test_the_sandbox_catalogue_honours_its_filters(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/api/v1/models"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"type": "image_generation", "model": "V3"}) as r:
            one = await r.json()
        async with session.get(url, params={"type": "llm"}) as r:
            none = await r.json()
    assert [e["model_id"] for e in one["data"]] == ["V3"]
    assert one["data"][0]["pricing"]["per_image"] == 0.09
    assert none == {"success": True, "message": "", "data": []}


async def test_a_resumed_task_is_collected_whatever_the_cap(
    client: Client, sandbox: Sandbox
) -> None:
    """A journaled task was paid for already: the cap never leaves it uncollected."""
    first = await client.generate("flux-kontext-max", "a boat")
    assert first.task_id is not None
    resumed = ImageRequest(prompt="a boat", model="flux-kontext-max", task_id=first.task_id)
    async with client.batch([resumed], max_total_images=0) as batch:
        (outcome,) = await collect(batch)
    assert outcome.ok, outcome.error
    assert sandbox.stats.submits == 1


async def test_list_parameters_are_estimated_too(client: Client) -> None:
    urls = ["https://example.com/a.png", "https://example.com/b.png"]
    for _ in range(2):  # not cached (a list is unhashable), estimated each time
        assert client.estimate(["a"], model="seedream-4.0", image=urls).images == 1


async def test_an_estimate_needs_a_model_and_real_items(client: Client) -> None:
    with pytest.raises(InvalidRequestError, match="no model"):
        client.estimate(["a"])
    with pytest.raises(InvalidRequestError, match="batch items must be"):
        client.estimate([42])
    unpriced = next(m for m in client.models(prices=True) if m.path == "qianfan/qwen-image")
    assert (unpriced.price_per_image, unpriced.price_source) == (None, None)


def test_a_blocking_client_holds_the_caps_too() -> None:
    """Hostile pass: the synchronous client's batch stops at the cap like the async one."""
    from aihubmix_async import BlockingClient

    from .cli.conftest import ThreadSandbox

    api = ThreadSandbox()
    try:
        assert api.sandbox is not None
        with BlockingClient(api_key=api.sandbox.api_key, base_url=api.base_url) as client:
            prompts = [f"p{i}" for i in range(6)]
            outcomes = list(client.batch(prompts, model=FAST, max_total_images=2, concurrency=3))
        assert api.submits == 2
    finally:
        api.close()
    assert sum(o.ok for o in outcomes) == 2
    assert all(isinstance(o.error, SpendCapReached) for o in outcomes if not o.ok)
