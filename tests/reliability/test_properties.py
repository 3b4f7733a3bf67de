"""Property-based: parsers and validators fail only with the SDK's typed errors."""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aihubmix_async import InvalidRequestError, ResponseFormatError
from aihubmix_async.providers import BUILTIN_ADAPTERS, Adapter, Parsed, TaskState
from aihubmix_async.providers.flux import FluxAsyncAdapter

KEYS = [
    "output",
    "data",
    "result",
    "b64_json",
    "bytesBase64",
    "mimeType",
    "url",
    "urls",
    "image",
    "images",
    "files",
    "uri",
    "sample",
    "usage",
    "input_tokens",
    "taskId",
    "task_id",
    "polling_url",
    "status",
    "state",
    "message",
    "error",
    "id",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "iVBORw0KGgo=",
            "https://cdn.test/a.png",
            "data:image/png;base64,AAAA",
            "Ready",
            "Content Moderated",
            "failed",
            "data:",
            "://",
            "",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
BUILTINS: list[Adapter] = [a for a in BUILTIN_ADAPTERS if isinstance(a, Adapter)]
ADAPTERS = st.sampled_from(BUILTINS)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(adapter=ADAPTERS, body=JSON)
def test_parsers_raise_only_response_format_error(adapter: Any, body: Any) -> None:
    """Any JSON body either parses or raises ResponseFormatError, for every family."""
    try:
        parsed = adapter.parse(body)
    except ResponseFormatError:
        return
    assert isinstance(parsed, Parsed)
    assert parsed.images or parsed.task_id


@FAST
@given(body=JSON)
def test_task_status_parser_raises_only_response_format_error(body: Any) -> None:
    """Any poll body maps to a task state or ResponseFormatError."""
    try:
        state = FluxAsyncAdapter().parse_task(body)
    except ResponseFormatError:
        return
    assert isinstance(state, TaskState)


PARAM_VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=3)
    | st.dictionaries(st.text(max_size=5), SCALARS, max_size=2)
)


@st.composite
def param_dicts(draw: st.DrawFn) -> tuple[Any, str, dict[str, Any]]:
    adapter = draw(ADAPTERS)
    spec = draw(st.sampled_from(adapter.models))
    fields = [f.name for f in attrs.fields(adapter.params_for(spec.path))]
    names = (
        st.sampled_from(fields)
        | st.sampled_from(fields)
        | st.sampled_from(fields)
        | st.text(max_size=8)
    )
    params = draw(st.dictionaries(names, PARAM_VALUES, max_size=3))
    return adapter, spec.path, params


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=param_dicts(), prompt=st.just("a cat") | st.text(max_size=30) | st.none() | st.integers()
)
def test_validators_give_invalid_request_or_a_valid_request(
    case: tuple[Any, str, dict[str, Any]], prompt: Any
) -> None:
    """Arbitrary parameter dicts give InvalidRequestError or a JSON-serialisable request."""
    adapter, path, params = case
    try:
        request = adapter.build_request(path, prompt, params)
    except InvalidRequestError as exc:
        message = exc.message
    else:
        json.dumps(request.json, allow_nan=False)
        assert request.method == "POST"
        return
    assert message  # every refusal says why


def test_non_finite_numbers_are_refused_for_every_numeric_parameter() -> None:
    """NaN and infinities are refused wherever a number is taken (they are not JSON)."""
    checked = 0
    for adapter, path in ((a, m.path) for a in BUILTINS for m in a.models):
        for field in attrs.fields(adapter.params_for(path)):
            info = field.metadata.get("aihubmix_param")
            if info is None or info.kind not in (int, float):
                continue
            for value in (float("nan"), float("inf"), float("-inf")):
                try:
                    adapter.build_request(path, "a cat", {field.name: value})
                except InvalidRequestError:
                    checked += 1
                    continue
                raise AssertionError(f"{path}: {field.name}={value} was accepted")
    assert checked > 30
