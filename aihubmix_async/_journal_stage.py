"""Staging: the input streamed once into a private staging table, checked, then planned.

Identity: an explicit id is kept. A line without one gets ``<16 hex of its content digest>``
(prompt, the line's own model and parameters, digests of its images), plus ``-2``, ``-3`` for the
2nd, 3rd identical line. Inserting or removing other lines, or changing ``-m``/``--param``, never
changes an item's id; the *fingerprint* (resolved model path, prompt, merged canonical
parameters, image digests) tells whether an item with that id changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._batch import ImageRequest
from ._errors import InvalidRequestError
from ._journal_files import safe_name
from ._journal_match import attach, match
from ._journal_types import ChangedItem, StageReport
from ._registry import Registry

__all__ = ["ChangedItem", "StageReport", "Stager", "bare_identity"]

_CHUNK = 4096
# A fingerprint: 24 hex of the line's content digest + 8 of the (model path, parameters) digest,
# 128 bits in all; short, as it is sorted and compared a million times at a resume.
_KEY = 24
_SUFFIX = 8
_LONG = 256  # strings longer than this (inline images) enter fingerprints as a digest
_URL = ("https://", "http://")
_sha256 = hashlib.sha256
_SURROGATE = "text that is not valid Unicode (a lone surrogate such as \\ud800)"


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, _size: int, _mtime_ns: int) -> str:
    """The content digest of a local image file (cached while its size and mtime hold: those two
    arguments are only part of the cache key).
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canon(value: Any, images: Mapping[str, str], key: str | None = None) -> Any:
    """Parameters as they enter a fingerprint: long strings and image inputs by digest."""
    if isinstance(value, dict):
        return {k: _canon(v, images, k) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canon(v, images, key) for v in value]
    if isinstance(value, str):
        if key in images and not value.startswith(_URL) and not value.startswith("data:"):
            try:  # a local file (the CLI allows them only on request): by its bytes
                info = Path(value).stat()
                return "file:" + _file_digest(value, info.st_size, info.st_mtime_ns)
            except OSError:
                return f"file:{value}"  # unreadable: the generation will say so
        if len(value) > _LONG:
            return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _under(path: str, images: Mapping[str, str], params: Mapping[str, Any]) -> tuple[str, str]:
    """(fingerprint suffix, stored parameter JSON) of merged ``params`` under ``path``."""
    canon = _dumps(_canon(params, images))
    suffix = hashlib.sha256(f"{path}\0{canon}".encode()).hexdigest()[:_SUFFIX]
    return suffix, _dumps(params)


def bare_identity(prompt: str, model: str, params: Mapping[str, Any] | None = None,
                  registry: Registry | None = None) -> tuple[str, str, str, str]:  # fmt: skip
    """(default id, fingerprint, model path, parameter JSON) that staging gives a text line
    ``prompt`` under ``-m model`` and ``--param`` ``params`` (its first occurrence): for
    tools and benchmarks that build a journal directly.
    """
    adapter, path = (registry or Registry.default()).resolve(model)
    suffix, params_json = _under(path, adapter.image_params, params or {})
    key = hashlib.sha256(prompt.encode() + b"\0\0{}").hexdigest()
    return key[:16], key[:_KEY] + suffix, path, params_json


_BARE = b"\0\0{}"  # a bare line's own model ("") and parameters ("{}") in its identity digest
_NO_MODEL = "no model: give -m or a 'model' on the line"
# Bound values are only str and int: SQLite's module adapts anything else (None, bool) with
# attribute lookups per value, which a million rows feel. Bare rows leave the NULL columns out.
_BARE_ROW = "INSERT INTO staged(line, stem_key, fp, mine, prompt) VALUES (?, ?, ?, ?, ?)"
_ID_ROW = "INSERT INTO staged(line, stem_key, fp, mine, prompt, id, stem) VALUES (?,?,?,?,?,?,?)"
_FULL_ROW = "INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


