"""The documented request and response examples (tests/documented/*.json), one file per family:
the adapter builds each documented body from the documented parameters, parses each documented
answer, and the sandbox (built from the same specs) accepts every body the adapter builds and
refuses a wrong wire name the way a server does.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aihubmix_async import InvalidRequestError, Registry
from aihubmix_async.providers import BUILTIN_ADAPTERS, ROUTES, PreparedRequest, TaskStatus
from aihubmix_async.sandbox import Sandbox
from aihubmix_async.sandbox._images import png

DOCUMENTED = Path(__file__).parent / "documented"
FILES = sorted(DOCUMENTED.glob("*.json"))
PNG_B64 = base64.b64encode(png(8, 8)).decode()
REGISTRY = Registry.default()


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    assert data["family"] == path.stem
    return data


def rows(kind: str) -> list[Any]:
    return [
        pytest.param(load(path)["family"], row, id=f"{path.stem}-{i}")
        for path in FILES
        for i, row in enumerate(load(path)[kind])
    ]


def with_png(value: Any) -> Any:
    if value == "<png>":
        return PNG_B64
    if isinstance(value, dict):
        return {k: with_png(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_png(v) for v in value]
    return value


def test_every_family_has_documented_examples() -> None:
    """Adding a family means adding its row of examples; every row names its source."""
    assert {path.stem for path in FILES} == {adapter.name for adapter in BUILTIN_ADAPTERS}
    for path in FILES:
        data = load(path)
        assert data["requests"], path.name
        assert data["responses"], path.name
        for row in data["requests"] + data["responses"]:
            assert row["source"], row
            assert row["status"] in ("documented", "code", "inferred"), row


def build(family: str, row: dict[str, Any]) -> PreparedRequest:
    adapter, path = REGISTRY.resolve(row["model"])
    assert adapter.name == family
    return adapter.build_request(path, row["prompt"], with_png(row["params"]))


@pytest.mark.parametrize(("family", "row"), rows("requests"))
def test_adapter_builds_the_documented_body(family: str, row: dict[str, Any]) -> None:
    """The documented parameters give the documented path, key header and body (or the SDK
    refuses the example, naming the field, where the docs contradict themselves).
    """
    if "error_field" in row:
        with pytest.raises(InvalidRequestError) as caught:
            build(family, row)
        assert caught.value.field == row["error_field"]
        return
    request = build(family, row)
    assert request.path == row["path"]
    assert request.auth == row.get("auth", "bearer")
    assert request.json == with_png(row["body"])


@pytest.mark.parametrize(("family", "row"), rows("responses"))
def test_adapter_parses_the_documented_answer(family: str, row: dict[str, Any]) -> None:
    """Every documented (or inferred) answer parses to its images, task id or task state."""
    adapter = next(a for a in BUILTIN_ADAPTERS if a.name == family)
    body = with_png(row["body"])
    if row.get("kind") == "task":
        state = adapter.parse_task(body)
        assert state.status is TaskStatus(row["task_status"])
        assert len(state.parsed.images) == row.get("images", 0)
        return
    parsed = adapter.parse(body)
    assert parsed.task_id == row.get("task_id")
    assert len(parsed.images) == row.get("images", 0)
    if "total_tokens" in row:
        assert parsed.usage is not None
        assert parsed.usage.total_tokens == row["total_tokens"]


async def send(sandbox: Sandbox, request: PreparedRequest) -> tuple[int, Any, str | None]:
    body, content_type = request.encode()
    key = sandbox.api_key or "any"
    auth = (
        {"x-goog-api-key": key}
        if request.auth == "x-goog-api-key"
        else {"Authorization": f"Bearer {key}"}
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sandbox.base_url + request.path,
            data=body,
            headers={"Content-Type": content_type, **auth},
        ) as response,
    ):
        return response.status, await response.json(), response.headers.get("X-Request-Id")


@pytest.mark.parametrize(("family", "row"), rows("requests"))
async def test_sandbox_accepts_what_the_adapter_builds(
    sandbox: Sandbox, family: str, row: dict[str, Any]
) -> None:
    """The emulator answers every built request, in a shape the same adapter parses."""
    if "error_field" in row:
        return
    adapter, _ = REGISTRY.resolve(row["model"])
    status, answer, _ = await send(sandbox, build(family, row))
    assert status == 200, answer
    parsed = adapter.parse(answer)
    assert parsed.images or parsed.task_id


def with_unknown_field(request: PreparedRequest, route: str) -> tuple[PreparedRequest, str]:
    """The same request with one option the family does not document (a wrong wire name)."""
    body: dict[str, Any] = copy.deepcopy(request.json)
    envelope = ROUTES[route].envelope
    target: dict[str, Any] = body["input"] if envelope == "input" else body
    if envelope == "gemini":
        target = body["generationConfig"]
    target["colour"] = "red"
    param = ROUTES[route].field_prefix + "colour"
    return PreparedRequest(method="POST", path=request.path, json=body, auth=request.auth), param


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
async def test_sandbox_refuses_an_undocumented_field(sandbox: Sandbox, path: Path) -> None:
    """A field the family does not document is a 400 with a server-style error body naming it,
    and a request id, so an adapter that sends a wrong wire name fails its tests.
    """
    data = load(path)
    row = next(r for r in data["requests"] if "error_field" not in r)
    adapter, _ = REGISTRY.resolve(row["model"])
    request, param = with_unknown_field(build(data["family"], row), adapter.route)
    status, answer, request_id = await send(sandbox, request)
    assert status == 400
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["param"] == param
    assert answer["error"]["code"] == "unknown_parameter"
    assert "colour" in answer["error"]["message"]
    assert request_id
    assert sandbox.stats.rejected == 1
    assert [e.kind for e in sandbox.events] == ["submit", "rejected"]
