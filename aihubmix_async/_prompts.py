"""Prompt files in: one pass over a text, JSONL or CSV source, every record checked and
fingerprinted before anything is sent.

The source is read once, front to back, as bytes (a file, ``-`` for standard input, a pipe or
a named FIFO all work), so nothing is sized up front. Each non-blank record becomes either a
:class:`PromptItem` (ready to bill: the model resolves, the parameters validate) or a
:class:`BadLine` with its line number: undecodable bytes, lone surrogates, oversized CSV
fields, bad JSON, unknown models, invalid parameters and local image files (unless allowed)
never raise and are never sent.

An item's *fingerprint* is a SHA-256 of what it asks for: the resolved model path, the prompt,
the canonical JSON of its merged parameters and the digests of local image files it uploads.
Two lines asking for the same thing have the same fingerprint, whatever their ids or positions.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any

import attrs

from ._batch import ImageRequest, request_from_mapping
from ._errors import InvalidRequestError
from ._registry import Registry
from .providers import ProviderAdapter

__all__ = ["BadLine", "BadLines", "PromptItem", "PromptReader", "open_source", "parse_param"]

FORMATS = ("text", "jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text"}
_WIRE_READY = ("https://", "http://", "data:")
_CHECK_CACHE = 4096  # distinct (model, parameters) pairs whose validation is remembered


@attrs.frozen(kw_only=True, slots=True)
class PromptItem:
    """One usable input record, validated and fingerprinted."""

    line: int  #: 1-based physical line where the record starts
    index: int  #: 0-based ordinal among non-blank records, bad ones included (for --shard)
    explicit_id: str | None  #: the id the line gives, if any
    fingerprint: str  #: SHA-256 (hex) of model path, prompt, parameters and image digests
    model: str  #: the resolved model path
    prompt: str
    params_json: str  #: canonical JSON (sorted keys) of the merged parameters

    def request(self, item_id: str, task_id: str | None = None) -> ImageRequest:
        """The request this item makes under ``item_id`` (``task_id`` resumes a task)."""
        params = json.loads(self.params_json)
        if task_id is None:
            return ImageRequest(prompt=self.prompt, model=self.model, params=params, id=item_id)
        return ImageRequest(  # type: ignore[call-arg, unused-ignore]
            prompt=self.prompt, model=self.model, params=params, id=item_id, task_id=task_id
        )


@attrs.frozen(kw_only=True, slots=True)
class BadLine:
    """An input record that cannot become a request, reported by line number."""

    line: int
    index: int
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


def open_source(source: str) -> IO[bytes]:
    """The prompts source as a binary stream, opened once (``-`` is standard input)."""
    if source == "-":
        return sys.stdin.buffer
    return open(source, "rb")  # the caller closes it


@attrs.define
class PromptReader:
    """Turns a prompts source into items and bad lines, one pass, flat memory.

    ``model`` and ``params`` are the command line's defaults (a line's own win);
    ``allow_local_files`` lets lines name local image files (read and uploaded).
    """

    registry: Registry
    model: str | None = None
    params: Mapping[str, Any] = attrs.Factory(dict)
    allow_local_files: bool = False
    _adapters: dict[str, tuple[ProviderAdapter, str]] = attrs.Factory(dict)
    _checked: dict[tuple[str, str], str | None] = attrs.Factory(dict)

    def read(self, stream: IO[bytes], fmt: str | None = None) -> Iterator[PromptItem | BadLine]:
        """Every non-blank record of ``stream`` in order; ``fmt`` None sniffs text or JSONL."""
        if fmt == "csv":
            yield from self._read_csv(stream)
            return
        index = 0
        for number, raw in enumerate(stream, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not raw.strip():
                continue
            if fmt is None:
                fmt = "jsonl" if raw.lstrip().startswith(b"{") else "text"
            try:
                yield self._item(number, index, self._parse_line(raw, fmt))
            except (InvalidRequestError, ValueError) as exc:
                yield BadLine(line=number, index=index, message=_message(exc))
            index += 1

    @staticmethod
    def _parse_line(raw: bytes, fmt: str) -> ImageRequest:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
            ) from None
        if fmt == "text":
            return ImageRequest(prompt=text.strip())
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("each JSONL line must be an object")
        return request_from_mapping(data)

    def _read_csv(self, stream: IO[bytes]) -> Iterator[PromptItem | BadLine]:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        columns = {name.strip(): k for k, name in enumerate(header)}
        if "prompt" not in columns:
            raise InvalidRequestError("the CSV input needs a 'prompt' column in its first line")
        index, line = 0, reader.line_num + 1
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
                yield BadLine(line=line, index=index, message=f"CSV: {exc}")
                index, line = index + 1, reader.line_num + 1
                continue
            if row is None:
                return
            if row and any(field.strip() for field in row):
                try:
                    yield self._item(line, index, _csv_request(row, columns))
                except (InvalidRequestError, ValueError) as exc:
                    yield BadLine(line=line, index=index, message=_message(exc))
                index += 1
            line = reader.line_num + 1

    def _item(self, line: int, index: int, request: ImageRequest) -> PromptItem:
        if not request.prompt.strip():
            raise InvalidRequestError("empty prompt")
        model_name = request.model or self.model
        if model_name is None:
            raise InvalidRequestError("no model: give -m or a 'model' on the line")
        adapter, path = self._resolve(model_name)
        params = {**self.params, **request.params} if request.params else dict(self.params)
        digests = self._image_digests(adapter, params)
        params_json = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self._validate(adapter, path, request.prompt, params, params_json)
        material = "\x00".join((path, request.prompt, params_json, *digests))
        try:
            fingerprint = hashlib.sha256(material.encode("utf-8")).hexdigest()
            if request.id is not None:
                request.id.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(_unencodable(exc)) from None
        return PromptItem(
            line=line,
            index=index,
            explicit_id=request.id,
            fingerprint=fingerprint,
            model=path,
            prompt=request.prompt,
            params_json=params_json,
        )

    def _resolve(self, model: str) -> tuple[ProviderAdapter, str]:
        found = self._adapters.get(model)
        if found is None:
            found = self._adapters[model] = self.registry.resolve(model)
        return found

    def _validate(
        self,
        adapter: ProviderAdapter,
        path: str,
        prompt: str,
        params: Mapping[str, Any],
        params_json: str,
    ) -> None:
        """Validate the parameters once per distinct (model, parameters); adapters check
        nothing of the prompt beyond it being non-empty, which parsing already ensured."""
        key = (path, params_json)
        if key not in self._checked:
            if len(self._checked) >= _CHECK_CACHE:
                self._checked.clear()
            try:
                adapter.build_request(path, prompt, params)
            except InvalidRequestError as exc:
                self._checked[key] = str(exc)
            else:
                self._checked[key] = None
        error = self._checked[key]
        if error is not None:
            raise InvalidRequestError(error)

    def _image_digests(self, adapter: ProviderAdapter, params: Mapping[str, Any]) -> list[str]:
        """SHA-256 of every local image file the item would upload; refused unless allowed."""
        digests: list[str] = []
        for name in adapter.image_params:
            value = params.get(name)
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str) or item.startswith(_WIRE_READY):
                    continue
                if not self.allow_local_files:
                    raise InvalidRequestError(
                        f"{name!r} names a local file ({item!r}); prompt files may read local"
                        " files only with --allow-local-files",
                        field=name,
                    )
                digests.append(_file_digest(item))
        return digests


def _csv_request(row: list[str], columns: Mapping[str, int]) -> ImageRequest:
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


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read input image {path!r}: {exc.strerror}") from None
    return digest.hexdigest()


def _unencodable(exc: UnicodeEncodeError) -> str:
    char = exc.object[exc.start]
    if "\udc80" <= char <= "\udcff":  # how an undecodable CSV byte arrives (surrogateescape)
        return f"not UTF-8: byte 0x{ord(char) - 0xDC00:02x}"
    return f"lone surrogate \\u{ord(char):04x} (text must be valid Unicode)"


def _message(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"bad JSON: {exc.msg} at column {exc.colno}"
    return str(exc)
