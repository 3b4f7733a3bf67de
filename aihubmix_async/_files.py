"""Files on disk: atomic writes (temporary name in the same folder, then rename)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["save_into", "write_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a temporary name in the same folder, then rename: never a partial file.
    The file gets the umask's permissions, like any other program's output.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_into(path: Path, data: bytes, name: str) -> Path:
    """Write ``data`` atomically to ``path``, or to ``path / name`` when ``path`` is a folder
    (parents are created). Blocking: call it in a worker thread from async code.
    """
    if path.is_dir():
        path = path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path
