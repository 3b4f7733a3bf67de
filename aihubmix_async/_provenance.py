"""Provenance in saved images: prompt, model, parameters and request id, written into the file's
own metadata without touching the pixels.

- PNG: one ``iTXt`` chunk per field (UTF-8), inserted after ``IHDR``; a text chunk of the same
  name already in the file is dropped (a reader sees one value per name).
- JPEG: a ``COM`` segment (the fields as JSON) and an XMP description, after the file's own
  metadata segments (Exif stays right after JFIF); an XMP packet already there gets ours added
  to it, so the file keeps one.
- WebP: an ``XMP `` chunk in a ``VP8X`` container (a simple-format file is wrapped in one), or
  ours added to the file's own XMP chunk.
- GIF, unknown bytes and files whose structure does not parse (cut short, lying lengths) are
  returned unchanged: a malformed image is saved as received, never lost to its metadata.

Image inputs in the parameters are written as ``<image>``; URLs lose credentials, query and
fragment; names like ``key``, ``auth`` or ``cookie`` and ``Bearer ...`` values are left out: no
secret (signed URL, key, header) ends up in a file. Lone surrogates become U+FFFD, and the
characters XML forbids (NUL, ESC ...) become U+FFFD in XMP, so every reader can parse it.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from ._config import VERSION
from ._imageinfo import image_size

__all__ = [
    "XMP_NAMESPACE",
    "LazyProvenance",
    "Provenance",
    "embed",
    "not_secret",
    "provenance_fields",
    "scrub_params",
]  # fmt: skip

XMP_NAMESPACE = "https://github.com/aihubmix-async/aihubmix-async/ns/provenance/1.0/"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
# Parameter names left out of the file (matched within the name, case-insensitively).
_SECRET_WORDS = ("key", "token", "secret", "passw", "auth", "credential", "cookie", "signature",
                 "bearer", "session")  # fmt: skip
# A value that is a credential: an Authorization header's value, or a key (``sk-...``) itself,
# as a server echoing the request's headers may send back in place of a request id.
_SECRET_VALUE = re.compile(r"\s*((bearer|basic|token)\s+\S|sk-[\w\-]{16})", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
# What XML 1.0 cannot hold, not even as a character reference.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
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
        "parameters": _parameters(params) if params else "",
        # The server's: one echoing the request's headers sends the key back.
        "request_id": not_secret(request_id) if request_id else "",
        "task_id": not_secret(task_id) if task_id else "",
        "software": _SOFTWARE,
    }
    return {name: value for name, value in fields.items() if value}


_SOFTWARE = f"aihubmix-async {VERSION}"
# A bulk run sends the same few parameter sets again and again: each is scrubbed and rendered
# once (only sets of plain, hashable values are remembered, and only so many of them).
_RENDERED: dict[tuple[tuple[str, type, Any], ...], str] = {}
_SCALARS = frozenset((str, int, float, bool, type(None)))
_RENDERED_MAX = 256
_REMEMBERED_TEXT = 2048  # longer renderings are not kept: a run of huge parameter sets stays small


def _parameters(params: Mapping[str, Any]) -> str:
    """``params`` scrubbed, as sorted JSON ("" for none)."""
    # Only sets of plain, short values are remembered (an inline image is neither), each value
    # with its type: 1, 1.0 and True are equal keys of a dict but render differently.
    plain = all(
        type(value) in _SCALARS and (type(value) is not str or len(value) <= _REMEMBERED_TEXT)
        for value in params.values()
    )
    key = tuple((name, type(value), value) for name, value in params.items()) if plain else None
    text = _RENDERED.get(key) if key is not None else None
    if text is None:
        text = json.dumps(scrub_params(dict(params)), ensure_ascii=False, sort_keys=True)
        text = "" if text == "{}" else text
        if key is not None and len(text) <= _REMEMBERED_TEXT and len(_RENDERED) < _RENDERED_MAX:
            _RENDERED[key] = text
    return text


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

    def fields(self) -> dict[str, str]:
        """The fields, as a new plain dict (without a Mapping method call per field)."""
        return dict(self._get())

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def not_secret(text: str) -> str:
    """``text``, or ``<secret>`` when it looks like a credential (``Bearer ...``, ``sk-...``)."""
    return "<secret>" if _SECRET_VALUE.match(text) else text


def _secret(name: object) -> bool:
    return isinstance(name, str) and any(word in name.lower() for word in _SECRET_WORDS)


def scrub_params(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """``value`` (parameters, or any part of them) fit to be written where others read it."""
    if isinstance(value, Mapping):
        return {str(k): scrub_params(v) for k, v in value.items() if not _secret(str(k))}
    if isinstance(value, (list, tuple)):
        # Header-like pairs (["Authorization", "Bearer ..."]) go with their name.
        return [
            scrub_params(v)
            for v in value
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and _secret(v[0]))
        ]
    if isinstance(value, str):
        if value.startswith("data:") or len(value) > 2048:
            return "<image>"
        if _URL.match(value):
            return _bare_url(value)
        return not_secret(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return "<image>"  # bytes, ImageInput, files: inputs, not text


def _bare_url(url: str) -> str:
    """``scheme://host[:port]/path``: no credentials, query or fragment (signatures live
    there); ``<url>`` when it does not parse.
    """
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<url>"
    return f"{parts.scheme.lower()}://{parts.hostname or ''}{port}{parts.path}"


def embed(data: bytes, fields: Provenance) -> bytes:
    """``data`` with ``fields`` in its metadata; unchanged for formats that have no place and
    for files whose structure does not parse.
    """
    if not fields:
        return data
    # A LazyProvenance computed once, as a plain dict of text every encoder takes; one look
    # for lone surrogates over all of it (none in nearly every file).
    fields = fields.fields() if isinstance(fields, LazyProvenance) else dict(fields)
    joined = "".join(fields.values())
    if not joined.isascii() and _SURROGATE.search(joined):
        fields = {name: _SURROGATE.sub(_REPLACEMENT, text) for name, text in fields.items()}
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return _png(data, fields)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data, fields)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, fields)
    return data


_PNG_TEXT = (b"tEXt", b"iTXt", b"zTXt")
_ITXT_CRC = zlib.crc32(b"iTXt")  # a chunk's CRC covers its type, then its body
# The chunks of fields that repeat from file to file in a run, built once.
_REPEATED = frozenset(("model", "parameters", "software"))
_ITXT_CHUNKS: dict[tuple[str, str], bytes] = {}


def _png(data: bytes, fields: Provenance) -> bytes:
    end_of_ihdr = 8 + 12 + 13
    if int.from_bytes(data[8:12], "big") != 13 or len(data) < end_of_ihdr:
        return data
    pieces, ours = [data[:end_of_ihdr]], set()
    for name, text in fields.items():
        keyword = name.encode("latin-1")[:79]
        ours.add(keyword)
        chunk = _ITXT_CHUNKS.get((name, text))
        if chunk is None:
            body = keyword + b"\x00\x00\x00\x00\x00" + text.encode()
            crc = zlib.crc32(body, _ITXT_CRC)
            chunk = b"".join((len(body).to_bytes(4, "big"), b"iTXt", body, crc.to_bytes(4, "big")))
            if (
                name in _REPEATED
                and len(chunk) <= _REMEMBERED_TEXT
                and len(_ITXT_CHUNKS) < _RENDERED_MAX
            ):
                _ITXT_CHUNKS[name, text] = chunk
        pieces.append(chunk)
    start = at = end_of_ihdr
    if not any(kind in data for kind in _PNG_TEXT):  # no text chunk to drop (a quick look)
        at = len(data)
    while at + 12 <= len(data):  # drop text chunks of our names: one value per name
        end = at + 12 + int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if end > len(data) or kind == b"IEND":
            break
        if kind in _PNG_TEXT and data[at + 8 : end - 4].split(b"\x00", 1)[0] in ours:
            pieces.append(data[start:at])
            start = end
        at = end
    pieces.append(data[start:])
    return b"".join(pieces)


def _description(fields: Provenance) -> str:
    attributes = "".join(
        f"\n   aihubmix:{name}={quoteattr(_NOT_XML.sub(_REPLACEMENT, text))}"
        for name, text in fields.items()
    )
    return f'<rdf:Description rdf:about="" xmlns:aihubmix="{XMP_NAMESPACE}"{attributes}/>'


def xmp_packet(fields: Provenance) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f"  {_description(fields)}\n"
        " </rdf:RDF>\n</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _merged(packet: bytes) -> Any:
    """A renderer adding our description to an XMP ``packet`` of the file's own, or None
    when the packet has no RDF to add it to.
    """
    end = packet.rfind(b"</rdf:RDF>")
    if end < 0:
        return None
    return lambda f: packet[:end] + _description(f).encode() + b"\n" + packet[end:]


def _fit(fields: Provenance, limit: int, render: Any) -> bytes:
    """``render(fields)``, with the prompt shortened until it fits in ``limit`` bytes."""
    payload: bytes = render(fields)
    prompt = fields.get("prompt", "")
    while len(payload) > limit and prompt:
        prompt = prompt[: len(prompt) // 2]
        payload = render({**fields, "prompt": prompt + "…"})
    return payload if len(payload) <= limit else b""


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_header(data: bytes) -> tuple[int, tuple[int, int] | None] | None:
    """Where the file's own metadata segments (APPn, COM) end, and its XMP segment's span;
    None when the header does not parse.
    """
    at, xmp = 2, None
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            return at, xmp
        end = at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if end < at + 4 or end > len(data):
            return None
        if marker == 0xE1 and data[at + 4 : end].startswith(_XMP_HEADER) and xmp is None:
            xmp = (at, end)
        at = end
    return None  # cut short, or no marker where one must be


def _jpeg(data: bytes, fields: Provenance) -> bytes:
    header = _jpeg_header(data)
    if header is None:
        return data
    insert, xmp = header
    comment = _fit(fields, _MAX_SEGMENT, lambda f: json.dumps(f, ensure_ascii=False).encode())
    ours = _segment(0xFE, comment) if comment else b""
    room = _MAX_SEGMENT - len(_XMP_HEADER)
    merge = None if xmp is None else _merged(data[xmp[0] + 4 + len(_XMP_HEADER) : xmp[1]])
    packet = _fit(fields, room, merge) if merge is not None else b""
    if xmp is not None and packet:  # the file's own packet, with ours in it, in its place
        own = _segment(0xE1, _XMP_HEADER + packet)
        return data[: xmp[0]] + own + data[xmp[1] : insert] + ours + data[insert:]
    packet = _fit(fields, room, xmp_packet)
    if packet:
        ours += _segment(0xE1, _XMP_HEADER + packet)
    return data[:insert] + ours + data[insert:]


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)


def _riff_chunks(body: bytes) -> list[tuple[bytes, int, int]] | None:
    """(kind, start, end) of each chunk, padding included; None when a length lies."""
    chunks, at = [], 0
    while at + 8 <= len(body):
        size = int.from_bytes(body[at + 4 : at + 8], "little")
        end = at + 8 + size + (size & 1)
        if at + 8 + size > len(body):
            return None
        chunks.append((body[at : at + 4], at, min(end, len(body))))
        at = end
    return chunks if at >= len(body) and chunks else None


def _webp(data: bytes, fields: Provenance) -> bytes:
    end = 8 + int.from_bytes(data[4:8], "little")
    body, trailer = data[12:end], data[end:]  # bytes after the RIFF's own end stay after it
    if body[:4] != b"VP8X":
        size = image_size(data)
        if size is None or _riff_chunks(body) is None:
            return data
        width, height = size
        alpha = body[:4] == b"VP8L" and int.from_bytes(body[9:13], "little") >> 28 & 1
        header = bytes((0x10 if alpha else 0, 0, 0, 0))
        header += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = _riff_chunk(b"VP8X", header) + body
    chunks = _riff_chunks(body)
    if chunks is None or len(body) < 18:
        return data
    body = body[:8] + bytes((body[8] | 0x04,)) + body[9:]  # the XMP flag
    own = next(((start, stop) for kind, start, stop in chunks if kind == b"XMP "), None)
    if own is None:
        body += _riff_chunk(b"XMP ", xmp_packet(fields))
    else:
        length = int.from_bytes(body[own[0] + 4 : own[0] + 8], "little")
        merge = _merged(body[own[0] + 8 : own[0] + 8 + length])
        packet = merge(fields) if merge is not None else xmp_packet(fields)
        body = body[: own[0]] + _riff_chunk(b"XMP ", packet) + body[own[1] :]
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + trailer
