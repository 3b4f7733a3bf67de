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
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._json import dumps, loads

__all__ = [
    "BUCKET_SIZE",
    "ERRORS",
    "METADATA",
    "SHARDS_DIR",
    "Layout",
    "export_errors",
    "export_metadata",
    "file_name",
    "metadata_records",
    "metadata_rows",
    "move_into_place",
    "resolve_layout",
    "safe_name",
    "sync_files",
    "write_atomic",
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


def metadata_rows(row: tuple[Any, ...], strip: str = "") -> Iterator[dict[str, Any]]:
    """The ``metadata.jsonl`` lines of one done item (columns as in ``_ITEM_COLUMNS``);
    ``strip``: the metadata file's folder, cut from the file paths.
    """
    *head, files, request_id, task_id, elapsed, attempts, usage = row
    yield from metadata_records(
        head, loads(files), (request_id, task_id, elapsed, attempts), loads(usage) if usage else {},
        strip,
    )  # fmt: skip


def metadata_records(
    head: Sequence[Any],
    names: Sequence[Sequence[str]],
    run: Sequence[Any],
    tokens: dict[str, Any],
    strip: str = "",
) -> Iterator[dict[str, Any]]:
    """:func:`metadata_rows` from values already parsed: ``head`` (id, line, prompt, model,
    params), ``names`` ((file, MIME type) pairs), ``run`` (request id, task id, elapsed,
    attempts) and ``tokens`` (the usage column's object).
    """
    item_id, line, prompt, model, params = head
    request_id, task_id, elapsed, attempts = run
    cost = tokens.get("cost")
    share = None if cost is None or not names else cost / len(names)  # rows sum to the item
    for k, (name, mime_type) in enumerate(names):
        yield {
            "file_name": name.removeprefix(strip),
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
            "cost": share,
            "cost_source": tokens.get("cost_source"),
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


def write_atomic(path: Path, rows: Iterator[bytes], scratch: Path) -> None:
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


def export_metadata(db: sqlite3.Connection, out: Path, scratch: Path,
                    layout: Layout | None = None) -> int:  # fmt: skip
    """Rewrite the metadata file from the journal's done items, in line order, streamed.
    How many rows (images) it lists.
    """
    layout = layout or Layout("flat")
    if layout.metadata is None:
        return 0
    sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE state = 'done' ORDER BY line, id"  # noqa: S608  (fixed columns)
    listed = 0

    def render(row: tuple[Any, ...]) -> bytes:
        nonlocal listed
        lines = [dump_line(record) for record in metadata_rows(row, layout.strip)]
        listed += len(lines)
        return b"".join(lines)

    target = out / layout.metadata
    target.parent.mkdir(exist_ok=True)
    write_atomic(target, _chunks(db, sql, render), scratch)
    return listed


def export_errors(db: sqlite3.Connection, out: Path, scratch: Path) -> None:
    """Rewrite ``errors.jsonl``: the current failures only (a later success removes a line)."""
    sql = f"SELECT {_ERROR_COLUMNS} FROM items WHERE state = 'failed' ORDER BY line, id"  # noqa: S608  (fixed columns)
    write_atomic(out / ERRORS, _chunks(db, sql, lambda row: dump_line(error_row(row))), scratch)


# --- layouts ----------------------------------------------------------------------------------

#: Image-folder layout: at most this many images per folder (the Hub's limit per folder).
#: Module level so a test can make it small.
BUCKET_SIZE = 10_000
#: The split folder: ``datasets`` takes a folder named ``train`` as the train split before it
#: looks at file names, so an id such as ``test-1`` cannot turn into a split of its own.
SPLIT_DIR = "train"
#: Parquet layout: images wait here (inside the journal folder) until a shard takes them.
STAGED_DIR = ".aihubmix/staged"
#: Parquet layout: the shards (``datasets`` reads ``data/train-*.parquet``).
SHARDS_DIR = "data"
LAYOUTS = ("imagefolder", "parquet")
_BUCKET_KEY = "layout:bucket"


@attrs.frozen
class Layout:
    """Where a folder's images and metadata live.

    ``imagefolder`` (the CLI's default): ``train/00000/<name>`` ... with at most
    :data:`BUCKET_SIZE` images a folder and ``train/metadata.jsonl``. ``flat``: every image and
    ``metadata.jsonl`` at the top (folders written before layouts existed stay so).
    ``parquet``: images staged in the journal folder until Parquet shards take them.
    """

    name: str

    @property
    def metadata(self) -> str | None:
        """The metadata file (relative to the folder); None when shards hold the metadata."""
        return {"imagefolder": f"{SPLIT_DIR}/{METADATA}", "flat": METADATA}.get(self.name)

    @property
    def strip(self) -> str:
        """What to cut from a file's path to make it relative to the metadata file."""
        return f"{SPLIT_DIR}/" if self.name == "imagefolder" else ""

    def place(self, db: sqlite3.Connection, files: dict[str, list[tuple[str, str]]]) -> None:
        """Give each new image (by bare file name) its path in the folder, in place. Called in
        the commit's transaction: the bucket counter is shared by every writer of the folder.
        """
        if self.name == "flat" or not files:
            return
        if self.name == "parquet":
            for names in files.values():
                names[:] = [(f"{STAGED_DIR}/{name}", mime) for name, mime in names]
            return
        row = db.execute("SELECT value FROM meta WHERE key = ?", (_BUCKET_KEY,)).fetchone()
        bucket, used = json.loads(row[0]) if row else (0, 0)
        for names in files.values():
            for k, (name, mime) in enumerate(names):
                if used >= BUCKET_SIZE:
                    bucket, used = bucket + 1, 0
                names[k] = (f"{SPLIT_DIR}/{bucket:05d}/{name}", mime)
                used += 1
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                   (_BUCKET_KEY, json.dumps([bucket, used])))  # fmt: skip


def resolve_layout(db: sqlite3.Connection, requested: str | None, *, write: bool) -> Layout:
    """The folder's layout: the one recorded, else ``requested`` (``flat`` if None), recorded
    by the first writer (two shard runs starting at once agree on one). A journal with items
    but no layout was written before layouts existed: flat. Another layout than the folder's
    is refused (``ValueError``), also before it holds items: a shard run of the split may be
    reading its input, and the folder would end with both layouts.
    """
    row = db.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
    if row is None and db.execute("SELECT 1 FROM items LIMIT 1").fetchone() is not None:
        stored = "flat"
    elif row is None:
        if not write:
            return Layout(requested or "flat")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('layout', ?)", (requested or "flat",))
        (stored,) = db.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
    else:
        stored = row[0]
    compatible = requested in (None, stored) or {requested, stored} == {"imagefolder", "flat"}
    if write and not compatible:
        raise ValueError(
            f"this folder holds a {'Parquet' if stored == 'parquet' else 'image-folder'} dataset;"
            f" pass --output-format {'parquet' if stored == 'parquet' else 'imagefolder'} to"
            " resume it, or write into a new folder"
        )
    return Layout(stored)


def move_into_place(out: Path, tmp: Path, files: dict[str, list[tuple[str, str]]]) -> None:
    """Rename committed images from their temporary names to their paths in the folder
    (str paths: no pathlib object per file on the commit path).
    """
    out_dir, tmp_dir = f"{out}{os.sep}", f"{tmp}{os.sep}"
    for names in files.values():
        for rel, _ in names:
            rename_part(f"{tmp_dir}{rel.rsplit('/', 1)[-1]}.part", out_dir + rel)


def rename_part(part: str | Path, final: str | Path) -> None:
    """Rename ``part`` to ``final``, making ``final``'s folder (a new bucket) if it is missing.
    str paths on the commit path: no pathlib object per file.
    """
    try:
        os.replace(part, final)  # noqa: PTH105
    except FileNotFoundError:
        if not os.path.exists(part):  # noqa: PTH110
            raise
        os.makedirs(os.path.dirname(final), exist_ok=True)  # noqa: PTH103, PTH120
        os.replace(part, final)  # noqa: PTH105
