"""Width and height from the header, notebook reprs and to_pil() on generated images."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import pytest
from PIL import Image

from aihubmix_async import Client, GeneratedImage, ImageResult
from aihubmix_async._imageinfo import image_size


def encoded(
    fmt: str, size: tuple[int, int] = (33, 21), mode: str = "RGB", **options: object
) -> bytes:
    buffer = io.BytesIO()
    colour = (42, 157, 143, 128)[: len(mode)]  # translucent with alpha: WebP needs VP8X
    Image.new(mode, size, colour if len(colour) > 1 else 90).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("PNG", "RGB", {}),
        ("JPEG", "RGB", {}),
        ("JPEG", "RGB", {"progressive": True}),
        ("JPEG", "L", {"exif": b"Exif\x00\x00" + b"\x00" * 40}),  # an APP1 before the frame
        ("WEBP", "RGB", {}),  # VP8
        ("WEBP", "RGB", {"lossless": True}),  # VP8L
        ("WEBP", "RGBA", {}),  # VP8X (alpha)
        ("GIF", "RGB", {}),
    ],
)
@pytest.mark.parametrize("size", [(33, 21), (1, 1), (517, 3)])
def test_sizes_are_read_from_the_header(
    fmt: str, mode: str, options: dict[str, object], size: tuple[int, int]
) -> None:
    data = encoded(fmt, size, mode, **options)
    assert image_size(data) == size
    image = GeneratedImage(data=data, mime_type=f"image/{fmt.lower()}")
    assert (image.width, image.height) == size


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0\x00",
        b"\xff\xd8\x00\x00",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"GIF89a\x01",
    ],
)
def test_unknown_or_truncated_headers_have_no_size(data: bytes) -> None:
    assert image_size(data) is None


def test_jpeg_markers_are_walked_like_a_decoder_does() -> None:
    """Fill bytes and standalone markers before the frame header are stepped over."""
    frame = b"\xff\xc0\x00\x11\x08\x00\x15\x00\x21\x03"
    assert image_size(b"\xff\xd8\xff\xff\xff\xd0" + frame) == (33, 21)
    assert image_size(b"\xff\xd8\xff\x01" + frame) == (33, 21)
    assert image_size(b"\xff\xd8" + frame[:7]) is None  # cut inside the frame header
    assert image_size(b"\xff\xd8\x00\x00\x00\x00" + frame) is None  # not a marker


def test_an_undownloaded_image_has_no_size_and_no_picture() -> None:
    image = GeneratedImage(data=None, mime_type="image/png", url="https://cdn.test/x.png")
    assert (image.size, image.width, image.height) == (None, None, None)
    assert image._repr_png_() is None
    assert image._repr_html_() is None
    with pytest.raises(ValueError, match="not downloaded"):
        image.to_pil()


async def test_results_show_as_images_in_notebooks(client: Client) -> None:
    png = await client.generate("ideogram/V3", "a fox")
    assert png._repr_png_() == png.image.data
    assert png._repr_jpeg_() is None
    assert png._repr_html_() is None  # a notebook shows the PNG itself
    jpeg = await client.generate("gpt-image-1", "a fox", output_format="jpeg")
    assert jpeg.image._repr_jpeg_() == jpeg.image.data
    assert jpeg._repr_jpeg_() == jpeg.image.data
    assert jpeg.image._repr_png_() is None
    pair = await client.generate("gpt-image-1", "two foxes", n=2)
    assert pair._repr_png_() is None
    html = pair._repr_html_()
    assert html is not None
    assert html.count("<img ") == 2
    for image in pair.images:
        assert base64.b64encode(image.data or b"").decode() in html


def test_webp_and_gif_show_through_html() -> None:
    data = encoded("WEBP")
    image = GeneratedImage(data=data, mime_type="image/webp")
    assert image._repr_png_() is None
    html = image._repr_html_()
    assert html is not None
    assert f"data:image/webp;base64,{base64.b64encode(data).decode()}" in html
    result = ImageResult(model="m <b>", images=(image,))
    assert "m &lt;b&gt;" in (result._repr_html_() or "")  # captions are escaped


async def test_to_pil_opens_the_image(client: Client) -> None:
    result = await client.generate("FLUX-1.1-pro", "a pier", size="96x40")
    picture = result.image.to_pil()
    assert isinstance(picture, Image.Image)
    assert picture.size == (96, 40)


def test_to_pil_without_pillow_says_how_to_install_it() -> None:
    """In a process where Pillow cannot be imported, the error names the fix."""
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "from aihubmix_async import GeneratedImage\n"
        "from aihubmix_async.sandbox._images import png\n"
        "try:\n"
        "    GeneratedImage(data=png(), mime_type='image/png').to_pil()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install pillow" in ran.stdout
