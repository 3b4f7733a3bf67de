"""Provenance in saved images: prompt, model, parameters and request id, written into the file's
own metadata without touching the pixels.

- PNG: one ``iTXt`` chunk per field (UTF-8), inserted after ``IHDR``.
- JPEG: a ``COM`` segment (the fields as JSON) and an ``APP1`` XMP packet, after ``SOI``/``APP0``.
- WebP: an ``XMP `` chunk in a ``VP8X`` container (a simple-format file is wrapped in one).
- GIF and unknown bytes are returned unchanged.

Image inputs in the parameters are written as ``<image>`` and URLs lose their query strings
and credentials: no secret (signed URL, key) ends up in a file.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from ._config import VERSION
from ._imageinfo import image_size

__all__ = ["XMP_NAMESPACE", "LazyProvenance", "Provenance", "embed", "provenance_fields"]

XMP_NAMESPACE = "https://github.com/aihubmix-async/aihubmix-async/ns/provenance/1.0/"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "credential")
_MAX_SEGMENT = 65533  # a JPEG segment's payload limit
Provenance = Mapping[str, str]


def provenance_fields(
    *,
    prompt: str | None,
    model: str | None,
    params: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    task_id: str | None = None,
) -> dict[str, str]:
    """The text fields written into a file (empty ones left out), secrets scrubbed."""
    fields = {
        "prompt": prompt or "",
        "model": model or "",
        "parameters": json.dumps(_scrub(dict(params or {})), ensure_ascii=False, sort_keys=True),
        "request_id": request_id or "",
        "task_id": task_id or "",
        "software": f"aihubmix-async {VERSION}",
    }
    if fields["parameters"] == "{}":
        fields["parameters"] = ""
    return {name: value for name, value in fields.items() if value}


class LazyProvenance(Mapping[str, str]):
    """:func:`provenance_fields` computed on first use: every result gets one, few are saved
    with it, and scrubbing and rendering the parameters costs tens of microseconds.
    """

    __slots__ = ("_args", "_fields")

    def __init__(self, **args: Any) -> None:
        self._args = args
        self._fields: dict[str, str] | None = None

    def _get(self) -> dict[str, str]:
        if self._fields is None:
            self._fields = provenance_fields(**self._args)
        return self._fields

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def _scrub(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    if isinstance(value, Mapping):
        return {
            str(k): _scrub(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS)
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        if value.startswith("data:") or len(value) > 2048:
            return "<image>"
        if value.startswith(("http://", "https://")):
            parts = urlsplit(value)
            return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return "<image>"  # bytes, ImageInput, files: inputs, not text


def embed(data: bytes, fields: Provenance) -> bytes:
    """``data`` with ``fields`` in its metadata; unchanged for formats that have no place."""
    if not fields:
        return data
    fields = dict(fields)  # a LazyProvenance computed once, as a plain dict for the writers
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return _png(data, fields)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data, fields)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, fields)
    return data


def _png(data: bytes, fields: Provenance) -> bytes:
    chunks = []
    for name, text in fields.items():
        body = name.encode("latin-1")[:79] + b"\x00\x00\x00\x00\x00" + text.encode()
        crc = zlib.crc32(b"iTXt" + body)
        chunks.append(struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", crc))
    end_of_ihdr = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    return data[:end_of_ihdr] + b"".join(chunks) + data[end_of_ihdr:]


def xmp_packet(fields: Provenance) -> bytes:
    attributes = "".join(f"\n   aihubmix:{name}={quoteattr(text)}" for name, text in fields.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:aihubmix="{XMP_NAMESPACE}"{attributes}/>\n'
        " </rdf:RDF>\n</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _fit(fields: Provenance, limit: int, render: Any) -> bytes:
    """``render(fields)``, with the prompt shortened until it fits in ``limit`` bytes."""
    payload: bytes = render(fields)
    prompt = fields.get("prompt", "")
    while len(payload) > limit and prompt:
        prompt = prompt[: len(prompt) // 2]
        payload = render({**fields, "prompt": prompt + "…"})
    return payload if len(payload) <= limit else b""


def _jpeg(data: bytes, fields: Provenance) -> bytes:
    at = 2
    # Keep a JFIF/JFXX APP0 first, as the JFIF specification requires.
    while data[at : at + 2] == b"\xff\xe0":
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    segments = b""
    comment = _fit(fields, _MAX_SEGMENT, lambda f: json.dumps(f, ensure_ascii=False).encode())
    if comment:
        segments += b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    xmp = _fit(fields, _MAX_SEGMENT - len(_XMP_HEADER), xmp_packet)
    if xmp:
        segments += b"\xff\xe1" + struct.pack(">H", len(xmp) + len(_XMP_HEADER) + 2)
        segments += _XMP_HEADER + xmp
    return data[:at] + segments + data[at:]


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)


def _webp(data: bytes, fields: Provenance) -> bytes:
    body = data[12:]
    if body[:4] != b"VP8X":
        size = image_size(data)
        if size is None:
            return data
        width, height = size
        alpha = body[:4] == b"VP8L" and int.from_bytes(body[9:13], "little") >> 28 & 1
        header = bytes((0x10 if alpha else 0, 0, 0, 0))
        header += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = _riff_chunk(b"VP8X", header) + body
    body = body[:8] + bytes((body[8] | 0x04,)) + body[9:]  # the XMP flag
    body += _riff_chunk(b"XMP ", xmp_packet(fields))
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body
