"""Image inputs: every accepted form reaches the sandbox in the shape its family expects."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import pytest

import aihubmix_async as ah
from aihubmix_async import Client, ImageInput, RequestEvent, ResponseEvent
from aihubmix_async.sandbox import Sandbox
from aihubmix_async.sandbox._images import jpeg, png

from .conftest import make_client

PNG = png(8, 8)
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()

# family model, its image parameter, and the form local bytes must take on the wire
FAMILIES = [
    ("gpt-image-1", "image", "multipart"),  # local files go to /v1/images/edits
    ("flux-kontext-max", "input_image", "base64"),
    ("qwen-image-edit", "image", "data_uri"),
    ("ernie-irag-edit", "image", "data_uri"),
    ("doubao-seedream-4-0", "image", "data_uri"),
    ("irag-1.0", "refer_image", "data_uri"),
]


def forms(tmp_path: Path) -> dict[str, Any]:
    from PIL import Image

    path = tmp_path / "in.png"
    path.write_bytes(PNG)
    return {
        "path": str(path),
        "pathlib": path,
        "bytes": PNG,
        "file": io.BytesIO(PNG),
        "data_uri": DATA_URI,
        "pillow": Image.new("RGB", (4, 4), "red"),
        "image_input": ImageInput(data=jpeg(), mime_type="image/jpeg"),
    }


@pytest.mark.parametrize(("model", "param", "wire"), FAMILIES)
async def test_local_forms_reach_the_family_shape(
    client: Client, sandbox: Sandbox, tmp_path: Path, model: str, param: str, wire: str
) -> None:
    """Path, bytes, file object, data URI, Pillow image: all arrive as the family's encoding."""
    for value in forms(tmp_path).values():
        result = await client.generate(ah.ModelName(model), "edit this", **{param: value})
        assert result.images
    assert sandbox.stats.image_inputs == {f"{param}:{wire}": 7}


async def test_gpt_image_edit_upload(client: Client, sandbox: Sandbox) -> None:
    """A local image for gpt-image is uploaded to /v1/images/edits with its options; the
    edited images and usage come back; a URL stays on the predictions route.
    """
    result = await client.generate(
        "opanai/gpt-image-1",
        "make it blue",
        image=PNG,
        n=2,
        input_fidelity="high",
        size="1024x1024",
    )
    assert len(result.images) == 2
    assert result.usage is not None
    assert sandbox.stats.by_model["edits:gpt-image-1"] == 1
    await client.generate("gpt-image-1", "x", image="https://cdn.example/a.png")
    assert sandbox.stats.image_inputs == {"image:multipart": 1, "image:url": 1}


async def test_urls_pass_through_and_lists_work(client: Client, sandbox: Sandbox) -> None:
    """An https URL is sent as is; Doubao takes a list mixing URLs and local bytes."""
    await client.generate("flux-kontext-pro", "x", input_image="https://cdn.example/a.png")
    await client.generate("doubao-seedream-4-0", "x", image=["https://cdn.example/a.png", PNG])
    assert sandbox.stats.image_inputs == {"input_image:url": 1, "image:url": 1, "image:data_uri": 1}


async def test_bad_inputs_are_refused_before_sending(
    client: Client, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Unsupported types, non-images, oversize files, missing files and an empty ImageInput raise
    InvalidRequestError.
    """
    (tmp_path / "notes.txt").write_text("not an image")
    small = make_client(sandbox, max_input_bytes=1024)
    async with small:
        with pytest.raises(ah.InvalidRequestError, match="larger than 1024"):
            await small.generate("gpt-image-1", "x", image=png(128, 128))
    for bad in (42, str(tmp_path / "notes.txt"), str(tmp_path / "missing.png"), b"plain text",
                io.StringIO("text mode"), ImageInput()):  # fmt: skip
        with pytest.raises(ah.InvalidRequestError):
            await client.generate(ah.ModelName("qwen-image-edit"), "x", image=bad)
    assert sandbox.stats.requests == 0


async def test_family_rules_hold_with_image_inputs(client: Client, sandbox: Sandbox) -> None:
    """gpt-image refuses moderation with an image; Flux caps safety_tolerance at 2 with one."""
    with pytest.raises(ah.InvalidRequestError, match="moderation"):
        await client.generate("gpt-image-1", "x", image=PNG, moderation="low")
    with pytest.raises(ah.InvalidRequestError, match="at most 2"):
        await client.generate("flux-kontext-max", "x", input_image=PNG, safety_tolerance=5)
    assert sandbox.stats.requests == 0


async def test_hooks_and_logging_see_each_attempt(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """on_request/on_response see every attempt with status and request id; logs never the key."""
    requests: list[RequestEvent] = []
    responses: list[ResponseEvent] = []
    sandbox.fail("status", status=503)
    caplog.set_level(logging.DEBUG, logger="aihubmix_async")
    async with make_client(sandbox, on_request=requests.append, on_response=responses.append) as c:
        await c.generate("dall-e-3", "a cat")
    assert [(e.method, e.attempt) for e in requests] == [("POST", 1), ("POST", 2), ("GET", 1)]
    assert [e.status for e in responses] == [503, 200, 200]
    assert isinstance(responses[0].error, ah.ServerError)
    assert all(e.request_id for e in responses)
    assert responses[2].url.startswith(sandbox.cdn_url)
    assert "?" not in responses[2].url
    text = caplog.text
    assert "retrying POST" in text
    assert "request_id=req_" in text
    assert (sandbox.api_key or "unset") not in text


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
async def test_an_endless_file_is_refused_without_reading_it_whole(sandbox: Sandbox) -> None:
    """A path to something that never ends (a device, a FIFO) or a huge file is read only up to
    the input cap, then refused as too large; nothing is sent.
    """
    async with make_client(sandbox, max_input_bytes=1024) as small:
        with pytest.raises(ah.InvalidRequestError, match="larger than 1024"):
            await small.generate("flux-kontext-max", "x", input_image="/dev/zero")
        with pytest.raises(ah.InvalidRequestError, match="larger than 1024"):
            await small.generate("flux-kontext-max", "x", input_image=Path("/dev/zero"))
    assert sandbox.stats.requests == 0
