"""Provenance written into hostile images: cut or malformed files from a server, control
characters and lone surrogates in the text, secrets in the parameters, files that already
carry metadata of their own. Read back with Pillow; pixels compared byte for byte.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from PIL import Image, PngImagePlugin

from aihubmix_async import Client, GeneratedImage
from aihubmix_async._gallery import build_gallery
from aihubmix_async._provenance import XMP_NAMESPACE, embed, provenance_fields

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"
OURS = "{" + XMP_NAMESPACE + "}"


def encoded(fmt: str, mode: str = "RGB", **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (20, 12), (9, 99, 199, 128)[: len(mode)]).save(buffer, fmt, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def our_xmp(packet: bytes | str) -> dict[str, str]:
    """Our fields in an XMP packet, which must be well-formed XML."""
    root = ET.fromstring(packet)  # noqa: S314 - our own file
    for description in root.iter(RDF):
        found = {k.removeprefix(OURS): v for k, v in description.attrib.items() if OURS in k}
        if found:
            return found
    return {}


def segments(jpeg: bytes) -> list[tuple[str, bytes]]:
    """The header segments of a JPEG up to its first non-metadata one: (kind, payload)."""
    found, at = [], 2
    while jpeg[at] == 0xFF and (0xE0 <= jpeg[at + 1] <= 0xEF or jpeg[at + 1] == 0xFE):
        end = at + 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
        payload = jpeg[at + 4 : end]
        kind = "COM" if jpeg[at + 1] == 0xFE else payload.split(b"\x00", 1)[0].decode()
        found.append(({"http://ns.adobe.com/xap/1.0/": "XMP"}.get(kind, kind), payload))
        at = end
    return found


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA").tobytes()


# --- a server sends a cut or malformed image --------------------------------------------------


def cut_and_broken() -> list[bytes]:
    """Every prefix of small real files, and files whose structure lies about itself."""
    samples = [encoded("PNG"), encoded("JPEG"), encoded("WEBP"), encoded("WEBP", "RGBA")]
    cases = [sample[:n] for sample in samples for n in range(len(sample))]
    webp = encoded("WEBP", "RGBA")
    cases += [
        b"\xff\xd8\xff\xe0\x00",  # cut inside the first segment's length
        b"\xff\xd8\xff\xe0\x00\x00\xff\xe0\x00\x01",  # lengths below their own size
        b"RIFF\x00\x00\x00\x00WEBPVP8X",  # a VP8X chunk with no payload
        webp[:16] + b"\xff\xff\xff\x7f" + webp[20:],  # a chunk claiming 2 GB
        b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIHDR" + bytes(40),  # an IHDR claiming 4 GB
    ]
    return cases


def test_embedding_never_raises_on_cut_or_malformed_images() -> None:
    fields = provenance_fields(prompt="p", model="m", request_id="req_1")
    for data in cut_and_broken():
        out = embed(data, fields)
        if out != data:  # written only into a structure that parsed: the image decodes as before
            assert out.startswith(data[:2])


CUT_JPEG = b"\xff\xd8\xff\xe0\x00"  # what a server cut short sends: a JPEG's first bytes


@asynccontextmanager
async def api_answering(
    image: bytes, request_id: Callable[[web.Request], str]
) -> AsyncIterator[str]:
    """An API on loopback answering every generation with ``image`` and the request id
    ``request_id(request)``; yields its base URL.
    """

    async def generate(request: web.Request) -> web.Response:
        await request.read()
        body = {"created": 1, "data": [{"b64_json": base64.b64encode(image).decode()}]}
        return web.json_response(body, headers={"x-request-id": request_id(request)})

    app = web.Application()
    app.router.add_post("/{tail:.*}", generate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def cutting_server() -> AsyncIterator[str]:
    """An API on loopback that answers every generation with a cut JPEG."""
    async with api_answering(CUT_JPEG, lambda _: "req_cut") as url:
        yield url


async def test_a_cut_image_from_the_server_is_saved_as_received(
    cutting_server: str, tmp_path: Path
) -> None:
    """It used to raise struct.error from the provenance writer after the image was paid."""
    async with Client(api_key="sk-test-key", base_url=cutting_server) as client:
        result = await client.generate("gpt-image-1", "a fox")
    path = await result.image.save(tmp_path / "fox.jpg")
    assert path.read_bytes() == CUT_JPEG


async def test_a_cut_image_does_not_stop_a_batch(cutting_server: str, tmp_path: Path) -> None:
    """The batch's writer used to die on it: exit 3, 'journal commit failed', and a rerun
    would pay for the same items again.
    """
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\na kite\n")
    out = tmp_path / "out"
    env = {**os.environ, "AIHUBMIX_API_KEY": "sk-test-key"}
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m",
               "gpt-image-1", "-o", str(out), "--base-url", cutting_server]  # fmt: skip
    with anyio.fail_after(120):  # a hang guard: the server runs on this test's loop
        done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    saved = sorted(out.rglob("*.jpg"))
    assert len(saved) == 2
    assert all(path.read_bytes() == CUT_JPEG for path in saved)


# --- text that is not plain ------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "RGB"), ("WEBP", "RGB"), ("WEBP", "RGBA")])
def test_control_characters_keep_the_xmp_well_formed(fmt: str, mode: str) -> None:
    """A prompt with NUL or ESC (the API takes it) made an XMP packet no XML parser reads."""
    prompt = "nul\x00 bell\x07 esc\x1b tab\t done"
    data = encoded(fmt, mode)
    out = embed(data, provenance_fields(prompt=prompt, model="m", request_id="req_1"))
    found = our_xmp(opened(out).info["xmp"])
    assert found["request_id"] == "req_1"
    assert found["prompt"] == "nul\ufffd bell\ufffd esc\ufffd tab\t done"
    assert pixels(out) == pixels(data)


async def test_png_text_keeps_control_characters_exactly(tmp_path: Path) -> None:
    prompt = "nul\x00 esc\x1b"
    image = GeneratedImage(
        data=encoded("PNG"),
        mime_type="image/png",
        provenance=provenance_fields(prompt=prompt, model="m"),
    )
    path = await image.save(tmp_path / "a.png")
    assert opened(path.read_bytes()).info["prompt"] == prompt


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_lone_surrogates_do_not_stop_a_save(fmt: str, tmp_path: Path) -> None:
    fields = {"prompt": "a \ud800 fox", "model": "m\udcff", "request_id": "req_1"}
    data = encoded(fmt)
    image = GeneratedImage(data=data, mime_type=f"image/{fmt.lower()}", provenance=fields)
    path = await image.save(tmp_path / f"a.{fmt.lower()}")
    written = path.read_bytes()
    assert pixels(written) == pixels(data)
    if fmt == "PNG":
        assert opened(written).info["prompt"] == "a \ufffd fox"
    else:
        assert our_xmp(opened(written).info["xmp"])["prompt"] == "a \ufffd fox"


# --- secrets --------------------------------------------------------------------------------


def test_secrets_in_urls_headers_and_values_never_reach_the_file() -> None:
    params = {
        "image": "HTTP://user:hunter2@cdn.test/ref.png?sig=s3cr3t#frag",
        "mask": "s3://bucket/mask.png?X-Amz-Signature=s3cr3t",
        "style": "https://[broken/x.png?sig=s3cr3t",
        "port": "https://cdn.test:8443/x.png?token=s3cr3t",
        "extra": [["Authorization", "Bearer sk-hidden"], ["Accept", "image/png"]],
        "note": "Bearer sk-hidden",
        "auth": "sk-hidden", "Cookie": "session=s3cr3t", "passwd": "hunter2",
        "x_signature": "s3cr3t", "seed": 7,
    }  # fmt: skip
    fields = provenance_fields(prompt="p", model="m", params=params)
    written = json.loads(fields["parameters"])
    assert written == {
        "image": "http://cdn.test/ref.png",
        "mask": "s3://bucket/mask.png",
        "style": "<url>",
        "port": "https://cdn.test:8443/x.png",
        "extra": [["Accept", "image/png"]],
        "note": "<secret>",
        "seed": 7,
    }
    for data in (encoded("PNG"), encoded("JPEG"), encoded("WEBP")):
        out = embed(data, fields)
        for secret in (b"hunter2", b"s3cr3t", b"sk-hidden"):
            assert secret not in out


# --- files that carry metadata already ------------------------------------------------------


def test_a_png_text_chunk_of_the_same_name_is_replaced_not_shadowing() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", "THEIRS")
    info.add_itxt("model", "THEIR MODEL")
    info.add_text("Comment", "kept")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG", pnginfo=info)
    data = buffer.getvalue() + b"bytes after IEND"
    out = embed(data, provenance_fields(prompt="OURS", model="ours/m"))
    image = opened(out)
    assert (image.info["prompt"], image.info["model"]) == ("OURS", "ours/m")
    assert image.info["Comment"] == "kept"
    assert out.endswith(b"bytes after IEND")
    assert pixels(out) == pixels(data)


def test_a_jpeg_keeps_exif_first_and_its_xmp_and_comment_do_not_shadow_ours() -> None:
    exif = Image.Exif()
    exif[0x010E] = "their description"
    theirs = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/></rdf:RDF>'
        b"</x:xmpmeta>"
    )
    data = encoded("JPEG", exif=exif, comment=b"THEIR COMMENT", xmp=theirs)
    out = embed(data, provenance_fields(prompt="OURS", model="m", request_id="req_1"))
    image = opened(out)
    assert json.loads(image.info["comment"])["prompt"] == "OURS"
    packet = image.info["xmp"]
    assert our_xmp(packet)["prompt"] == "OURS"
    assert b'dc:format="image/jpeg"' in packet  # theirs kept, in the same packet
    assert out.count(b"http://ns.adobe.com/xap/1.0/\x00") == 1  # one XMP packet
    assert image.getexif()[0x010E] == "their description"
    kinds = [kind for kind, _ in segments(out)]
    assert kinds[:2] == ["JFIF", "Exif"]  # Exif right after JFIF, where readers expect it
    assert sorted(kinds[2:]) == sorted(["XMP", "COM", "COM"])
    assert pixels(out) == pixels(data)


def test_a_webp_with_xmp_of_its_own_shows_ours_too() -> None:
    theirs = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/webp"/></rdf:RDF>'
        b"</x:xmpmeta>"
    )
    data = encoded("WEBP", "RGBA", xmp=theirs)
    out = embed(data, provenance_fields(prompt="OURS", model="m"))
    packet = opened(out).info["xmp"]
    assert our_xmp(packet)["prompt"] == "OURS"
    assert b'dc:format="image/webp"' in packet
    assert out.count(b"XMP ") == 1
    assert pixels(out) == pixels(data)


def test_an_animated_webp_keeps_every_frame() -> None:
    frames = [Image.new("RGB", (8, 8), (60 * i, 9, 9)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=40)
    data = buffer.getvalue()
    out = embed(data, provenance_fields(prompt="OURS", model="m"))
    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(out)) as after:
        assert getattr(after, "n_frames", 1) == 3
        assert our_xmp(after.info["xmp"])["prompt"] == "OURS"
        for frame in range(3):
            before.seek(frame)
            after.seek(frame)
            assert after.convert("RGBA").tobytes() == before.convert("RGBA").tobytes()


# --- a server echoing the key -------------------------------------------------------------------


KEY = "sk-live-0123456789abcdefABCDEF"


@pytest.fixture
async def echoing_server() -> AsyncIterator[str]:
    """An API on loopback that answers with the request's Authorization header as its
    request id (an echo a proxy or debug build may well do).
    """

    def echo(request: web.Request) -> str:
        return request.headers.get("Authorization", "")

    async with api_answering(encoded("PNG"), echo) as url:
        yield url


async def test_an_echoed_authorization_header_never_reaches_the_file(
    echoing_server: str, tmp_path: Path
) -> None:
    async with Client(api_key=KEY, base_url=echoing_server) as client:
        result = await client.generate("gpt-image-1", "a fox")
    path = await result.image.save(tmp_path / "fox.png")
    assert KEY.encode() not in path.read_bytes()
    assert opened(path.read_bytes()).info["request_id"] == "<secret>"
    for echoed in (KEY, f"Basic {KEY}", f"token {KEY}"):
        fields = provenance_fields(prompt="p", model="m", request_id=echoed, task_id=echoed)
        assert KEY not in json.dumps(fields)


def test_the_gallery_page_never_shows_an_echoed_key(tmp_path: Path) -> None:
    """The batch's metadata keeps the request id as the server sent it; the page does not."""
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    row = {"file_name": "a.png", "request_id": f"Bearer {KEY}", "task_id": KEY}
    (tmp_path / "metadata.jsonl").write_text(json.dumps(row) + "\n")
    failed = {"id": "x", "request_id": KEY, "message": "denied"}
    (tmp_path / "errors.jsonl").write_text(json.dumps(failed) + "\n")
    build_gallery(tmp_path)
    assert KEY not in (tmp_path / ".gallery" / "data.js").read_text()
