"""``aihubmix-async gallery DIR``: a static HTML contact sheet of a batch output folder.

Reads ``metadata.jsonl`` (one line per image) and ``errors.jsonl`` (one per failed item); a
folder with neither shows its image files. Writes ``DIR/gallery.html``, the data as a script
(``DIR/.gallery/data.js``, loaded by a ``<script>`` tag so the page works from ``file://``)
and, with Pillow, thumbnails made once and kept in ``DIR/.gallery/thumbs``. Without Pillow the
page shows the original images scaled by the browser. The page renders one page of cards at a
time, so it stays fast at 100,000 items, and loads nothing from the network.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs

from ._files import write_atomic
from ._gallery_folder import MAX_LINE, Folder, GalleryError, open_regular, read_jsonl, safe_relative
from ._imageinfo import image_size
from ._journal_files import ERRORS, METADATA
from ._provenance import not_secret, scrub_params

__all__ = ["GalleryError", "GalleryReport", "build_gallery"]

PAGE = "gallery.html"
FOLDER = ".gallery"
THUMB_SIDE = 256
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Characters of a prompt, parameters or message kept for the page (a card shows three lines).
MAX_TEXT = 2000
# Columns of one item in data.js (arrays, not objects: 100,000 items stay a few MB). ``file``
# and ``thumb`` are URLs relative to the page (percent-encoded); ``thumb`` is empty when the
# image could not be thumbnailed (the page shows no preview rather than a bomb or garbage).
COLUMNS = ("file", "thumb", "id", "prompt", "model", "params", "status", "error", "message",
           "cost", "request_id")  # fmt: skip


@attrs.frozen
class GalleryReport:
    """What :func:`build_gallery` wrote: the page, how many images and failures it shows,
    thumbnails made now (others were kept from before), and why there are none if so.
    """

    page: Path
    images: int
    failures: int
    thumbnails_made: int
    note: str | None = None


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


# What scrub_params would change in a parameters text (a URL, inline data, a secret's name).
_SCRUBBED = re.compile(r"://|data:|key|token|secret|passw|auth|credential|cookie|signature"
                       r"|bearer|basic|session|\\u", re.IGNORECASE)  # fmt: skip


def _params(value: Any) -> str:
    """Parameters as the page shows them: scrubbed like provenance (the metadata keeps them as
    sent: a signed image URL, credentials and all).
    """
    if isinstance(value, str):
        if len(value) <= MAX_TEXT and not _SCRUBBED.search(value):
            return "" if value in ("{}", "null") else value  # nothing to scrub: the common case
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    text = _text(scrub_params(value))
    return "" if text in ("{}", "null") else text


def _rows(folder: Folder) -> list[dict[str, Any]]:
    root = folder.root
    rows: list[dict[str, Any]] = []
    # The image-folder layout keeps its metadata in train/ (file names relative to it);
    # folders of earlier versions keep it at the top.
    split = root / "train" / METADATA
    metadata, prefix = (split, "train/") if split.exists() else (root / METADATA, "")
    for record in read_jsonl(metadata, folder.real, folder.lines):
        name = record.get("file_name")
        if safe_relative(name):
            rows.append({**record, "file": f"{prefix}{name}", "status": "ok"})
        else:
            folder.rows += 1
    rows.extend(
        {**record, "file": "", "status": "failed"}
        for record in read_jsonl(root / ERRORS, folder.real, folder.lines)
    )
    if not metadata.exists():
        rows[:0] = _parquet_rows(folder)  # the Parquet layout: images inside the shards
    if not rows and not metadata.exists() and not (root / ERRORS).exists():
        rows = [{"file": p.name, "status": "ok"} for p in sorted(root.iterdir())
                if p.suffix.lower() in _IMAGE_SUFFIXES]  # fmt: skip
    return folder.keep(rows)


def _parquet_rows(folder: Folder) -> list[dict[str, Any]]:
    """The rows of a Parquet-layout folder (``data/train-*.parquet``), each image copied once
    into ``.gallery/images/`` so the page (and the thumbnailer) can show it.
    """
    shards = sorted((folder.root / "data").glob("train-*.parquet"))
    if not shards:
        return []
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional: the 'parquet' extra
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise GalleryError(
            "this folder holds Parquet shards: reading their images needs pyarrow"
            " (pip install 'aihubmix-async[parquet]')"
        ) from None
    rows: list[dict[str, Any]] = []
    for shard in shards:
        handle = open_regular(shard, folder.real)  # not a FIFO, not a link leading out
        if handle is None:
            continue
        try:
            with handle:
                records = pq.read_table(handle).to_pylist()
        except (pa.ArrowException, ValueError):  # not Parquet, cut short: skipped, counted
            folder.shards += 1
            continue
        rows.extend(row for record in records if (row := _copied(folder, shard, record)))
    return rows


def _copied(folder: Folder, shard: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """A shard's row with its image copied out (once) into ``.gallery/images/``; None when it
    has no image fit to copy.
    """
    image = record.pop("image", None)
    if not isinstance(image, dict) or not isinstance(data := image.get("bytes"), bytes):
        return None
    name = image.get("path")
    if not isinstance(name, str) or not safe_relative(name) or "/" in name:
        return None
    rel = f"{FOLDER}/images/{shard.stem}/{name}"
    target = folder.root / rel
    if not folder.within(target.parent, folder.root / FOLDER):
        return None
    if not target.exists():  # shards are never rewritten: copied once
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    return {**record, "file": rel, "status": "ok"}


MADE, KEPT, SKIPPED, MISSING = "made", "kept", "skipped", "missing"
# Errors that say nothing about an image: out of file descriptors, a full or read-only disk.
_NOT_THE_IMAGE = frozenset(
    (errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
)


def _too_big(source: Path, limit: int | None) -> bool:
    """Whether the header claims more pixels than Pillow decodes without a warning (checked
    before Pillow opens the file: a bomb is never decoded, not even in part).
    """
    with source.open("rb") as handle:
        head = handle.read(256 * 1024)
    size = image_size(head)
    return limit is not None and size is not None and size[0] * size[1] > limit


def _thumbnail(source: Path, target: Path) -> str:
    """Make ``target`` from ``source`` unless it is already newer: MADE, KEPT or SKIPPED (an
    image Pillow cannot or should not decode, a name the file system refuses).
    """
    from PIL import Image  # noqa: PLC0415 - optional: checked by the caller

    try:
        if target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
            return KEPT
    except OSError:
        pass
    try:
        if _too_big(source, Image.MAX_IMAGE_PIXELS):
            return SKIPPED
        with Image.open(source) as image:
            image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at a reduced scale
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            rgb = image.convert("RGB")
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=82)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, buffer.getvalue())  # a temporary name of its own: two galleries
    except FileNotFoundError:
        return MISSING  # named in the metadata, not (yet) written: a run still going
    except OSError as exc:
        if exc.errno in _NOT_THE_IMAGE:
            raise  # the machine's limits, not this image's fault: the gallery stops and says so
        return SKIPPED
    except Exception:  # noqa: BLE001 - any file at all: a bomb, garbage, a name too long
        return SKIPPED
    return MADE


def _make_thumbnails(folder: Folder, files: list[str]) -> tuple[dict[str, str], int, str | None]:
    """Thumbnail paths (relative to the page, "" for an image that has none) by file name, how
    many were made now, and a note when Pillow is missing.
    """
    try:
        import PIL  # noqa: F401, PLC0415 - only to learn whether thumbnails can be made
    except ImportError:
        return (
            {},
            0,
            (
                "Pillow is not installed: the gallery shows the original images scaled by the"
                " browser (pip install pillow for thumbnails)"
            ),
        )
    thumbs = folder.root / FOLDER / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    files = list(dict.fromkeys(files))  # one job per file: two threads never race on one
    all_jobs = jobs = [(folder.root / name, thumbs / f"{name}.jpg") for name in files]
    # A thumbnail is written only where it stays inside .gallery/thumbs (no planted symlink).
    jobs = [job for job in jobs if folder.within(job[1].parent, thumbs)]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        states = dict(zip(jobs, pool.map(lambda job: _thumbnail(*job), jobs), strict=True))
    done = [states.get(job, SKIPPED) for job in all_jobs]
    found = {name: "" if state in (SKIPPED, MISSING) else f"{FOLDER}/thumbs/{name}.jpg"
             for name, state in zip(files, done, strict=True)}  # fmt: skip
    skipped = done.count(SKIPPED)
    note = None
    if skipped:
        note = (
            f"{skipped} image{'s have' if skipped != 1 else ' has'} no thumbnail (not decodable,"
            " larger than Pillow's decompression-bomb limit, or a name too long)"
        )
    return found, done.count(MADE), note


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-/]*")


def _href(path: str) -> str:
    """A URL relative to the page: the name's bytes percent-encoded (any name, any bytes)."""
    if _PLAIN_NAME.fullmatch(path):
        return path
    return quote(os.fsencode(path), safe="/")


