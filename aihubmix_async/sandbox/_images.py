"""Real, decodable images for the emulator, made without any imaging library.

Every generated image is two flat colour bands (top and bottom) chosen from a hash of the
prompt, the seed and the image's index in its answer, at the requested size or aspect ratio:
different prompts and seeds give different pictures, the same ones give the same bytes. PNG
and baseline JPEG are encoded here with zlib and a few lines of Huffman coding; images are
cached by what they depend on, so a repeated request costs a dictionary lookup.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import os
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["ImageSpec", "image_for", "jpeg", "png", "png_of_size", "spec_for"]

#: The long side of an image whose request gave no explicit ``WxH`` size.
DEFAULT_SIDE = 64
#: Explicit sizes are honoured up to this side (a server would refuse more anyway).
MAX_SIDE = 4096
_WXH = re.compile(r"^\s*(\d{1,5})\s*[xX*]\s*(\d{1,5})\s*$")
_RATIO = re.compile(r"^\s*(\d{1,3})\s*[:x]\s*(\d{1,3})\s*$")
_SIZE_FIELDS = ("size", "image_size", "imageSize")
_RATIO_FIELDS = ("aspect_ratio", "aspectRatio", "ratio")
Colour = tuple[int, int, int]


@attrs.frozen
class ImageSpec:
    """What one generated image depends on: its two colours and its size."""

    top: Colour
    bottom: Colour
    width: int = DEFAULT_SIDE
    height: int = DEFAULT_SIDE

    def token(self) -> str:
        """A URL-safe name part that :meth:`from_token` reads back (for image downloads)."""
        return f"{bytes(self.top).hex()}{bytes(self.bottom).hex()}-{self.width}x{self.height}"

    @classmethod
    def from_token(cls, name: str) -> ImageSpec:
        """The spec a download name carries; the default picture for any other name."""
        colours, _, size = name.partition("-")
        found = _WXH.match(size.partition("-")[0])
        try:
            raw = bytes.fromhex(colours)
        except ValueError:
            raw = b""
        if len(raw) != 6 or found is None:
            return cls((96, 96, 160), (160, 96, 96))
        width, height = _clamp(int(found[1]), int(found[2]))
        return cls((raw[0], raw[1], raw[2]), (raw[3], raw[4], raw[5]), width, height)


def colours(prompt: str, seed: object = None, index: int = 0) -> tuple[Colour, Colour]:
    """The two colours of the ``index``-th image for this prompt and seed (tests use this)."""
    digest = hashlib.blake2b(f"{prompt}\0{seed}\0{index}".encode(), digest_size=6).digest()
    return _vivid(digest[:3]), _vivid(digest[3:])


def _vivid(raw: bytes) -> Colour:
    # Saturated colours (hue from the hash) are easy to tell from each other and from a grey
    # page background in a screenshot.
    red, green, blue = colorsys.hsv_to_rgb(raw[0] / 256, 0.6 + raw[1] / 640, 0.6 + raw[2] / 640)
    return round(red * 255), round(green * 255), round(blue * 255)


def spec_for(prompt: object, fields: Mapping[str, Any], index: int = 0) -> ImageSpec:
    """The image a request asks for: colours from prompt, seed and index; size from ``width``
    and ``height``, else the first ``WxH`` size field, else an aspect ratio with a
    :data:`DEFAULT_SIDE` long side (a ``1K``-style or absent size: DEFAULT_SIDE square).
    """
    flat = dict(fields)
    for nested in ("imageConfig", "parameters"):
        if isinstance(inner := flat.get(nested), Mapping):
            flat.update(inner)
    top, bottom = colours(str(prompt), flat.get("seed"), index)
    width = height = DEFAULT_SIDE
    given_w, given_h = flat.get("width"), flat.get("height")
    if isinstance(given_w, int) and isinstance(given_h, int):
        width, height = _clamp(given_w, given_h)
    elif (size := _first(flat, _SIZE_FIELDS, _WXH)) is not None:
        width, height = _clamp(*size)
    elif (ratio := _first(flat, _RATIO_FIELDS, _RATIO)) is not None and min(ratio) > 0:
        w, h = ratio
        scale = DEFAULT_SIDE / max(w, h)
        width, height = max(1, round(w * scale)), max(1, round(h * scale))
    return ImageSpec(top, bottom, width, height)


def _first(fields: Mapping[str, Any], names: tuple[str, ...], pattern: re.Pattern[str]) -> Any:
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and (found := pattern.match(value)):
            return int(found[1]), int(found[2])
    return None


def _clamp(width: int, height: int) -> tuple[int, int]:
    return min(max(width, 1), MAX_SIDE), min(max(height, 1), MAX_SIDE)


@functools.lru_cache(maxsize=512)
def image_for(spec: ImageSpec, kind: str) -> bytes:
    """The encoded image (``kind`` ``"jpeg"`` or anything else for PNG), cached."""
    return _jpeg(spec) if kind == "jpeg" else _png_bands(spec)


# --- PNG --------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, rows: bytes, level: int, strategy: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", deflate.compress(rows) + deflate.flush()),
            _chunk(b"IEND", b""),
        )
    )


def _png_bands(spec: ImageSpec) -> bytes:
    # Each band: one row with the "sub" filter (the colour, then zero differences), then rows
    # with the "up" filter (all zeros), which run-length deflate packs fast: a 1024x1536
    # image costs a few tens of milliseconds once, then comes from the cache.
    half = max(spec.height // 2, 1)
    zeros = bytes(3 * (spec.width - 1))
    same = b"\x02" + bytes(3 * spec.width)
    top = b"\x01" + bytes(spec.top) + zeros + same * (half - 1)
    bottom = b"\x01" + bytes(spec.bottom) + zeros + same * (spec.height - half - 1)
    rows = top + (bottom if spec.height > half else b"")
    return _png(spec.width, spec.height, rows, 6, zlib.Z_RLE)


@functools.cache
def png(width: int = 64, height: int = 64) -> bytes:
    """A small RGB gradient PNG."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 160))
    return _png(width, height, bytes(rows), 9)


