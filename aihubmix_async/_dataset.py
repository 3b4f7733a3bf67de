"""Prompt files in, an ImageFolder-style dataset out: the file side of the CLI.

Layout written into the output folder (what ``datasets.load_dataset("imagefolder", ...)``
loads directly)::

    000000.png  000001.jpg  ...          one file per image, named from the item id
    metadata.jsonl                       one line per image: file_name, prompt, model, ...
    errors.jsonl                         one line per failed attempt of an item

``metadata.jsonl`` is the commit record. An item's images are written under temporary names
and renamed into place, then its metadata lines are appended in one write. On a rerun, items
already in ``metadata.jsonl`` are skipped and leftover temporary files are removed; an image
renamed into place just before a crash has no metadata line, so its item is generated again and
the file replaced under the same name. Nothing is half written and nothing is recorded twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from ._batch import ImageRequest, Outcome, request_from_mapping
from ._models import extension_for, write_atomic

__all__ = [
    "BadLine",
    "DatasetWriter",
    "InputItem",
    "parse_param",
    "read_items",
    "safe_name",
]

METADATA = "metadata.jsonl"
ERRORS = "errors.jsonl"
_PART = ".part"
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@attrs.frozen(kw_only=True)
class InputItem:
    """One usable input line: where it came from and the request it makes."""

    line: int
    index: int
    request: ImageRequest


@attrs.frozen(kw_only=True)
class BadLine:
    """An input line that cannot become a request (reported by line number)."""

    line: int
    index: int
    message: str


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` from the command line; ``v`` is read as JSON when it parses (2, true, [..])."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--param expects key=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def safe_name(item_id: str) -> str:
    """A file stem from an id that cannot leave the folder: no separators, ``..``, NUL or
    reserved device names. A changed id gets a short hash so distinct ids stay distinct."""
    stem = _UNSAFE.sub("_", item_id).strip("._")[:100]
    if stem.lower().split(".")[0] in _RESERVED:  # Windows devices, whatever the extension
        stem = f"_{stem}"
    if not stem or stem != item_id:
        digest = hashlib.sha1(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = f"{stem or 'item'}-{digest}"
    return stem


def _sniff(first: str) -> str:
    return "jsonl" if first.lstrip().startswith("{") else "text"


def _format_of(path: str, explicit: str | None) -> str | None:
    if explicit:
        return explicit
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text"}.get(suffix)


def read_items(source: str, fmt: str | None = None) -> Iterator[InputItem | BadLine]:
    """Yield every input line lazily as an item or a bad line. ``-`` reads standard input.

    Formats: ``text`` (a prompt per line), ``jsonl`` (an object per line: ``prompt``, optional
    ``model``, ``id``, ``params`` or parameters at top level), ``csv`` (a ``prompt`` column,
    optional ``model``, ``id`` and a JSON ``params`` column). Blank lines are skipped; every
    other line takes the next index, bad or not, so indexes (and shards) never shift.
    """
    chosen = _format_of(source, fmt)
    if source == "-":
        stream: IO[str] = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig")
        yield from _read_stream(stream, chosen)
        return
    with open(source, encoding="utf-8-sig", newline="") as stream:
        yield from _read_stream(stream, chosen)


def _read_stream(stream: IO[str], fmt: str | None) -> Iterator[InputItem | BadLine]:
    if fmt == "csv":
        yield from _read_csv(stream)
        return
    index = 0
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        if fmt is None:
            fmt = _sniff(line)
        default_id = f"{index:06d}"
        try:
            if fmt == "jsonl":
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("each JSONL line must be an object")
                request = request_from_mapping(data, default_id)
            else:
                request = ImageRequest(prompt=line.strip(), id=default_id)
        except ValueError as exc:
            yield BadLine(line=number, index=index, message=str(exc))
        else:
            yield InputItem(line=number, index=index, request=request)
        index += 1


def _read_csv(stream: IO[str]) -> Iterator[InputItem | BadLine]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or "prompt" not in reader.fieldnames:
        yield BadLine(line=1, index=0, message="CSV input needs a 'prompt' column")
        return
    for index, row in enumerate(reader):
        number = reader.line_num
        try:
            params = json.loads(row["params"]) if row.get("params") else {}
            data = {"prompt": row["prompt"], "model": row.get("model") or None,
                    "id": row.get("id") or None, "params": params}  # fmt: skip
            request = request_from_mapping(data, f"{index:06d}")
        except ValueError as exc:
            yield BadLine(line=number, index=index, message=str(exc))
        else:
            yield InputItem(line=number, index=index, request=request)


class DatasetWriter:
    """Writes images and metadata into one output folder, resumably. Blocking: call it from a
    worker thread (the CLI does)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self._metadata = out / METADATA
        self._errors = out / ERRORS

    def recover(self) -> set[str]:
        """Ids already written. Removes this writer's leftover temporary files and a cut-off
        last metadata line; never touches any other file in the folder."""
        done: set[str] = set()
        if self._metadata.exists():
            raw = self._metadata.read_bytes()
            complete = raw[: raw.rfind(b"\n") + 1]
            if len(complete) != len(raw):  # a line cut off by a crash: drop it
                with open(self._metadata, "r+b") as handle:
                    handle.truncate(len(complete))
            for line in complete.decode("utf-8").splitlines():
                try:
                    done.add(str(json.loads(line)["id"]))
                except (ValueError, KeyError, TypeError):
                    continue
        for entry in os.scandir(self.out):
            if entry.is_file() and entry.name.startswith(".") and entry.name.endswith(_PART):
                os.unlink(entry.path)
        return done

    def write(self, outcome: Outcome, line: int) -> list[Path]:
        """Write a successful outcome's images, then commit its metadata lines."""
        result = outcome.result
        assert result is not None
        request = outcome.request
        stem = safe_name(request.id or f"{outcome.index:06d}")
        rows, paths = [], []
        for k, image in enumerate(result.images):
            name = f"{stem}{'' if k == 0 else f'-{k}'}{extension_for(image.mime_type)}"
            path = self.out / name
            assert image.data is not None  # the command line always downloads
            write_atomic(path, image.data)
            paths.append(path)
            usage = result.usage
            rows.append(
                {
                    "file_name": name,
                    "id": request.id,
                    "line": line,
                    "prompt": request.prompt,
                    "model": result.model,
                    "params": json.dumps(dict(request.params), sort_keys=True),
                    "image_index": k,
                    "mime_type": image.mime_type,
                    "request_id": result.request_id,
                    "elapsed": round(outcome.elapsed, 4),
                    "attempts": outcome.attempts,
                    "input_tokens": usage.input_tokens if usage else None,
                    "output_tokens": usage.output_tokens if usage else None,
                    "total_tokens": usage.total_tokens if usage else None,
                }
            )
        _append(self._metadata, rows)
        return paths

    def write_error(self, outcome: Outcome, line: int) -> None:
        error = outcome.error
        request = outcome.request
        _append(
            self._errors,
            [
                {
                    "id": request.id,
                    "line": line,
                    "prompt": request.prompt,
                    "model": request.model,
                    "error": type(error).__name__,
                    "message": getattr(error, "message", str(error)),
                    "status_code": getattr(error, "status_code", None),
                    "request_id": getattr(error, "request_id", None),
                    "attempts": outcome.attempts,
                }
            ],
        )


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    # One write of whole lines with O_APPEND: concurrent writers (shards) never interleave
    # within a line, and a crash leaves at most one cut-off last line, which recover() drops.
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(payload)
        while view:  # a full disk can take part of a write: finish it, or raise
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
