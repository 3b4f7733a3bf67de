"""OpenTelemetry tracing for a :class:`~aihubmix_async.Client` (the ``otel`` extra).

.. code-block:: python

    from aihubmix_async import Client
    from aihubmix_async.otel import instrument

    client = instrument(Client())  # the global tracer provider, or tracer_provider=...

Every generation (a ``generate`` call or a batch item) becomes a span named
``generate_content {model}`` with the GenAI semantic-convention attributes that apply to image
generation (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.output.type``, ``gen_ai.usage.*``).
Every HTTP attempt under it (submit, polls, downloads, retries included) is a child span
named by its method with the HTTP client attributes (``http.request.method``, ``url.full``
without its query string, ``server.address``, ``http.response.status_code``,
``http.request.resend_count``). A failure sets ``error.type``, records the exception and marks
the span ERROR. Prompts are never recorded (they may be private), nor the key. Every text
recorded is bounded (:data:`MAX_TEXT` characters; an exception's stack trace
:data:`MAX_STACKTRACE`, its own frames only), however large the model name, item id, URL or
server message: a hostile answer cannot bloat the trace pipeline.

Importing this module imports OpenTelemetry; the core package never does.

.. versionadded:: Unreleased
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import urlsplit

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "aihubmix_async.otel needs OpenTelemetry: pip install 'aihubmix-async[otel]'"
    ) from exc

from ._blocking import BlockingClient
from ._client import Client
from ._generation import Generator
from ._models import CallStats, ImageResult, RequestEvent, ResponseEvent

__all__ = ["MAX_STACKTRACE", "MAX_TEXT", "OPERATION", "PROVIDER", "instrument", "uninstrument"]

#: ``gen_ai.operation.name``: the semantic conventions' name for multimodal generation.
OPERATION = "generate_content"
#: ``gen_ai.provider.name``: the API every model here is reached through.
PROVIDER = "aihubmix"

#: Characters kept of any text recorded on a span (its name, attributes, exception message).
MAX_TEXT = 1024
#: Characters kept of an exception's stack trace (its last ones: where it was raised).
MAX_STACKTRACE = 4096

_SCOPE = "aihubmix_async"
_C = TypeVar("_C", Client, BlockingClient)
#: The HTTP attempt spans opened under the current generation span and not ended yet.
_open_attempts: ContextVar[list[Span] | None] = ContextVar("aihubmix_open_attempts", default=None)


def instrument(client: _C, *, tracer_provider: TracerProvider | None = None) -> _C:
    """Trace ``client``'s generations and HTTP attempts (a :class:`Client` or a
    :class:`BlockingClient`); returns the client.

    Call it once, before the client's first generation or batch. ``tracer_provider`` defaults
    to the global one (``opentelemetry.trace.set_tracer_provider``). Calling it again on an
    instrumented client changes nothing (no doubled spans); :func:`uninstrument` first to
    trace with another provider.
    """
    generator = _generator_of(client)
    if getattr(generator, "_otel_instrumented", False):
        return client
    from . import __version__  # noqa: PLC0415 - the package imports its modules first

    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
    generator._exchange.trace_with(_AttemptSpans(tracer))  # noqa: SLF001
    _trace_generations(generator, tracer)
    return client


def uninstrument(client: _C) -> _C:
    """Stop tracing ``client`` (generations that start later make no spans); returns it."""
    generator = _generator_of(client)
    if getattr(generator, "_otel_instrumented", False):
        generator._exchange.trace_with(None)  # noqa: SLF001
        del generator.generate  # the instance's traced wrapper: the class's method again
        generator._otel_instrumented = False  # type: ignore[attr-defined]  # noqa: SLF001
    return client


def _generator_of(client: Client | BlockingClient) -> Generator:
    inner = client._client if isinstance(client, BlockingClient) else client  # noqa: SLF001
    return inner._generator  # noqa: SLF001 - the package's own seam


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}\u2026"


def _record(span: Span, exc: BaseException) -> None:
    """``span.record_exception`` with bounded texts: a 1 MB server message stays out."""
    message = _cut(str(exc))
    frames = "".join(traceback.format_tb(exc.__traceback__))
    stack = f"Traceback (most recent call last):\n{frames}{type(exc).__qualname__}: {message}"
    if len(stack) > MAX_STACKTRACE:
        stack = f"\u2026{stack[-(MAX_STACKTRACE - 1) :]}"
    module = type(exc).__module__
    span.add_event(
        "exception",
        {
            "exception.type": f"{module}.{type(exc).__qualname__}",
            "exception.message": message,
            "exception.stacktrace": stack,
            "exception.escaped": "False",
        },
    )


def _trace_generations(generator: Generator, tracer: Tracer) -> None:
    """Wrap the generator's one entry point (``Client.generate`` and every batch item call
    it) in a generation span that is current while the attempts run.
    """
    untraced = generator.generate

    async def generate(
        model: str,
        prompt: str,
        params: Mapping[str, object],
        download: bool,  # noqa: FBT001
        deadline: float | None,
        stats: CallStats,
        **options: Any,
    ) -> ImageResult:
        attributes = _request_attributes(model, params, stats)
        with tracer.start_as_current_span(
            f"{OPERATION} {_cut(model, 200)}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            attempts: list[Span] = []
            token = _open_attempts.set(attempts)
            try:
                result = await untraced(model, prompt, params, download, deadline, stats, **options)
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                _open_attempts.reset(token)
                for attempt in attempts:  # cancelled mid-request: the answer never came
                    attempt.set_attribute("error.type", "cancelled")
                    attempt.set_status(Status(StatusCode.ERROR, "cancelled"))
                    attempt.end()
            _succeeded(span, result, stats)
            return result

    generator.generate = generate  # type: ignore[method-assign]
    generator._otel_instrumented = True  # type: ignore[attr-defined]  # noqa: SLF001


def _request_attributes(
    model: str, params: Mapping[str, object], stats: CallStats
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": _cut(model),
        "gen_ai.output.type": "image",
        "aihubmix.call_id": stats.call_id,
    }
    seed = params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        attributes["gen_ai.request.seed"] = seed
    count = params.get("n")
    if isinstance(count, int) and not isinstance(count, bool):
        attributes["gen_ai.request.choice.count"] = count
    if stats.item_index is not None:
        attributes["aihubmix.batch.item_index"] = stats.item_index
    if stats.item_id is not None:
        attributes["aihubmix.batch.item_id"] = _cut(stats.item_id)
    return attributes


def _succeeded(span: Span, result: ImageResult, stats: CallStats) -> None:
    span.set_attribute("gen_ai.response.model", _cut(result.model))
    if result.request_id:
        span.set_attribute("gen_ai.response.id", _cut(result.request_id))
    if result.task_id:
        span.set_attribute("aihubmix.task_id", _cut(result.task_id))
    span.set_attribute("aihubmix.images", len(result.images))
    span.set_attribute("aihubmix.attempts", stats.attempts)
    usage = result.usage
    if usage is not None:
        for name in ("input_tokens", "output_tokens"):
            value = getattr(usage, name)
            if value is not None:
                span.set_attribute(f"gen_ai.usage.{name}", value)


def _failed(span: Span, exc: BaseException) -> None:
    kind = "cancelled" if not isinstance(exc, Exception) else type(exc).__name__
    span.set_attribute("error.type", kind)
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str) and request_id:
        span.set_attribute("gen_ai.response.id", _cut(request_id))
    if isinstance(exc, Exception):
        _record(span, exc)
    span.set_status(Status(StatusCode.ERROR, kind))


class _AttemptSpans:
    """The exchange's :class:`~aihubmix_async._exchange.AttemptTracer`: a CLIENT span per HTTP
    attempt, a child of the current generation span.
    """

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start(self, event: RequestEvent) -> object:
        parts = urlsplit(event.url)
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            # scheme, host and path: signed query strings left out
            "url.full": _cut(event.url),
            "server.address": _cut(parts.hostname or ""),
            "aihubmix.phase": event.phase,
            "aihubmix.call_id": event.call_id,
            "gen_ai.request.model": _cut(event.model),
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        span = self._tracer.start_span(event.method, kind=SpanKind.CLIENT, attributes=attributes)
        attempts = _open_attempts.get()
        if attempts is not None:
            attempts.append(span)
        return span

    def end(self, span: object, event: ResponseEvent) -> None:
        assert isinstance(span, Span)  # noqa: S101 - start() made it
        attempts = _open_attempts.get()
        if attempts is not None and span in attempts:
            attempts.remove(span)
        if event.status is not None:
            span.set_attribute("http.response.status_code", event.status)
        if event.request_id:
            span.set_attribute("aihubmix.request_id", _cut(event.request_id))
        if event.error is not None:
            kind = type(event.error).__name__
            span.set_attribute("error.type", kind)
            _record(span, event.error)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()
