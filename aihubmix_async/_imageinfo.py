"""Image dimensions read from the file header (PNG, JPEG, WebP, GIF) without an imaging library,
and the helpers behind notebook display.
"""

from __future__ import annotations

import base64
import html
import io
import struct
from typing import Any

__all__ = ["ImageView", "data_uri", "image_size", "images_html", "to_pil"]

# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset((0x01, *range(0xD0, 0xDA)))


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header, or ``None`` when the bytes do not say (unknown
    format, truncated header).
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        at += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def data_uri(data: bytes, mime_type: str) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode()}"


def images_html(images: list[tuple[bytes, str]], caption: str = "") -> str:
    """Inline ``<img>`` tags (data URIs) in a row, with an optional caption (for notebooks)."""
    tags = "".join(  # the type escaped too: a hand-made GeneratedImage can hold any string
        f'<img src="{html.escape(data_uri(data, mime), quote=True)}"'
        f' style="max-width:{100 // max(len(images), 1)}%;'
        f'margin:2px" alt="{html.escape(caption, quote=True)}"/>'
        for data, mime in images
    )
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure style='margin:0'>{tags}{text}</figure>"


def to_pil(data: bytes) -> Any:
    """A ``PIL.Image.Image`` of ``data``; ImportError naming the fix when Pillow is missing."""
    try:
        from PIL import Image  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise ImportError(
            "to_pil() needs Pillow, which is not installed: pip install pillow"
        ) from None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class ImageView:
    """Size and notebook display for a class with ``data`` and ``mime_type`` (GeneratedImage)."""

    __slots__ = ()
    data: bytes | None
    mime_type: str

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` read from the image header; None when not downloaded."""
        return None if self.data is None else image_size(self.data)

    @property
    def width(self) -> int | None:
        return None if (size := self.size) is None else size[0]

    @property
    def height(self) -> int | None:
        return None if (size := self.size) is None else size[1]

    def to_pil(self) -> Any:
        """The image as a ``PIL.Image.Image`` (needs Pillow: ImportError saying so otherwise)."""
        if self.data is None:
            raise ValueError("image was not downloaded (download=False); nothing to open")
        return to_pil(self.data)

    def _repr_png_(self) -> bytes | None:
        return self.data if self.mime_type == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.mime_type == "image/jpeg" else None

    def _repr_html_(self) -> str | None:  # WebP and GIF: notebooks show them through <img>
        if self.data is None or self.mime_type in ("image/png", "image/jpeg"):
            return None
        return images_html([(self.data, self.mime_type)])