@functools.cache
def png_of_size(approx_bytes: int) -> bytes:
    """An incompressible (noise) PNG of roughly ``approx_bytes`` bytes, for payload benchmarks."""
    side = max(8, int((approx_bytes / 3) ** 0.5))
    row = side * 3
    rows = b"".join(b"\x00" + os.urandom(row) for _ in range(side))
    return _png(side, side, rows, 0)


def jpeg() -> bytes:
    """A small two-colour JPEG."""
    return image_for(ImageSpec((40, 90, 200), (230, 180, 60), 32, 32), "jpeg")


# --- baseline JPEG of flat 8x8 blocks ---------------------------------------------------------
# Each block is flat, so only its DC coefficient is non-zero: a DC difference and an end-of-block
# per block. The quantisation table is all ones; one DC and one AC Huffman table serve all three
# components (the DC table is the standard luminance one; the AC table holds only EOB).

_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_EOB = "0"


@functools.cache
def _dc_codes() -> tuple[str, ...]:
    codes: list[str] = []
    code = 0
    for length, count in enumerate(_DC_BITS, start=1):
        for _ in range(count):
            codes.append(format(code, f"0{length}b"))
            code += 1
        code <<= 1
    return tuple(codes)


def _ycc(rgb: Colour) -> tuple[int, int, int]:
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(8 * (round(v) - 128) for v in (y, cb, cr))  # type: ignore[return-value]


def _dc(diff: int) -> str:
    size = abs(diff).bit_length()
    bits = _dc_codes()[size]
    if size:
        bits += format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b")
    return bits + _EOB


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _jpeg(spec: ImageSpec) -> bytes:
    cols, rows = -(-spec.width // 8), -(-spec.height // 8)
    band = (-(-spec.height // 2)) // 8  # block rows in the top colour
    dcs = (_ycc(spec.top), _ycc(spec.bottom))
    same = "".join(_dc(0) for _ in range(3))
    previous = (0, 0, 0)
    parts: list[str] = []
    for row in range(rows):
        current = dcs[0] if row < max(band, 1) else dcs[1]
        parts.append("".join(_dc(c - p) for c, p in zip(current, previous, strict=True)))
        parts.append(same * (cols - 1))
        previous = current
    bits = "".join(parts)
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")
    components = b"".join(bytes((i, 0x11, 0)) for i in (1, 2, 3))
    dc_table = bytes((0x00, *_DC_BITS, *range(12)))
    ac_table = bytes((0x10, 1, *([0] * 15), 0x00))
    return b"".join(
        (
            b"\xff\xd8",
            _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xFFDB, b"\x00" + b"\x01" * 64),
            _segment(0xFFC0, struct.pack(">BHHB", 8, spec.height, spec.width, 3) + components),
            _segment(0xFFC4, dc_table + ac_table),
            _segment(0xFFDA, b"\x03" + b"".join(bytes((i, 0)) for i in (1, 2, 3)) + b"\x00?\x00"),
            scan,
            b"\xff\xd9",
        )
    )
