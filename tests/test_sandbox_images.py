"""The sandbox draws a picture per prompt, seed and index, at the size asked for."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from aihubmix_async import Client
from aihubmix_async.sandbox._images import (
    MAX_SIDE,
    ImageSpec,
    colours,
    image_for,
    spec_for,
)


def pixels(data: bytes | None) -> tuple[tuple[int, int], tuple[int, ...], tuple[int, ...]]:
    """Size, top-left and bottom-right pixel of an image, decoded with Pillow."""
    assert data is not None
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        w, h = rgb.size
        return (w, h), rgb.getpixel((0, 0)), rgb.getpixel((w - 1, h - 1))  # type: ignore[return-value]


def near(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 3) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


async def test_prompts_and_seeds_give_different_pictures(client: Client) -> None:
    fox = await client.generate("ideogram/V3", "a fox", seed=1)
    again = await client.generate("ideogram/V3", "a fox", seed=1)
    other_seed = await client.generate("ideogram/V3", "a fox", seed=2)
    other_prompt = await client.generate("ideogram/V3", "a hare", seed=1)
    assert fox.image.data == again.image.data
    assert len({fox.image.data, other_seed.image.data, other_prompt.image.data}) == 3
    size, top, bottom = pixels(fox.image.data)
    assert size == (64, 64)
    assert (top, bottom) == colours("a fox", 1)


async def test_size_and_aspect_ratio_are_honoured(client: Client) -> None:
    wide = await client.generate("imagen-4.0-fast-generate-001", "a dune", aspectRatio="16:9")
    assert (wide.image.width, wide.image.height) == (64, 36)
    sized = await client.generate("FLUX-1.1-pro", "a pier", size="96x40")
    assert sized.image.size == (96, 40)
    assert pixels(sized.image.data)[0] == (96, 40)
    tall = await client.generate("gemini-2.5-flash-image-preview", "a tower", aspect_ratio="9:16")
    assert pixels(tall.image.data)[0] == (36, 64)


async def test_every_image_of_an_answer_differs(client: Client) -> None:
    result = await client.generate("gpt-image-1", "two kites", n=2, output_format="jpeg")
    first, second = result.images
    assert first.mime_type == second.mime_type == "image/jpeg"
    assert first.data != second.data
    for index, image in enumerate(result.images):
        _, top, bottom = pixels(image.data)
        expected_top, expected_bottom = colours("two kites", None, index)
        assert near(top, expected_top)
        assert near(bottom, expected_bottom)


async def test_downloaded_task_images_carry_prompt_and_size(client: Client) -> None:
    """Task families answer with URLs: the picture travels in the URL's name."""
    result = await client.generate("flux-kontext-max", "a lantern", width=80, height=64, seed=5)
    assert result.image.url is not None
    size, top, _ = pixels(result.image.data)
    assert size == (80, 64)
    assert near(top, colours("a lantern", 5)[0])


@pytest.mark.parametrize("kind", ["png", "jpeg"])
@pytest.mark.parametrize("size", [(1, 1), (1, 2), (9, 17), (37, 5), (130, 66)])
def test_encoders_make_decodable_two_band_images(kind: str, size: tuple[int, int]) -> None:
    spec = ImageSpec((200, 30, 40), (20, 60, 220), *size)
    decoded, top, bottom = pixels(image_for(spec, kind))
    assert decoded == size
    tolerance = 3 if kind == "jpeg" else 0
    assert near(top, spec.top, tolerance)
    if size[1] >= 16:  # the JPEG's bands follow 8-pixel block rows
        assert near(bottom, spec.bottom, tolerance)


def size_of(spec: ImageSpec) -> tuple[int, int]:
    return spec.width, spec.height


def test_sizes_are_read_from_every_family_form() -> None:
    assert size_of(spec_for("p", {"size": "1K"})) == (64, 64)
    assert size_of(spec_for("p", {"size": "300*200"})) == (300, 200)
    assert size_of(spec_for("p", {"size": "99999x2"})) == (MAX_SIDE, 2)
    assert size_of(spec_for("p", {"imageConfig": {"aspectRatio": "4:3"}})) == (64, 48)
    assert size_of(spec_for("p", {"aspect_ratio": "2x1"})) == (64, 32)
    assert spec_for("p", {"parameters": {"seed": 4}}).top == colours("p", 4)[0]


def test_a_malformed_download_name_gets_the_default_picture() -> None:
    default = ImageSpec.from_token("nothing-here.png")
    assert ImageSpec.from_token("zz-10x10-abc.png") == default
    spec = ImageSpec((1, 2, 3), (4, 5, 6), 7, 8)
    assert ImageSpec.from_token(spec.token() + "-abc.png") == spec
