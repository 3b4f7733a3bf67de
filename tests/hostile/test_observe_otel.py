"""Hostile input for the OpenTelemetry spans: megabyte error messages, URLs, ids and model
names stay bounded in every span, the key never appears, and tracing with no SDK is silent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aihubmix_async import (
    BadRequestError,
    BlockingClient,
    Client,
    ImageRequest,
    InvalidRequestError,
    RetryPolicy,
)
from aihubmix_async.otel import instrument, uninstrument
from aihubmix_async.sandbox import DEFAULT_API_KEY, Sandbox

from ..support import collect, make_client, sandbox_in_thread

KEY = "sk-observe-hostile-0123456789"
HUGE = 300_000
#: What one span may weigh here, attributes and events together (a few KiB of text).
SPAN_BUDGET = 16_000


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def provider_for(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def weight(span: ReadableSpan) -> int:
    return len(
        json.dumps(
            [
                span.name,
                dict(span.attributes or {}),
                [dict(e.attributes or {}) for e in span.events],
            ]
        )
    )


def everything(spans: tuple[ReadableSpan, ...]) -> str:
    rows = [[s.name, dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]]
            for s in spans]  # fmt: skip
    return json.dumps(rows)


@pytest.fixture
async def echoing() -> AsyncIterator[str]:
    """A server answering every submit 400 with a huge message that echoes the
    Authorization header (key included) and a request id made of it.
    """

    async def refuse(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        message = f"bad request from {auth}: " + "x" * HUGE
        return web.json_response(
            {"error": {"message": message, "code": auth}},
            status=400,
            headers={"x-request-id": f"req-{auth}"},
        )

    app = web.Application()
    app.router.add_post("/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_huge_echoing_error_is_recorded_bounded_and_without_the_key(
    echoing: str, exporter: InMemorySpanExporter
) -> None:
    """A 300 KB error message echoing the key: both spans are ERROR with the message's
    start, each span stays a few KiB, and the key appears nowhere.
    """
    client = Client(api_key=KEY, base_url=echoing, retry=RetryPolicy(max_retries=0))
    async with instrument(client, tracer_provider=provider_for(exporter)):
        with pytest.raises(BadRequestError):
            await client.generate("gpt-image-1", "a cat")
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        (event,) = span.events
        assert str((event.attributes or {})["exception.message"]).startswith("bad request from")
        assert weight(span) < SPAN_BUDGET
    assert KEY not in everything(spans)


async def test_huge_item_ids_and_model_names_are_cut_in_spans(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """A 300 KB item id (a batch) and a 300 KB model name (refused before sending)."""
    client = instrument(make_client(sandbox), tracer_provider=provider_for(exporter))
    items = [ImageRequest(prompt="a fox", id="i" * HUGE)]
    async with client:
        async with client.batch(items, model="gpt-image-1") as batch:
            assert all(o.ok for o in await collect(batch))
        with pytest.raises(InvalidRequestError):
            await client.generate("m" * HUGE, "a cat")  # type: ignore[call-overload]
    spans = exporter.get_finished_spans()
    assert len(spans) == 3  # the item's generation and its POST; the refused generation
    assert all(weight(s) < SPAN_BUDGET for s in spans)
    ids = [(s.attributes or {}).get("aihubmix.batch.item_id") for s in spans]
    ids = [i for i in ids if i is not None]
    assert len(ids) == 1
    assert str(ids[0]).startswith("iiii")


async def test_without_an_sdk_tracing_is_silent(sandbox: Sandbox) -> None:
    """instrument() with no SDK installed as the global provider: calls work, nothing fails."""
    async with instrument(make_client(sandbox)) as client:
        result = await client.generate("flux-kontext-max", "a fox")
    assert result.images


async def test_uninstrument_stops_the_spans(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """uninstrument(): later generations make no spans; instrumenting again starts them (one
    span per generation, not two).
    """
    client = instrument(make_client(sandbox), tracer_provider=provider_for(exporter))
    async with client:
        await client.generate("gpt-image-1", "one")
        uninstrument(client)
        uninstrument(client)  # twice: harmless
        await client.generate("gpt-image-1", "two")
        assert len(exporter.get_finished_spans()) == 2
        instrument(client, tracer_provider=provider_for(exporter))
        await client.generate("gpt-image-1", "three")
    assert len(exporter.get_finished_spans()) == 4


def test_a_blocking_client_can_be_instrumented(exporter: InMemorySpanExporter) -> None:
    """instrument(BlockingClient(...)) traces it (it raised AttributeError) and returns it."""
    with sandbox_in_thread() as server:
        client = BlockingClient(api_key=DEFAULT_API_KEY, base_url=server.base_url)
        with instrument(client, tracer_provider=provider_for(exporter)) as traced:
            assert traced is client
            traced.generate("gpt-image-1", "a cat")
            uninstrument(traced)
            traced.generate("gpt-image-1", "a dog")
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == ["POST", "generate_content gpt-image-1"]