def _data_script(rows: list[dict[str, Any]], thumbs: dict[str, str] | None, title: str) -> str:
    items = []
    for row in rows:
        file = row.get("file", "")
        thumb = file if thumbs is None else thumbs.get(file, "")
        cost = row.get("cost")
        items.append([
            _href(file), _href(thumb), _text(row.get("id")), _text(row.get("prompt")),
            _text(row.get("model")), _params(row.get("params")), row["status"],
            _text(row.get("error")), _text(row.get("message")),
            cost if isinstance(cost, (int, float)) or cost is None else _text(cost),
            not_secret(_text(row.get("request_id"))),  # a server's echo may be the key
        ])  # fmt: skip
    payload = {"title": title, "columns": COLUMNS, "items": items}
    # ensure_ascii: the file is plain ASCII whatever the prompts hold (no encoding to guess).
    return "window.GALLERY = " + json.dumps(payload, ensure_ascii=True) + ";\n"


def _open_folder(folder: str | os.PathLike[str]) -> Folder:
    """The folder, refused with a message when the gallery cannot use it."""
    root = Path(folder)
    if not root.exists():
        raise GalleryError(f"{root}: no such folder")
    if not root.is_dir():
        raise GalleryError(f"{root}: not a folder (give the batch's output folder)")
    own = root / FOLDER
    if own.is_symlink():
        raise GalleryError(
            f"{own} is a symlink: the gallery writes only inside {root}; remove the link"
        )
    if own.exists() and not own.is_dir():
        raise GalleryError(f"{own} is not a folder: remove it and run the gallery again")
    return Folder(root)


