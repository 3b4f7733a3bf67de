"""One writer per output folder (or per shard): ``fcntl.flock`` locks under ``.aihubmix/``.

Layout, all in the journal folder:

* ``setup.lock``   held (blocking, for milliseconds) while a process takes the locks below, so
  two processes never interleave their checks;
* ``run.lock``     exclusive for a whole run; shared by every shard run;
* ``shards-N.lock`` shared by the shard runs of an ``I/N`` split; a run of another split (``M``)
  is refused while any of them holds it, since its items would overlap;
* ``shard-N-I.lock`` exclusive for shard ``I`` of ``N``.

Locks are held for the life of the process (released by the kernel on exit, also on kill -9)
and taken non-blocking: a second writer learns at once who holds the folder.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the package imports, a journaled run refuses
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderLock", "FolderLockedError", "owner_tag"]


class FolderLockedError(Exception):
    """Another process writes this output folder (or this shard of it). Nothing was sent."""

    exit_code = 4

    def __init__(self, folder: Path, pid: int | None, what: str = "output folder") -> None:
        holder = f" (pid {pid})" if pid else ""
        super().__init__(
            f"{what} {str(folder)!r} is in use by another aihubmix-async process{holder};"
            " wait for it to finish or use another folder"
        )
        self.folder = folder
        self.pid = pid


def owner_tag(shard: tuple[int, int]) -> str:
    """The name of a run's own temporary folder: ``all`` or ``N-I`` for shard I of N."""
    index, count = shard
    return "all" if count == 1 else f"{count}-{index}"


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


class FolderLock:
    """The locks of one run on one folder; :meth:`acquire` or raise FolderLockedError."""

    def __init__(self, folder: Path, journal_dir: Path, shard: tuple[int, int]) -> None:
        self.folder = folder
        self.dir = journal_dir
        self.shard = shard
        self._fds: list[int] = []

    def _open(self, name: str) -> int:
        fd = os.open(self.dir / name, os.O_RDWR | os.O_CREAT, 0o644)
        self._fds.append(fd)
        return fd

    @staticmethod
    def _try(fd: int, mode: int) -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _stamp(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def _shard_holder(self) -> int | None:
        for path in sorted(self.dir.glob("shard-*.lock")):
            pid = _read_pid(path)
            if pid:
                return pid
        return None

    def acquire(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError("run journals need POSIX file locks (fcntl.flock)")
        setup = os.open(self.dir / "setup.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(setup, fcntl.LOCK_EX)  # held for a few syscalls by any process
            try:
                self._acquire()
            except BaseException:
                self.release()
                raise
        finally:
            os.close(setup)  # closing drops the setup lock

    def _acquire(self) -> None:
        index, count = self.shard
        run = self._open("run.lock")
        if count == 1:
            if not self._try(run, fcntl.LOCK_EX):
                pid = _read_pid(self.dir / "run.lock") or self._shard_holder()
                raise FolderLockedError(self.folder, pid)
            self._stamp(run)
            return
        if not self._try(run, fcntl.LOCK_SH):
            raise FolderLockedError(self.folder, _read_pid(self.dir / "run.lock"))
        for other in self.dir.glob("shards-*.lock"):
            if other.name == f"shards-{count}.lock":
                continue
            fd = os.open(other, os.O_RDWR)
            try:
                if not self._try(fd, fcntl.LOCK_EX):  # a run split another way is active
                    raise FolderLockedError(
                        self.folder, self._shard_holder(), f"output folder (split {other.stem})"
                    )
            finally:
                os.close(fd)
        if not self._try(self._open(f"shards-{count}.lock"), fcntl.LOCK_SH):  # pragma: no cover
            raise FolderLockedError(self.folder, None)
        mine = self._open(f"shard-{count}-{index}.lock")
        if not self._try(mine, fcntl.LOCK_EX):
            pid = _read_pid(self.dir / f"shard-{count}-{index}.lock")
            raise FolderLockedError(self.folder, pid, f"shard {index}/{count} of output folder")
        self._stamp(mine)

    def holds(self, tag: str) -> bool:
        """Whether the temporary folder ``tmp-<tag>`` is safe for this run to clean up: its
        owner cannot be running (it is this run, or its lock is free right now).
        """
        if tag == owner_tag(self.shard) or tag == "all":
            return True  # a whole run excludes every other run; a shard run excludes whole runs
        path = self.dir / f"shard-{tag}.lock"
        if not path.exists():
            return True
        fd = os.open(path, os.O_RDWR)
        try:
            return self._try(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)  # releases the probe lock at once

    def release(self) -> None:
        for fd in reversed(self._fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
