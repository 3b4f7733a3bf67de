"""Fidelity with the documented examples (issue 11, items 7-10), end to end through
``Client.generate`` against the sandbox, or a small server on loopback answering in the one
documented form the sandbox does not use by default.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

import aihubmix_async as ah
from aihubmix_async import Client, ImageInput
from aihubmix_async.providers.flux import FluxAsyncAdapter
from aihubmix_async.sandbox import Sandbox
from aihubmix_async.sandbox._images import jpeg, png, png_of_size

from ..support import decode_image

PNG = png(8, 8)
PNG_B64 = base64.b64encode(PNG).decode()
BIG_PNG_B64 = base64.b64encode(png_of_size(4096)).decode()


# --- item 7: refer_image "" ---------------------------------------------------------------------


async def test_documented_empty_reference_image_reaches_the_server(
    client: Client, sandbox: Sandbox
) -> None:
    """The Qwen-Image and iRAG curl examples send ``"refer_image": ""``: the call succeeds and
    the server sees the empty string as written (not dropped, not read as a file path).
    """
    for model in ("qianfan/qwen-image", "qianfan/irag-1.0"):
        result = await client.generate(model, "A beautiful sunset", refer_image="", n=1)
        assert len(result.images) == 1
    assert sandbox.stats.image_inputs == {"refer_image:empty": 2}
    assert [e.kind for e in sandbox.events].count("submit") == 2


# --- item 8: Flux aspect_ratio from 21:9 to 9:21 -------------------------------------------------


@pytest.mark.parametrize("ratio", ["2:1", "7:3", "5:4", "21:9", "9:21", "1:2", "4:5", "16:9"])
async def test_flux_accepts_any_ratio_in_the_documented_range(
    client: Client, sandbox: Sandbox, ratio: str
) -> None:
    """The docs allow any aspect_ratio from 21:9 to 9:21, not only nine presets."""
    result = await client.generate("flux-kontext-max", "a deer", aspect_ratio=ratio)
    assert result.images
    assert sandbox.stats.submits == 1


@pytest.mark.parametrize(
    ("ratio", "message"),
    [
        ("3:1", "between 21:9 and 9:21"),
        ("1:3", "between 21:9 and 9:21"),
        ("22:9", "between 21:9 and 9:21"),
        ("0:1", "W:H with positive whole numbers"),
        ("1:0", "W:H with positive whole numbers"),
        ("a:b", "W:H with positive whole numbers"),
        ("16x9", "W:H with positive whole numbers"),
        ("1.5:1", "W:H with positive whole numbers"),
        ("", "W:H with positive whole numbers"),
    ],
)
async def test_flux_refuses_ratios_outside_the_range_before_sending(
    client: Client, sandbox: Sandbox, ratio: str, message: str
) -> None:
    """Out-of-range or malformed ratios are a clear InvalidRequestError naming the field, for
    kontext and flux-2 alike; nothing reaches the server.
    """
    for model in ("flux-kontext-max", "flux-2-pro"):
        with pytest.raises(ah.InvalidRequestError, match=message) as caught:
            await client.generate(model, "a deer", aspect_ratio=ratio)
        assert caught.value.field == "aspect_ratio"
        assert repr(ratio) in str(caught.value)
    assert sandbox.stats.requests == 0


@given(st.integers(1, 9999), st.integers(1, 9999))
def test_flux_ratio_rule_is_exactly_the_documented_range(width: int, height: int) -> None:
    """Every whole W:H is accepted exactly when 9/21 <= W/H <= 21/9, and sent as written."""
    ratio = f"{width}:{height}"
    adapter = FluxAsyncAdapter()
    if Fraction(9, 21) <= Fraction(width, height) <= Fraction(21, 9):
        request = adapter.build_request("bfl/flux-kontext-max", "x", {"aspect_ratio": ratio})
        assert request.json == {"input": {"prompt": "x", "aspect_ratio": ratio}}
    else:
        with pytest.raises(ah.InvalidRequestError, match="between 21:9 and 9:21"):
            adapter.build_request("bfl/flux-kontext-max", "x", {"aspect_ratio": ratio})


# --- item 9: Flux input_image as bare base64 -----------------------------------------------------


async def test_flux_input_image_bare_base64_is_sent_as_base64(
    client: Client, sandbox: Sandbox
) -> None:
    """The docs allow input_image as base64: a bare base64 string (also wrapped at 76 columns,
    as ``base64`` tools write it; PNG or JPEG) is an image, not a file path.
    """
    wrapped = "\n".join(textwrap.wrap(PNG_B64, 76))
    jpeg_b64 = base64.b64encode(jpeg()).decode()
    for value in (PNG_B64, wrapped, jpeg_b64):
        result = await client.generate(
            "flux-kontext-max", "edit", input_image=value, safety_tolerance=2
        )
        assert result.images
    assert sandbox.stats.image_inputs == {"input_image:base64": 3}


@given(st.sampled_from([PNG, jpeg(), png(3, 5)]), st.integers(0, 120))
def test_bare_base64_of_any_image_decodes_to_its_bytes(image: bytes, width: int) -> None:
    """Base64 of an image, with or without line breaks at any width, is that image."""
    text = base64.b64encode(image).decode()
    if width:
        text = "\n".join(textwrap.wrap(text, width))
    assert ImageInput.of(text).data == image


async def test_bare_base64_goes_to_data_uri_families_too(client: Client, sandbox: Sandbox) -> None:
    """The same rule holds for every family: Qwen's edit model gets a data: URI of the bytes."""
    assert (await client.generate("qwen-image-edit", "edit", image=PNG_B64)).images
    assert sandbox.stats.image_inputs == {"image:data_uri": 1}