def _notes(folder: Folder, thumbs_note: str | None) -> str | None:
    notes = [thumbs_note] if thumbs_note else []
    if lines := len(folder.lines):
        notes.append(
            f"{lines} metadata line{'s' if lines != 1 else ''} skipped (unreadable or longer"
            f" than {MAX_LINE // 2**20} MB)"
        )
    if folder.rows:
        notes.append(
            f"{folder.rows} rows skipped: their file is outside the folder or not a regular file"
            if folder.rows != 1
            else "1 row skipped: its file is outside the folder or not a regular file"
        )
    if folder.shards:
        notes.append(f"{folder.shards} Parquet shard(s) skipped: not readable as Parquet")
    return "; ".join(notes) or None


def build_gallery(folder: str | os.PathLike[str], *, thumbnails: bool = True) -> GalleryReport:
    """Write ``gallery.html`` (and its data and thumbnails) into a batch output folder.

    :raises GalleryError: the folder is missing, not a folder, or cannot be read or written
        (the message names the file and the reason).
    """
    root = Path(folder)
    try:
        opened = _open_folder(root)
        rows = _rows(opened)
        files = [row["file"] for row in rows if row["file"]]
        thumbs, made, note = _make_thumbnails(opened, files) if thumbnails else (None, 0, None)
        (root / FOLDER).mkdir(exist_ok=True)
        script = _data_script(rows, thumbs or None, root.name)
        write_atomic(root / FOLDER / "data.js", script.encode())
        page = resources.files("aihubmix_async").joinpath("_gallery_page.html").read_bytes()
        write_atomic(root / PAGE, page)
    except OSError as exc:  # unreadable metadata, a read-only or full folder
        where = exc.filename or root
        raise GalleryError(f"{where}: {exc.strerror or exc}") from exc
    failures = sum(1 for row in rows if row["status"] == "failed")
    return GalleryReport(root / PAGE, len(rows) - failures, failures, made, _notes(opened, note))
