"""OpenTelemetry: a span per generation, a child span per HTTP attempt, errors recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aihubmix_async import BadRequestError, Client, ImageRequest, RequestTimeout
from aihubmix_async.otel import instrument
from aihubmix_async.sandbox import Sandbox

from .support import collect, make_client


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def traced(sandbox: Sandbox, exporter: InMemorySpanExporter, **options: object) -> Client:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return instrument(make_client(sandbox, **options), tracer_provider=provider)


def split(spans: tuple[ReadableSpan, ...]) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """(generation spans, HTTP attempt spans)."""
    generations = [s for s in spans if s.name.startswith("generate_content ")]
    return generations, [s for s in spans if s not in generations]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def test_a_retried_generation_has_one_span_per_attempt_under_it(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """503 then 200: two POST spans, children of one generation span with GenAI attributes."""
    sandbox.fail("status", status=503, route="submit")
    async with traced(sandbox, exporter) as client:
        result = await client.generate("gpt-image-1", "a private prompt", n=1)
    generations, attempts = split(exporter.get_finished_spans())
    assert len(generations) == 1
    generation = generations[0]
    assert generation.kind is SpanKind.CLIENT
    attrs = dict(generation.attributes or {})
    assert attrs["gen_ai.operation.name"] == "generate_content"
    assert attrs["gen_ai.provider.name"] == "aihubmix"
    assert attrs["gen_ai.request.model"] == "gpt-image-1"
    assert attrs["gen_ai.response.model"] == result.model
    assert attrs["gen_ai.response.id"] == result.request_id
    assert attrs["gen_ai.output.type"] == "image"
    assert attrs["gen_ai.request.choice.count"] == 1
    assert result.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert generation.status.status_code is StatusCode.UNSET

    assert [s.name for s in attempts] == ["POST", "POST"]
    assert all(parent_of(s) == span_id(generation) for s in attempts)
    assert len({s.context.trace_id for s in [generation, *attempts] if s.context}) == 1
    failed, succeeded = attempts
    assert failed.attributes is not None
    assert succeeded.attributes is not None
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "ServerError"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert succeeded.attributes["http.response.status_code"] == 200
    assert succeeded.attributes["http.request.resend_count"] == 1
    assert "http.request.resend_count" not in failed.attributes
    assert "?" not in str(succeeded.attributes["url.full"])
    everything = [str(v) for s in exporter.get_finished_spans() for v in s.attributes.values()]  # type: ignore[union-attr]
    assert not any("private prompt" in v for v in everything)


async def test_a_task_generation_traces_submit_polls_and_download(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """Every request of a task-style generation (submit, polls, download) is a child span."""
    async with traced(sandbox, exporter) as client:
        await client.generate("flux-kontext-max", "a fox")
    generations, attempts = split(exporter.get_finished_spans())
    assert len(generations) == 1
    assert len(attempts) == sandbox.stats.requests
    assert all(parent_of(s) == span_id(generations[0]) for s in attempts)
    phases = [s.attributes["aihubmix.phase"] for s in attempts]  # type: ignore[index]
    assert phases[0] == "submit"
    assert "poll" in phases
    assert phases[-1] == "download"


async def test_a_failed_generation_is_an_error_span_with_its_type(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """A 400 (not retried): the generation span and its attempt are ERROR with error.type."""
    sandbox.fail("status", status=400, route="submit", message="bad size")
    async with traced(sandbox, exporter) as client:
        with pytest.raises(BadRequestError):
            await client.generate("gpt-image-1", "a cat")
    generations, attempts = split(exporter.get_finished_spans())
    (generation,) = generations
    (attempt,) = attempts
    for span in (generation, attempt):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "BadRequestError"
        assert [e.name for e in span.events] == ["exception"]
    assert "bad size" in str(generation.events[0].attributes)


async def test_a_request_cut_off_by_the_deadline_still_ends_its_span(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """A deadline cancels the request in flight: its span ends as cancelled, none is lost."""
    sandbox.fail("delay", delay=3.0, route="submit")
    async with traced(sandbox, exporter) as client:
        with pytest.raises(RequestTimeout):
            await client.generate("gpt-image-1", "a cat", deadline=0.2)
    generations, attempts = split(exporter.get_finished_spans())
    (attempt,) = attempts
    assert attempt.attributes is not None
    assert attempt.attributes["error.type"] == "cancelled"
    assert generations[0].attributes["error.type"] == "RequestTimeout"  # type: ignore[index]


async def test_batch_items_are_generation_spans_with_their_own_attempts(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """Each batch item is a generation span naming its item; attempts nest under their item."""
    items = [ImageRequest(prompt=f"fox {i}", id=f"item-{i}") for i in range(3)]
    client = traced(sandbox, exporter)
    instrument(client)  # a second call changes nothing (no doubled spans)
    async with client, client.batch(items, model="flux-kontext-max", concurrency=3) as batch:
        assert all(o.ok for o in await collect(batch))
    generations, attempts = split(exporter.get_finished_spans())
    by_id = {span_id(g): str(g.attributes["aihubmix.batch.item_id"]) for g in generations}  # type: ignore[index]
    assert sorted(by_id.values()) == ["item-0", "item-1", "item-2"]
    assert len(attempts) == sandbox.stats.requests
    for attempt in attempts:
        parent = parent_of(attempt)
        assert parent in by_id
        generation = next(g for g in generations if span_id(g) == parent)
        assert attempt.attributes["aihubmix.call_id"] == generation.attributes["aihubmix.call_id"]  # type: ignore[index]