async def test_paths_still_read_and_missing_paths_say_so(
    client: Client, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative or absolute path is read as a file; a short path-like string that does not
    exist, even one made only of base64 letters, is a clear "file not found" error.
    """
    (tmp_path / "in.png").write_bytes(PNG)
    monkeypatch.chdir(tmp_path)
    for value in ("in.png", str(tmp_path / "in.png")):
        assert (await client.generate("flux-kontext-max", "x", input_image=value)).images
    assert sandbox.stats.image_inputs == {"input_image:base64": 2}
    for missing in ("cat.png", "photo", "images/photo1234", "abcd" * 8):
        with pytest.raises(ah.InvalidRequestError, match="No such file or directory") as caught:
            await client.generate("flux-kontext-max", "x", input_image=missing)
        assert repr(missing) in str(caught.value)
    assert sandbox.stats.submits == 2


async def test_base64_of_a_non_image_is_refused_without_quoting_it(
    client: Client, sandbox: Sandbox
) -> None:
    """Long base64 that does not decode to an image is refused; the message quotes only the
    start of the value, never the whole blob.
    """
    blob = base64.b64encode(b"<html>" + b"x" * 6000).decode()
    with pytest.raises(ah.InvalidRequestError, match="neither a file path nor base64") as caught:
        await client.generate("flux-kontext-max", "x", input_image=blob)
    assert len(str(caught.value)) < 300
    assert sandbox.stats.requests == 0


# --- item 10: Imagen's native predictions[].bytesBase64Encoded -----------------------------------


NATIVE = [
    {"bytesBase64Encoded": BIG_PNG_B64, "mimeType": "image/png"},
    {"mimeType": "image/jpeg", "bytesBase64Encoded": base64.b64encode(jpeg()).decode()},
]
FILTERED = "Your current safety filter threshold filtered out 2 generated images."


@pytest.fixture
async def native_imagen() -> AsyncIterator[tuple[str, list[Any]]]:
    """A server answering Imagen calls in Google's native form (every image filtered when the
    prompt says "filtered"); records the request bodies.
    """
    seen: list[Any] = []

    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if body["input"]["prompt"] == "filtered":
            answer: list[Any] = [{"raiFilteredReason": FILTERED}]
            return web.json_response({"predictions": answer}, headers={"X-Request-Id": "req_f"})
        return web.json_response({"predictions": NATIVE})

    app = web.Application()
    app.router.add_post("/v1/models/google/{model}/predictions", predict)
    async with TestServer(app, host="127.0.0.1") as server:  # a real listener on loopback
        yield str(server.make_url("")).rstrip("/"), seen


async def test_imagen_native_predictions_form_is_read(
    native_imagen: tuple[str, list[Any]],
) -> None:
    """``predictions[].bytesBase64Encoded`` (+ ``mimeType``) yields the images, in order, with
    their types; the raw body keeps a marker instead of the base64 text.
    """
    base_url, seen = native_imagen
    async with Client(api_key="sk-test", base_url=base_url) as client:
        result = await client.generate("imagen-4.0-generate-001", "a lighthouse", numberOfImages=2)
    assert seen == [{"input": {"prompt": "a lighthouse", "numberOfImages": 2}}]
    assert [decode_image(image.data)[0] for image in result.images] == ["PNG", "JPEG"]
    assert [image.mime_type for image in result.images] == ["image/png", "image/jpeg"]
    assert BIG_PNG_B64 not in str(result.raw)


async def test_imagen_native_form_all_filtered_says_why(
    native_imagen: tuple[str, list[Any]],
) -> None:
    """When Google filtered every image the error carries its raiFilteredReason and the request
    id, instead of a bare "no image".
    """
    base_url, _ = native_imagen
    async with Client(api_key="sk-test", base_url=base_url) as client:
        with pytest.raises(ah.ResponseFormatError, match="filtered: Your current safety") as caught:
            await client.generate("imagen-4.0-generate-001", "filtered")
    assert caught.value.request_id == "req_f"
