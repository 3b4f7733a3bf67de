"""File names and the files users read: images, ``metadata.jsonl``, ``errors.jsonl``.

Naming makes colliding files impossible by construction: an item's images are
``<stem><ext>``, ``<stem>~1<ext>``, ``<stem>~2<ext>`` ... where the stem comes from the item id
through :func:`safe_name`, whose alphabet has no ``~``. So the second image of ``x`` can never be
the first image of another item (``x-1`` is ``x-1.png``); two items collide only if their stems
are equal (ignoring case, for case-insensitive file systems), which the journal refuses up front.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._json import dumps, loads

__all__ = [
    "ERRORS",
    "METADATA",
    "export_errors",
    "export_metadata",
    "file_name",
    "metadata_rows",
    "safe_name",
    "sync_files",
    "write_file",
]

METADATA = "metadata.jsonl"
ERRORS = "errors.jsonl"
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: File mode before the umask: files get the umask's permissions, like any other tool's output.
_MODE = 0o666


def safe_name(item_id: str) -> str:
    """A file stem from an id that cannot leave the folder: no separators, ``..``, NUL, ``~``
    or reserved device names. A changed id gets a short hash so distinct ids stay distinct.
    """
    stem = _UNSAFE.sub("_", item_id).strip("._")[:100]
    if stem.lower().split(".")[0] in _RESERVED:  # Windows devices, whatever the extension
        stem = f"_{stem}"
    if not stem or stem != item_id:
        raw = item_id.encode("utf-8", "surrogatepass")
        digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:8]  # a name, not a secret
        stem = f"{stem or 'item'}-{digest}"
    return stem


def file_name(stem: str, index: int, extension: str) -> str:
    """The file name of an item's ``index``-th image (``extension`` with its dot)."""
    return f"{stem}{extension}" if index == 0 else f"{stem}~{index}{extension}"


def stem_of(name: str) -> str:
    """The stem a file name was made from (inverse of :func:`file_name`)."""
    base = name.rsplit(".", 1)[0] if "." in name else name
    return base.split("~", 1)[0]


def write_file(path: str | Path, data: bytes) -> None:
    """Create ``path`` with the umask's permissions (see :func:`sync_files` for durability)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _MODE)
    try:
        view = memoryview(data)
        while view:  # a nearly full disk can take part of a write: finish it, or raise
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)  # noqa: PTH108  (a str or a Path: the writer passes str)
        raise
    os.close(fd)


def _load_syncfs() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # not Linux: fsync file by file
        return None


_syncfs = _load_syncfs()


def sync_files(folder: Path, paths: Sequence[str | Path]) -> None:
    """Make the data of ``paths`` (all in ``folder``'s file system) durable: one ``syncfs``
    for the whole group on Linux instead of one fsync per file; fsync each elsewhere.
    """
    if _syncfs is not None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(folder)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_lines(path: Path, payload: bytes) -> None:
    """Append whole lines in one go; on failure (full disk) cut the file back to where it was,
    so a reader never sees half a line. The file is re-exported from the journal anyway.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _MODE)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


# --- rows -------------------------------------------------------------------------------------

_ITEM_COLUMNS = (
    "id, line, prompt, model, params, files, request_id, task_id, elapsed, attempts, usage"
)


def metadata_rows(row: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    """The ``metadata.jsonl`` lines of one done item (columns as in ``_ITEM_COLUMNS``)."""
    item_id, line, prompt, model, params, files, request_id, task_id, elapsed, attempts, usage = row
    tokens = loads(usage) if usage else {}
    for k, (name, mime_type) in enumerate(loads(files)):
        yield {
            "file_name": name,
            "id": item_id,
            "line": line,
            "prompt": prompt,
            "model": model,
            "params": params,
            "image_index": k,
            "mime_type": mime_type,
            "request_id": request_id,
            "task_id": task_id,
            "elapsed": None if elapsed is None else round(elapsed, 4),
            "attempts": attempts,
            "input_tokens": tokens.get("input_tokens"),
            "output_tokens": tokens.get("output_tokens"),
            "total_tokens": tokens.get("total_tokens"),
        }


_ERROR_COLUMNS = (
    "id, line, prompt, model, error_type, error_message, status_code, request_id, task_id,"
    " attempts, retryable"
)


def error_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """The ``errors.jsonl`` line of one failed item (columns as in ``_ERROR_COLUMNS``)."""
    keys = ("id", "line", "prompt", "model", "error", "message", "status_code", "request_id",
            "task_id", "attempts", "retryable")  # fmt: skip
    record = dict(zip(keys, row, strict=True))
    record["retryable"] = bool(record["retryable"])
    return record


def dump_line(record: dict[str, Any]) -> bytes:
    return dumps(record) + b"\n"  # orjson when installed: a line costs a few microseconds


def _export(path: Path, rows: Iterator[bytes], scratch: Path) -> None:
    """Write ``path`` whole under a temporary name, then rename: readers see old or new."""
    # In the run's own temporary folder (same file system; cleaned by recovery), under a name
    # no concurrent export (another shard, in this process or not) can share.
    tmp = scratch / f"{path.name}.{secrets.token_hex(8)}.export"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _MODE)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as handle:
            for chunk in rows:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _chunks(db: sqlite3.Connection, sql: str, render: Any) -> Iterator[bytes]:
    cursor = db.execute(sql)
    while rows := cursor.fetchmany(2048):
        yield b"".join(render(row) for row in rows)


def export_metadata(db: sqlite3.Connection, out: Path, scratch: Path) -> None:
    """Rewrite ``metadata.jsonl`` from the journal's done items, in line order, streamed."""
    sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE state = 'done' ORDER BY line, id"  # noqa: S608  (fixed columns)

    def render(row: tuple[Any, ...]) -> bytes:
        return b"".join(dump_line(record) for record in metadata_rows(row))

    _export(out / METADATA, _chunks(db, sql, render), scratch)


def export_errors(db: sqlite3.Connection, out: Path, scratch: Path) -> None:
    """Rewrite ``errors.jsonl``: the current failures only (a later success removes a line)."""
    sql = f"SELECT {_ERROR_COLUMNS} FROM items WHERE state = 'failed' ORDER BY line, id"  # noqa: S608  (fixed columns)
    _export(out / ERRORS, _chunks(db, sql, lambda row: dump_line(error_row(row))), scratch)
