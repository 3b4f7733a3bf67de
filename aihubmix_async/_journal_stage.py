"""Staging: the input streamed once into a temporary table, checked, then planned.

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
from typing import Any, Literal

from ._batch import ImageRequest
from ._errors import InvalidRequestError
from ._journal_files import safe_name
from ._journal_types import ChangedItem, Conflict, StageReport
from ._registry import Registry

__all__ = ["ChangedItem", "StageReport", "Stager", "bare_identity"]

_CHUNK = 4096
# A fingerprint: 24 hex of the line's content digest + 8 of the (model path, parameters) digest,
# 128 bits in all; short, as it is sorted and compared a million times at a resume.
_KEY = 24
_SUFFIX = 8
_LONG = 256  # strings longer than this (inline images) enter fingerprints as a digest
_URL = ("https://", "http://")
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


_STAGED = """
CREATE TEMP TABLE staged(
    line INTEGER PRIMARY KEY, id TEXT NOT NULL, explicit INTEGER NOT NULL, stem TEXT NOT NULL,
    stem_key TEXT NOT NULL, fp TEXT NOT NULL, prompt TEXT NOT NULL, model TEXT NOT NULL,
    params TEXT NOT NULL, mine INTEGER NOT NULL)
"""


class Stager:
    """Feed every usable input line to :meth:`add` (one pass), then call :meth:`finish`."""

    def __init__(self, db: sqlite3.Connection, *, model: str | None, params: Mapping[str, Any],
                 shard: tuple[int, int], registry: Registry) -> None:  # fmt: skip
        self._db = db
        self._model = model
        self._params = dict(params)
        self._shard = shard
        self._registry = registry
        self._resolved: dict[str, tuple[str, Mapping[str, str]]] = {}
        self._rows: list[tuple[Any, ...]] = []
        self._count = self._mine = 0
        self._default_cache: dict[str, tuple[str, str]] = {}
        self._bare: tuple[str, str, str] | None = None
        if model is not None:  # unknown: InvalidRequestError now, before the first line
            path, images = self._resolve(model)
            suffix, params_json = self._defaults(path, images)
            self._bare = (suffix, path, params_json)
        db.execute("DROP TABLE IF EXISTS temp.staged")
        db.execute("DROP TABLE IF EXISTS temp.todo")
        db.execute("DROP TABLE IF EXISTS temp.dups")
        db.execute("DROP TABLE IF EXISTS temp.undone")
        db.execute(_STAGED)

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
            raise InvalidRequestError("no model: give -m or a 'model' on the line", field="model")
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

    def add(self, line: int, request: ImageRequest) -> None:
        """Stage one input line (``line`` numbers must be distinct and increasing). The request
        is as read from the line: its own model, parameters and id (or None). Raises
        InvalidRequestError for a line that cannot be an item (no or unknown model, text that
        cannot be stored such as a lone surrogate): report it as a bad line.

        The fingerprint is the identity digest (prompt, the line's own model and parameters)
        followed by a digest of the resolved model path and the merged canonical parameters.
        """
        if request.model is None and not request.params and request.id is None:
            self.add_prompt(line, request.prompt)
            return
        item_id = request.id
        try:
            prompt = request.prompt.encode()
            if item_id is not None:
                item_id.encode()
            if request.model is None and not request.params and self._bare is not None:
                # The bulk case, kept lean: a bare prompt under the run's defaults.
                key = hashlib.sha256(prompt + b"\0\0{}").hexdigest()
                suffix, path, params = self._bare
            else:
                key, suffix, path, params = self._keyed(request, prompt)
        except UnicodeEncodeError:
            raise InvalidRequestError(_SURROGATE) from None
        index, count = self._shard
        if item_id is None:
            item_id = stem = stem_key = key[:16]
            mine = count == 1 or int(key[:8], 16) % count == index
        else:
            stem = safe_name(item_id)
            stem_key = stem.lower()
            mine = count == 1 or zlib.crc32(item_id.encode()) % count == index
        explicit = request.id is not None
        row = (line, item_id, explicit, stem, stem_key, key[:_KEY] + suffix, request.prompt, path,
               params, mine)  # fmt: skip
        self._rows.append(row)
        self._count += 1
        self._mine += mine
        if len(self._rows) >= _CHUNK:
            self._flush()

    def add_prompt(self, line: int, prompt: str) -> None:
        """Stage a bare prompt (a text line: no id, model or parameters of its own) under the
        run's defaults; as :meth:`add`, without a request object (the bulk case, kept lean).
        """
        if self._bare is None:
            raise InvalidRequestError("no model: give -m or a 'model' on the line", field="model")
        try:
            key = hashlib.sha256(prompt.encode() + b"\0\0{}").hexdigest()
        except UnicodeEncodeError:
            raise InvalidRequestError(_SURROGATE) from None
        index, count = self._shard
        item_id = key[:16]
        mine = count == 1 or int(key[:8], 16) % count == index
        suffix, path, params = self._bare
        self._rows.append((line, item_id, False, item_id, item_id, key[:_KEY] + suffix, prompt,
                           path, params, mine))  # fmt: skip
        self._count += 1
        self._mine += mine
        if len(self._rows) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            if not self._db.in_transaction:  # one transaction for all of staging: temporary
                self._db.execute("BEGIN")  # tables only, so it locks nothing in the journal
            self._db.executemany("INSERT INTO staged VALUES (?,?,?,?,?,?,?,?,?,?)", self._rows)
            self._rows = []

    def finish(self, *, examples: int = 5) -> StageReport:
        """Number repeated lines, find collisions and compare with the journal. Writes only
        temporary tables: safe on a read-only journal (``--dry-run``).
        """
        self._flush()
        db = self._db
        if db.in_transaction:
            db.execute("COMMIT")
        db.execute("CREATE INDEX temp.staged_key ON staged(stem_key, mine, explicit, id, fp)")
        _number_repeats(db)
        # Only keys that were repeated, or made by numbering repeats, can collide now.
        colliding = (
            "SELECT stem_key FROM staged WHERE stem_key IN (SELECT stem_key FROM dups)"
            " GROUP BY stem_key HAVING count(*) > 1"
        )
        groups = db.execute(colliding).fetchmany(10)
        (count,) = db.execute(f"SELECT count(*) FROM ({colliding})").fetchone()  # noqa: S608  (fixed)
        conflicts = []
        for (stem_key,) in groups:
            rows = db.execute(
                "SELECT line, id FROM staged WHERE stem_key = ? ORDER BY line LIMIT 20", (stem_key,)
            ).fetchall()
            same = len({r[1] for r in rows}) == 1
            kind: Literal["id", "file name"] = "id" if same else "file name"
            conflicts.append(Conflict(kind, rows[0][1], tuple(r[0] for r in rows)))
        db.execute(_UNDONE)
        db.execute(
            "INSERT INTO undone SELECT id, state FROM items"
            " WHERE state IN ('pending', 'submitted', 'failed')"
        )
        db.execute(_TODO)
        counts = dict(db.execute("SELECT k, count(*) FROM todo GROUP BY k").fetchall())
        clashes = db.execute(
            "SELECT t.line, s.id, t.other FROM todo t JOIN staged s USING (line)"
            " WHERE t.k = 'clash' ORDER BY t.line LIMIT 10"
        ).fetchall()
        for line, item_id, other in clashes:
            conflicts.append(Conflict("file name", item_id, (line,), other=other))
        changed = db.execute(
            "SELECT t.line, s.id FROM todo t JOIN staged s USING (line)"
            " WHERE t.k = 'changed-done' ORDER BY t.line LIMIT ?",
            (examples,),
        ).fetchall()
        matched = self._mine - counts.get("new", 0) - counts.get("clash", 0)
        absent = None
        if self._shard[1] == 1:
            (total,) = db.execute("SELECT count(*) FROM items").fetchone()
            absent = total - matched
        undone = sum(v for k, v in counts.items() if k not in ("new", "clash", "moved"))
        return StageReport(
            items=self._count,
            mine=self._mine,
            new=counts.get("new", 0),
            done=matched - undone,
            pending=counts.get("pending", 0) + counts.get("submitted", 0),
            tasks=counts.get("submitted", 0),
            failed=counts.get("failed", 0),
            changed=counts.get("changed-done", 0),
            changed_examples=tuple(ChangedItem(line, item_id) for line, item_id in changed),
            changed_unfinished=sum(
                counts.get(f"changed-{s}", 0) for s in ("pending", "submitted", "failed")
            ),
            absent=absent,
            conflicts=tuple(conflicts),
            conflict_count=count + counts.get("clash", 0),
        )


def _number_repeats(db: sqlite3.Connection) -> None:
    """The 2nd, 3rd ... identical line without an id gets ``-2``, ``-3`` (in line order).
    Leaves the table ``dups``: every key that was repeated or that numbering made.
    """
    db.execute("DROP TABLE IF EXISTS temp.dups")
    db.execute(
        "CREATE TEMP TABLE dups AS SELECT stem_key FROM staged GROUP BY stem_key"
        " HAVING count(*) > 1"
    )
    db.execute(
        "CREATE TEMP TABLE repeats AS SELECT line, n FROM (SELECT line, row_number() OVER"
        " (PARTITION BY stem_key ORDER BY line) AS n FROM staged WHERE explicit = 0 AND"
        " stem_key IN (SELECT stem_key FROM dups)) WHERE n > 1"
    )
    db.execute(
        "UPDATE staged SET id = id || '-' || r.n, stem = stem || '-' || r.n,"
        " stem_key = stem_key || '-' || r.n FROM repeats AS r WHERE staged.line = r.line"
    )
    db.execute(
        "INSERT INTO dups SELECT stem_key FROM staged WHERE line IN (SELECT line FROM repeats)"
    )
    db.execute("DROP TABLE temp.repeats")


# The rows this run must act on (everything but done-and-unchanged), classified in one pass.
# Items are matched on the file stem, so an id whose files would overwrite another item's is
# found in the same lookup ("clash"). Walking staged rows in stem order makes the lookups into
# the journal's index sequential: a million of them take a second, not several. That index
# holds no state (commits would rewrite it); an item's state comes from ``undone``, the items
# not done (few, usually), read through the state index.
_UNDONE = """
CREATE TEMP TABLE undone(id TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID
"""
_TODO = """
CREATE TEMP TABLE todo AS SELECT line, k, other FROM (
    SELECT s.line AS line, i.id AS other, CASE
        WHEN i.id IS NULL THEN 'new'
        WHEN i.id != s.id THEN 'clash'
        WHEN i.fp != s.fp THEN 'changed-' || coalesce(u.state, 'done')
        WHEN u.state IS NULL AND i.line != s.line THEN 'moved'
        ELSE coalesce(u.state, 'done') END AS k
    FROM staged s INDEXED BY staged_key LEFT JOIN items i ON i.stem_key = s.stem_key
    LEFT JOIN undone u ON u.id = i.id
    WHERE s.mine ORDER BY s.stem_key)
WHERE k != 'done'
"""
