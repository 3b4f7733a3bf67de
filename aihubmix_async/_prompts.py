"""Prompt files in: one pass over a text, JSONL or CSV source, every record checked before
anything is sent.

The source is read once, front to back, as bytes (a file, ``-`` for standard input, a pipe or
a named FIFO all work), so nothing is sized up front. Each non-blank record becomes either a
:class:`PromptLine` (its request as read: own model, parameters and id, or None) or a
:class:`BadLine` with its line number: undecodable bytes, oversized CSV fields, bad JSON,
unknown models, invalid parameters and local image files (unless allowed) never raise and are
never sent. Identity, fingerprints and lone surrogates are the journal's (``Stager.add``).
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import itertools
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import attrs

from ._batch import ImageRequest, request_from_mapping
from ._errors import InvalidRequestError
from ._registry import Registry
from .providers import ProviderAdapter

__all__ = [
    "BadLine",
    "BadLines",
    "PromptLine",
    "PromptReader",
    "format_of",
    "input_key",
    "open_source",
    "parse_param",
]

FORMATS = ("text", "jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text"}
_WIRE_READY = ("https://", "http://", "data:")
_CHECK_CACHE = 4096  # distinct (model, parameters) pairs whose validation is remembered
_UNCHECKED: Any = object()


class PromptLine(NamedTuple):
    """One usable input record: where it starts and the request it makes, as read. A line
    of a text file (a bare prompt under the run's defaults) has no ``request``, only its
    ``prompt``: a million of them are read without building a million request objects.
    """

    line: int  #: 1-based physical line where the record starts
    request: ImageRequest | None  #: None for a text line
    prompt: str


# A text line made without the generated __new__'s Python frame (a million lines at a resume).
_new_line = functools.partial(tuple.__new__, PromptLine)


@attrs.frozen(kw_only=True, slots=True)
class BadLine:
    """An input record that cannot become a request, reported by line number."""

    line: int
    message: str


@attrs.define
class BadLines:
    """A tally of bad lines: the count and the first few, never all of them in memory."""

    keep: int = 5
    count: int = 0
    first: list[BadLine] = attrs.Factory(list)

    def add(self, bad: BadLine) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(bad)

    def describe(self) -> list[str]:
        """Lines for the user: the first few bad lines and how many more there are."""
        lines = [f"line {bad.line}: {bad.message}" for bad in self.first]
        if self.count > len(self.first):
            lines.append(f"... and {self.count - len(self.first)} more bad line(s)")
        return lines


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` from the command line; ``v`` is read as JSON when it parses (2, true, [..])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InvalidRequestError(f"--param expects key=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def format_of(source: str, explicit: str | None) -> str | None:
    """The format named on the command line, else the one the file suffix says (or None)."""
    if explicit:
        return explicit
    dot = source.rfind(".")
    return _SUFFIXES.get(source[dot:].lower()) if dot > 0 else None


def input_key(source: str, settings: Mapping[str, Any]) -> str | None:
    """A digest of a prompts file's bytes and the run's ``settings``: equal keys mean the same
    input, so a rerun may skip reading it again. None when the source cannot be re-read (stdin,
    a pipe, a FIFO): those are always read in full.
    """
    if source == "-" or not Path(source).is_file():
        return None
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    with Path(source).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def open_source(source: str) -> IO[bytes]:
    """The prompts source as a binary stream, opened once (``-`` is standard input)."""
    if source == "-":
        return sys.stdin.buffer
    return Path(source).open("rb")  # the caller closes it


@attrs.define
class PromptReader:
    """Turns a prompts source into checked lines and bad lines, one pass, flat memory.

    ``model`` and ``params`` are the command line's defaults (a line's own win); they are used
    to check each line, while the line's request is handed on as read. ``allow_local_files``
    lets lines name local image files (read and uploaded).
    """

    registry: Registry
    model: str | None = None
    params: Mapping[str, Any] = attrs.Factory(dict)
    allow_local_files: bool = False
    _checked: dict[tuple[str | None, str], str | None] = attrs.Factory(dict)

    def read(self, stream: IO[bytes], fmt: str | None = None) -> Iterator[PromptLine | BadLine]:
        """Every non-blank record of ``stream`` in order; ``fmt`` None sniffs text or JSONL."""
        if fmt == "csv":
            yield from self._read_csv(stream)
            return
        lines = enumerate(stream, start=1)
        for number, line in lines:
            bom = number == 1 and line.startswith(codecs.BOM_UTF8)
            raw = line[len(codecs.BOM_UTF8) :] if bom else line
            if not raw or raw.isspace():  # a blank line (no copy, unlike strip)
                continue
            if fmt is None:
                fmt = "jsonl" if raw.lstrip().startswith(b"{") else "text"
                if fmt == "text" and self.model is None:
                    raise InvalidRequestError("a text prompts file needs a model: give -m MODEL")
            if fmt == "text":  # the rest of the source, in the bulk loop
                yield from self._read_text(itertools.chain(((number, raw),), lines))
                return
            try:
                yield self._checked_line(number, self._parse_line(raw))
            except (InvalidRequestError, ValueError) as exc:
                yield BadLine(line=number, message=_message(exc))

    def _read_text(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[PromptLine | BadLine]:
        """The text lines (numbered, the first one non-blank): the bulk case, kept lean, with
        no request object and no call per line. Every line is checked under the run's defaults
        once: when they are wrong, every line is bad.
        """
        verdict = self._verdict(None, {})
        for number, raw in lines:
            if raw.isspace():  # a blank line (no iteration yields b"")
                continue
            if verdict:
                yield BadLine(line=number, message=verdict)
                continue
            try:
                prompt = raw.decode().strip()  # UTF-8, then Unicode spaces too
            except UnicodeDecodeError as exc:
                yield BadLine(line=number, message=_undecodable(raw, exc))
                continue
            if prompt:
                yield _new_line((number, None, prompt))
            else:
                yield BadLine(line=number, message="empty prompt")

    @staticmethod
    def _parse_line(raw: bytes) -> ImageRequest:
        data = json.loads(_decoded(raw))
        if not isinstance(data, dict):
            # A bad line like the others (reported, never raised): not TypeError.
            raise ValueError("each JSONL line must be an object")  # noqa: TRY004
        return request_from_mapping(data)

    def _read_csv(self, stream: IO[bytes]) -> Iterator[PromptLine | BadLine]:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield from self._csv_rows(csv.reader(text))
        finally:
            text.detach()  # the caller owns (and closes) the byte stream

    def _csv_rows(self, reader: Any) -> Iterator[PromptLine | BadLine]:
        header = next(reader, None)
        if header is None:
            return
        columns = {name.strip(): k for k, name in enumerate(header)}
        if "prompt" not in columns:
            raise InvalidRequestError("the CSV input needs a 'prompt' column in its first line")
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
                yield BadLine(line=line, message=f"CSV: {exc}")
                line = reader.line_num + 1
                continue
            if row is None:
                return
            if any(field.strip() for field in row):
                try:
                    yield self._checked_line(line, _csv_request(row, columns))
                except (InvalidRequestError, ValueError) as exc:
                    yield BadLine(line=line, message=_message(exc))
            line = reader.line_num + 1

    def _checked_line(self, line: int, request: ImageRequest) -> PromptLine:
        """The line if what it asks is valid: a model that resolves, parameters the model
        takes, no local files unless allowed (the request itself is handed on as read).
        Adapters check nothing of a prompt but that it is not blank, so the verdict is
        remembered per distinct (model, parameters) of a line: most lines cost a lookup.
        """
        if request.task_id is not None:  # the journal resumes tasks itself, by item id
            raise InvalidRequestError("'task_id' is not a prompts-file field")
        error = self._verdict(request.model, request.params)
        if error is not None:
            raise InvalidRequestError(error)
        return PromptLine(line, request, request.prompt)

    def _verdict(self, model: str | None, own: Mapping[str, Any]) -> str | None:
        """What is wrong with a line's model and parameters, remembered per distinct pair."""
        key = (model, _canonical(own) if own else "")
        error = self._checked.get(key, _UNCHECKED)
        if error is _UNCHECKED:
            if len(self._checked) >= _CHECK_CACHE:
                self._checked.clear()
            error = self._checked[key] = self._check(model, own)
        return error  # type: ignore[no-any-return]

    def _check(self, own_model: str | None, own_params: Mapping[str, Any]) -> str | None:
        """What is wrong with a line's model and parameters (after the defaults), or None."""
        model = own_model or self.model
        if model is None:
            return "no model: give -m or a 'model' on the line"
        params = {**self.params, **own_params}
        try:
            adapter, path = self.registry.resolve(model)
            if not self.allow_local_files:
                _refuse_local_files(adapter, params)
            adapter.build_request(path, "a prompt", params)
        except InvalidRequestError as exc:
            return str(exc)
        return None


