"""Notebook display under attack: the HTML a notebook renders for an image or a result never
lets a caption or a type name out of its attribute.
"""

from __future__ import annotations

import html.parser
import io
import struct
import zlib

import pytest
from PIL import Image

from aihubmix_async import GeneratedImage, ImageResult


class Tags(html.parser.HTMLParser):
    """The start tags and attributes of an HTML fragment, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(fragment)
    parser.close()
    return parser.tags


def webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, "WEBP")
    return buffer.getvalue()


def test_a_hostile_type_name_or_model_stays_inside_its_attribute() -> None:
    hostile = 'image/webp" onerror="alert(1)'
    image = GeneratedImage(data=webp(), mime_type=hostile)
    shown = image._repr_html_()
    assert shown is not None
    (_, (tag, attrs)) = tags(shown)[:2]
    assert tag == "img"
    assert set(attrs) == {"src", "style", "alt"}  # no onerror: the quote did not break out
    assert (attrs["src"] or "").startswith(f"data:{hostile};base64,")

    model = '"><script>alert(1)</script><img src=x onerror=alert(2) alt="'
    result = ImageResult(
        model=model, images=(GeneratedImage(data=webp(), mime_type="image/webp"),) * 2
    )
    shown = result._repr_html_()
    assert shown is not None
    found = tags(shown)
    assert [tag for tag, _ in found] == ["figure", "img", "img", "figcaption"]
    assert all("onerror" not in attrs for _, attrs in found)


def samples() -> list[bytes]:
    found = []
    for fmt, mode, options in (
        ("PNG", "RGB", {}), ("JPEG", "RGB", {"progressive": True}), ("WEBP", "RGB", {}),
        ("WEBP", "RGBA", {}), ("WEBP", "RGB", {"lossless": True}), ("GIF", "RGB", {}),
    ):  # fmt: skip
        buffer = io.BytesIO()
        Image.new(mode, (21, 13), (1, 2, 3, 4)[: len(mode)]).save(buffer, fmt, **options)
        found.append(buffer.getvalue())
    return found


def test_sizes_of_cut_or_mutated_headers_never_raise_or_loop() -> None:
    """Every prefix of real files and every single-byte change of their first 64 bytes: a
    size or None (held already; kept so).
    """
    for data in samples():
        for n in range(len(data)):
            size = GeneratedImage(data=data[:n], mime_type="image/png").size
            assert size is None or size == (21, 13)
        for at in range(min(64, len(data))):
            for byte in (0x00, 0xFF, 0x80):
                mutated = data[:at] + bytes((byte,)) + data[at + 1 :]
                size = GeneratedImage(data=mutated, mime_type="image/png").size
                assert size is None or all(side >= 0 for side in size)
    # JPEG segments of length 0 and 1 step back onto themselves in a naive walker.
    looping = b"\xff\xd8" + b"\xff\xe0\x00\x00" * 1000 + b"\xff\xe1\x00\x01" * 1000
    assert GeneratedImage(data=looping, mime_type="image/jpeg").size is None


def test_a_bomb_reports_its_claimed_size_and_to_pil_refuses_it_typed() -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    image = GeneratedImage(data=bomb, mime_type="image/png")
    assert (image.width, image.height) == (100_000, 100_000)  # from the header, nothing decoded
    with pytest.raises(Image.DecompressionBombError):
        image.to_pil()
