"""Reading a gallery's folder safely: which files the page may show (regular files inside the
folder, never a FIFO, a device or a symlink leading out) and its JSON-lines metadata, line by
line with bad, torn or overlong lines skipped.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["MAX_LINE", "Folder", "GalleryError", "open_regular", "read_jsonl", "safe_relative"]

# A metadata line longer than this is none the SDK wrote: skipped without being held whole.
MAX_LINE = 8 * 1024 * 1024


class GalleryError(Exception):
    """A folder the gallery cannot read, with what to do about it."""


def open_regular(path: Path, inside: Path) -> BinaryIO | None:
    """``path`` opened for reading, None when missing; GalleryError unless it is a regular
    file inside the folder ``inside`` (a FIFO blocks, /dev/zero never ends a line).
    """
    if not path.resolve().is_relative_to(inside):
        raise GalleryError(f"{path} is a symlink leading out of the folder")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device
        os.close(fd)
        raise GalleryError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def read_jsonl(path: Path, inside: Path, skipped: list[str]) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file. A torn last line (a file being written), a line of
    bad bytes, of something else than an object, or longer than :data:`MAX_LINE` is skipped
    and counted in ``skipped``; an overlong line is never held whole.
    """
    handle = open_regular(path, inside)
    if handle is None:
        return
    with handle:
        while line := handle.readline(MAX_LINE):
            if len(line) == MAX_LINE and not line.endswith(b"\n"):
                while (rest := handle.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                skipped.append("overlong")
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode())
            except (ValueError, RecursionError):  # torn, bad UTF-8, nested beyond reason
                skipped.append("unreadable")
                continue
            if isinstance(record, dict):
                yield record


def safe_relative(name: object) -> bool:
    """A metadata ``file_name`` the page may show: relative, forward slashes, no ``..``, and a
    name a file can have (no NUL, no lone surrogate but the escapes of undecodable bytes).
    """
    if not isinstance(name, str) or not name or "\\" in name or name.startswith("/"):
        return False
    try:
        if "\x00" in name or not (name.isascii() or os.fsencode(name)):
            return False
    except UnicodeEncodeError:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


class Folder:
    """The folder being shown: which of its files the page may show and thumbnail (regular
    files inside it, through symlinks only while they stay inside), and what was skipped.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real = root.resolve()
        self.lines: list[str] = []  # metadata lines skipped, one word each
        self.rows = 0  # rows naming a file outside the folder, or no regular file
        self.shards = 0  # Parquet shards that do not parse
        self._base = os.fspath(root)
        # Caches: 100,000 rows share a few folders (and often files).
        self._dirs: dict[tuple[Path, Path | None], bool] = {}
        self._reldirs: dict[str, bool] = {}
        self._shown: dict[str, bool] = {}

    def within(self, directory: Path, base: Path | None = None) -> bool:
        """Whether ``directory`` (existing or not) resolves inside the folder (and ``base``)."""
        known = self._dirs.get((directory, base))
        if known is None:
            real = directory.resolve()
            known = real.is_relative_to(self.real) and (
                base is None or real.is_relative_to(base.resolve())
            )
            self._dirs[directory, base] = known
        return known

    def _dir_inside(self, reldir: str) -> bool:
        known = self._reldirs.get(reldir)
        if known is None:
            known = self.within(self.root / reldir)
            self._reldirs[reldir] = known
        return known

    def shows(self, rel: str) -> bool:
        """A regular file inside the folder, or one not (yet) there: a run still writing.
        Never a FIFO (opening one blocks), a device, or a symlink leading out.
        """
        known = self._shown.get(rel)
        if known is None:
            known = self._shown[rel] = self._check(rel)
        return known

    def _check(self, rel: str) -> bool:
        path = os.path.join(self._base, rel)  # noqa: PTH118 - 100,000 Path objects cost seconds
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return self._dir_inside(rel.rpartition("/")[0])
        except OSError:  # a name too long, a folder not searchable
            return False
        if stat.S_ISLNK(mode):
            try:
                real = Path(path).resolve(strict=True)
                return real.is_relative_to(self.real) and stat.S_ISREG(real.stat().st_mode)
            except (OSError, RuntimeError):  # dangling, looping
                return False
        return stat.S_ISREG(mode) and self._dir_inside(rel.rpartition("/")[0])

    def keep(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [row for row in rows if not row["file"] or self.shows(row["file"])]
        self.rows += len(rows) - len(kept)
        return kept