def _undecodable(raw: bytes, exc: UnicodeDecodeError) -> str:
    return f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"


def _decoded(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(_undecodable(raw, exc)) from None


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, ensure_ascii=False)


def _refuse_local_files(adapter: ProviderAdapter, params: Mapping[str, Any]) -> None:
    for name in adapter.image_params:
        value = params.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.startswith(_WIRE_READY):
                raise InvalidRequestError(
                    f"{name!r} names a local file ({item!r}); prompt files may read local"
                    " files only with --allow-local-files",
                    field=name,
                )


_UNDECODED = re.compile("[\udc80-\udcff]")  # how surrogateescape carries an undecodable byte


def _csv_request(row: list[str], columns: Mapping[str, int]) -> ImageRequest:
    for value in row:
        if bad := _UNDECODED.search(value):
            raise ValueError(f"not UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x}")

    def field(name: str) -> str | None:
        k = columns.get(name)
        return row[k] if k is not None and k < len(row) and row[k] != "" else None

    raw_params = field("params")
    data = {
        "prompt": field("prompt"),
        "model": field("model"),
        "id": field("id"),
        "params": json.loads(raw_params) if raw_params else None,
    }
    return request_from_mapping(data)


def _message(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        column = min(exc.pos, len(exc.doc.rstrip("\r\n"))) + 1  # one line; not past its end
        return f"bad JSON: {exc.msg} at column {column}"
    return str(exc)