class Stager:
    """Feed every usable input line to :meth:`add` (one pass), then call :meth:`finish`."""

    def __init__(self, db: sqlite3.Connection, *, model: str | None, params: Mapping[str, Any],
                 shard: tuple[int, int], registry: Registry) -> None:  # fmt: skip
        self._db = db
        self._model = model
        self._params = dict(params)
        self._shard = shard
        self._sharded = shard[1] > 1
        self._registry = registry
        self._resolved: dict[str, tuple[str, Mapping[str, str]]] = {}
        self._default_cache: dict[str, tuple[str, str]] = {}
        # Rows waiting for the next executemany, by shape (see the _ROW statements).
        self._rows: dict[str, list[tuple[Any, ...]]] = {_BARE_ROW: [], _ID_ROW: [], _FULL_ROW: []}
        self._bare_rows = self._rows[_BARE_ROW]
        self._waiting = self._count = 0
        self._bare: tuple[str, str, str] | None = None
        if model is not None:  # unknown: InvalidRequestError now, before the first line
            path, images = self._resolve(model)
            suffix, params_json = self._defaults(path, images)
            self._bare = (suffix, path, params_json)
        attach(db, *(self._bare[1:] if self._bare else (None, None)))

    def _resolve(self, model: str) -> tuple[str, Mapping[str, str]]:
        found = self._resolved.get(model)
        if found is None:
            adapter, path = self._registry.resolve(model)  # InvalidRequestError if unknown
            found = self._resolved[model] = (path, adapter.image_params)
        return found

    def _defaults(self, path: str, images: Mapping[str, str]) -> tuple[str, str]:
        found = self._default_cache.get(path)
        if found is None:
            found = self._default_cache[path] = _under(path, images, self._params)
        return found

    def _keyed(self, request: ImageRequest, prompt: bytes) -> tuple[str, str, str, str]:
        """(identity, fingerprint suffix, model path, parameter JSON) of a line that names its
        own model or parameters.
        """
        model = request.model or self._model
        if model is None:
            raise InvalidRequestError(_NO_MODEL, field="model")
        path, images = self._resolve(model)
        own_path = self._resolve(request.model)[0] if request.model else ""
        if request.params:
            own = _dumps(_canon(dict(request.params), images))
            suffix, params = _under(path, images, {**self._params, **request.params})
        else:
            own = "{}"
            suffix, params = self._defaults(path, images)
        key = hashlib.sha256(b"\0".join((prompt, own_path.encode(), own.encode()))).hexdigest()
        return key, suffix, path, params

    def _mine(self, key: str, item_id: str | None = None) -> int:
        """1 if the line belongs to this run's shard (by its id, else its content), else 0."""
        if not self._sharded:
            return 1
        index, count = self._shard
        spread = int(key[:8], 16) if item_id is None else zlib.crc32(item_id.encode())
        return 1 if spread % count == index else 0

    def add(self, line: int, request: ImageRequest) -> None:
        """Stage one input line (``line`` numbers must be distinct and increasing). The request
        is as read from the line: its own model, parameters and id (or None). Raises
        InvalidRequestError for a line that cannot be an item (no or unknown model, text that
        cannot be stored such as a lone surrogate): report it as a bad line.

        The fingerprint is the identity digest (prompt, the line's own model and parameters)
        followed by a digest of the resolved model path and the merged canonical parameters.
        """
        item_id = request.id
        if request.model is None and not request.params:
            if item_id is None:
                self.add_prompt(line, request.prompt)
                return
            if self._bare is not None:  # an id on a bare prompt: the run's defaults
                key = self._bare_key(request.prompt, item_id)
                stem = safe_name(item_id)
                fp = key[:_KEY] + self._bare[0]
                mine = self._mine(key, item_id)
                self._put(_ID_ROW, (line, stem.lower(), fp, mine, request.prompt, item_id, stem))
                return
        try:
            if item_id is not None:
                item_id.encode()
            key, suffix, path, params = self._keyed(request, request.prompt.encode())
        except UnicodeEncodeError:
            raise InvalidRequestError(_SURROGATE) from None
        fp = key[:_KEY] + suffix
        row: tuple[Any, ...]
        if item_id is None:
            row = (line, key[:16], fp, self._mine(key), request.prompt, None, None, path, params)
        else:
            stem = safe_name(item_id)
            row = (line, stem.lower(), fp, self._mine(key, item_id), request.prompt, item_id,
                   stem, path, params)  # fmt: skip
        self._put(_FULL_ROW, row)

    def _bare_key(self, prompt: str, item_id: str | None = None) -> str:
        try:
            if item_id is not None:
                item_id.encode()
            return _sha256(prompt.encode() + _BARE).hexdigest()
        except UnicodeEncodeError:
            raise InvalidRequestError(_SURROGATE) from None

    def add_prompt(self, line: int, prompt: str) -> None:
        """Stage a bare prompt (a text line: no id, model or parameters of its own) under the
        run's defaults; as :meth:`add`, without a request object (the bulk case, kept lean).
        """
        bare = self._bare
        if bare is None:
            raise InvalidRequestError(_NO_MODEL, field="model")
        try:
            key = _sha256(prompt.encode() + _BARE).hexdigest()
        except UnicodeEncodeError:
            raise InvalidRequestError(_SURROGATE) from None
        rows = self._bare_rows
        rows.append((line, key[:16], key[:_KEY] + bare[0],
                     self._mine(key) if self._sharded else 1, prompt))  # fmt: skip
        if len(rows) >= _CHUNK:
            self._flush()

    def _put(self, sql: str, row: tuple[Any, ...]) -> None:
        self._rows[sql].append(row)
        self._waiting += 1
        if self._waiting >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        db = self._db
        for sql, rows in self._rows.items():
            if rows:
                if not db.in_transaction:  # one transaction for all of staging, in the
                    db.execute("BEGIN")  # stage schema only: it locks nothing in the journal
                db.executemany(sql, rows)
                self._count += len(rows)
                rows.clear()
        self._waiting = 0

    def finish(self, *, examples: int = 5) -> StageReport:
        """Number repeated lines, find collisions and compare with the journal. Writes only
        the stage schema: safe on a read-only journal (``--dry-run``).
        """
        self._flush()
        db = self._db
        if db.in_transaction:
            db.execute("COMMIT")
        mine = self._count
        if self._sharded:
            (mine,) = db.execute("SELECT count(*) FROM staged WHERE mine").fetchone()
        return match(db, items=self._count, mine=mine, sharded=self._sharded, examples=examples)
