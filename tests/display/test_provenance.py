"""Saved images carry prompt, model, parameters and request id, read back with Pillow."""

from __future__ import annotations

import io
import json
import os
import stat
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aihubmix_async import Client, GeneratedImage
from aihubmix_async._provenance import XMP_NAMESPACE, embed, provenance_fields
from aihubmix_async.sandbox import DEFAULT_API_KEY

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"


def opened(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def xmp_fields(image: Image.Image) -> dict[str, str]:
    raw = image.info["xmp"]
    root = ET.fromstring(raw)  # noqa: S314 - our own file
    (description,) = root.iter(RDF)
    prefix = "{" + XMP_NAMESPACE + "}"
    return {k.removeprefix(prefix): v for k, v in description.attrib.items() if prefix in k}


def same_pixels(a: bytes, b: Path) -> bool:
    with Image.open(io.BytesIO(a)) as first, Image.open(b) as second:
        return first.tobytes() == second.tobytes()


async def test_png_carries_text_chunks(client: Client, tmp_path: Path) -> None:
    result = await client.generate("gpt-image-1", 'a fox <in> "snow" ü', quality="low")
    path = await result.image.save(tmp_path / "fox.png")
    text = opened(path).info  # Pillow puts PNG text chunks in .info (and .text)
    assert text["prompt"] == 'a fox <in> "snow" ü'
    assert text["model"] == result.model
    assert json.loads(text["parameters"]) == {"quality": "low"}
    assert text["request_id"] == result.request_id
    assert text["software"].startswith("aihubmix-async ")
    assert same_pixels(result.image.data or b"", path)


async def test_jpeg_carries_a_comment_and_xmp(client: Client, tmp_path: Path) -> None:
    result = await client.generate("gpt-image-1", "a lantern", output_format="jpeg")
    path = await result.image.save(tmp_path / "lantern.jpg")
    image = opened(path)
    comment = json.loads(image.info["comment"])
    assert comment["prompt"] == "a lantern"
    assert json.loads(comment["parameters"]) == {"output_format": "jpeg"}
    xmp = xmp_fields(image)
    assert xmp["prompt"] == "a lantern"
    assert xmp["request_id"] == result.request_id
    assert same_pixels(result.image.data or b"", path)


@pytest.mark.parametrize(
    ("mode", "options"),
    [("RGB", {}), ("RGB", {"lossless": True}), ("RGBA", {}), ("RGBA", {"lossless": True})],
)
async def test_webp_carries_xmp_in_a_vp8x_container(
    tmp_path: Path, mode: str, options: dict[str, Any]
) -> None:
    buffer = io.BytesIO()
    Image.new(mode, (30, 17), (10, 200, 30, 90)[: len(mode)]).save(buffer, "WEBP", **options)
    fields = provenance_fields(prompt="a dune", model="m", request_id="req_9")
    image = GeneratedImage(data=buffer.getvalue(), mime_type="image/webp", provenance=fields)
    path = await image.save(tmp_path / "dune.webp")
    written = opened(path)
    assert written.mode == mode
    assert xmp_fields(written)["prompt"] == "a dune"
    assert same_pixels(buffer.getvalue(), path)


async def test_provenance_can_be_turned_off(client: Client, tmp_path: Path) -> None:
    result = await client.generate("ideogram/V3", "a fox")
    path = await result.image.save(tmp_path / "plain.png", provenance=False)
    assert path.read_bytes() == result.image.data
    stripped = result.without_provenance()
    again = await stripped.image.save(tmp_path / "stripped.png")
    assert again.read_bytes() == result.image.data


async def test_secrets_never_reach_the_file(client: Client, tmp_path: Path) -> None:
    """Signed URLs lose their query and credentials, inline images are not copied, and the
    key (or anything named like a secret) is never written.
    """
    signed = "https://user:hunter2@cdn.test/ref.png?X-Amz-Signature=abc123"
    fields = provenance_fields(
        prompt="p", model="m",
        params={"image": signed, "refs": ["data:image/png;base64,AAAA"], "api_key": "sk-live",
                "nested": {"token": "t0k3n", "upload": b"\x89PNG"}},
    )  # fmt: skip
    assert json.loads(fields["parameters"]) == {
        "image": "https://cdn.test/ref.png", "refs": ["<image>"], "nested": {"upload": "<image>"}
    }  # fmt: skip
    result = await client.generate("gpt-image-1", "a fox")
    path = await result.image.save(tmp_path / "fox.png")
    assert DEFAULT_API_KEY.encode() not in path.read_bytes()
    for secret in (b"hunter2", b"abc123", b"sk-live", b"t0k3n"):
        assert secret not in embed(result.image.data or b"", fields)


def test_a_huge_prompt_still_fits_a_jpeg_segment(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "JPEG")
    fields = provenance_fields(prompt="ü" * 100_000, model="m")
    path = tmp_path / "big.jpg"
    path.write_bytes(embed(buffer.getvalue(), fields))
    image = opened(path)
    assert json.loads(image.info["comment"])["prompt"].startswith("üüü")
    assert xmp_fields(image)["model"] == "m"


def test_gif_and_unknown_bytes_are_left_alone() -> None:
    fields = {"prompt": "p"}
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "GIF")
    assert embed(buffer.getvalue(), fields) == buffer.getvalue()
    assert embed(b"plain bytes", fields) == b"plain bytes"
    assert embed(buffer.getvalue(), {}) == buffer.getvalue()


async def test_saved_files_get_the_umask_permissions(client: Client, tmp_path: Path) -> None:
    """Like any other program's output (a temporary file's 0600 used to stay)."""
    umask = os.umask(0o022)
    os.umask(umask)
    result = await client.generate("ideogram/V3", "a fox")
    path = await result.image.save(tmp_path / "fox.png")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_the_dataset_writer_embeds_provenance_unless_told_not_to(tmp_path: Path) -> None:
    """The CLI's batch files carry it; ``--no-provenance`` writes the bytes as they came."""
    from aihubmix_async._cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\n")
    for flag, out in (((), tmp_path / "with"), (("--no-provenance",), tmp_path / "without")):
        code = main(["batch", str(prompts), "-m", "gpt-image-1", "-o", str(out), "--sandbox",
                     "-p", "quality=low", *flag])  # fmt: skip
        assert code == 0
    (with_,) = (tmp_path / "with").rglob("train/*/*.png")  # the image-folder layout
    (without,) = (tmp_path / "without").rglob("train/*/*.png")
    text = opened(with_).info
    assert text["prompt"] == "a fox"
    assert json.loads(text["parameters"]) == {"quality": "low"}
    assert "prompt" not in opened(without).info
    assert same_pixels(without.read_bytes(), with_)


def test_equal_parameter_values_of_other_types_are_written_as_given() -> None:
    """Parameter sets are rendered once and remembered: 1, 1.0 and True are equal as keys but
    each is written as it was given, in whatever order they come.
    """
    for value, text in ((1, "1"), (True, "true"), (1.0, "1.0"), (1, "1"), (False, "false")):
        fields = provenance_fields(prompt="p", model="m", params={"seed": value})
        assert fields["parameters"] == f'{{"seed": {text}}}'
    listed = provenance_fields(prompt="p", model="m", params={"seed": [1, True]})
    assert listed["parameters"] == '{"seed": [1, true]}'


def test_remembered_renderings_stay_small() -> None:
    """Distinct huge parameter sets (inline images, long texts) are rendered, not remembered:
    a bulk run of them must not keep their size in the process.
    """
    big = "x" * 100_000
    tracemalloc.start()
    try:
        for k in range(300):  # 30 MB of distinct parameter values
            fields = provenance_fields(prompt="p", model="m", params={"image": f"data:{k}{big}"})
            assert fields["parameters"] == '{"image": "<image>"}'
            provenance_fields(prompt="p", model="m", params={"note": f"{k}{big[:5000]}"})
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < 2_000_000
