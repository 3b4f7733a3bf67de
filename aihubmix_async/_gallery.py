"""``aihubmix-async gallery DIR``: a static HTML contact sheet of a batch output folder.

Reads ``metadata.jsonl`` (one line per image) and ``errors.jsonl`` (one per failed item); a
folder with neither shows its image files. Writes ``DIR/gallery.html``, the data as a script
(``DIR/.gallery/data.js``, loaded by a ``<script>`` tag so the page works from ``file://``)
and, with Pillow, thumbnails made once and kept in ``DIR/.gallery/thumbs``. Without Pillow the
page shows the original images scaled by the browser. The page renders one page of cards at a
time, so it stays fast at 100,000 items, and loads nothing from the network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from ._files import write_atomic
from ._journal_files import ERRORS, METADATA

__all__ = ["GalleryReport", "build_gallery"]

PAGE = "gallery.html"
FOLDER = ".gallery"
THUMB_SIDE = 256
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Columns of one item in data.js (arrays, not objects: 100,000 items stay a few MB).
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


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of a file being written: skip it
                if isinstance(record, dict):
                    yield record


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _params(value: Any) -> str:
    text = _text(value)
    return "" if text in ("{}", "null") else text


def _safe_relative(name: object) -> bool:
    """A metadata ``file_name`` the page may show: relative, forward slashes, no ``..``."""
    if not isinstance(name, str) or not name or "\\" in name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _rows(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # The image-folder layout keeps its metadata in train/ (file names relative to it);
    # folders of earlier versions keep it at the top.
    split = folder / "train" / METADATA
    metadata, prefix = (split, "train/") if split.exists() else (folder / METADATA, "")
    for record in _read_jsonl(metadata):
        name = record.get("file_name")
        if _safe_relative(name):
            rows.append({**record, "file": f"{prefix}{name}", "status": "ok"})
    rows.extend(
        {**record, "file": "", "status": "failed"} for record in _read_jsonl(folder / ERRORS)
    )
    if not metadata.exists():
        rows[:0] = _parquet_rows(folder)  # the Parquet layout: images inside the shards
    if not rows and not metadata.exists() and not (folder / ERRORS).exists():
        rows = [{"file": p.name, "status": "ok"} for p in sorted(folder.iterdir())
                if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()]  # fmt: skip
    return rows


def _parquet_rows(folder: Path) -> list[dict[str, Any]]:
    """The rows of a Parquet-layout folder (``data/train-*.parquet``), each image copied once
    into ``.gallery/images/`` so the page (and the thumbnailer) can show it.
    """
    shards = sorted((folder / "data").glob("train-*.parquet"))
    if not shards:
        return []
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional: the 'parquet' extra
    except ImportError:
        raise GalleryError(
            "this folder holds Parquet shards: reading their images needs pyarrow"
            " (pip install 'aihubmix-async[parquet]')"
        ) from None
    rows: list[dict[str, Any]] = []
    for shard in shards:
        for record in pq.read_table(shard).to_pylist():
            image = record.pop("image", None) or {}
            name = image.get("path")
            if not isinstance(name, str) or not _safe_relative(name) or "/" in name:
                continue
            if image.get("bytes") is None:
                continue
            rel = f"{FOLDER}/images/{shard.stem}/{name}"
            target = folder / rel
            if not target.exists():  # shards are never rewritten: copied once
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, image["bytes"])
            rows.append({**record, "file": rel, "status": "ok"})
    return rows


class GalleryError(Exception):
    """A folder the gallery cannot read, with what to do about it."""


def _thumbnail(source: Path, target: Path) -> bool:
    """Make ``target`` from ``source`` unless it is already newer; True if made now."""
    from PIL import Image  # noqa: PLC0415 - optional: checked by the caller

    try:
        if target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
            return False
    except FileNotFoundError:
        pass
    try:
        with Image.open(source) as image:
            image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at a reduced scale
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            rgb = image.convert("RGB")
    except (OSError, ValueError):
        return False  # missing or undecodable: the page falls back to the original
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    rgb.save(tmp, "JPEG", quality=82)
    tmp.replace(target)
    return True


def _make_thumbnails(folder: Path, files: list[str]) -> tuple[dict[str, str], int, str | None]:
    """Thumbnail paths (relative to the page) by file name, how many were made now, and a
    note when Pillow is missing.
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
    thumbs = folder / FOLDER / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    files = list(dict.fromkeys(files))  # one job per file: two threads never race on one
    jobs = [(folder / name, thumbs / f"{name}.jpg") for name in files]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        made = list(pool.map(lambda job: _thumbnail(*job), jobs))
    found = {name: f"{FOLDER}/thumbs/{name}.jpg" for (name, (_, t)) in zip(files, jobs,
             strict=True) if t.exists()}  # fmt: skip
    return found, sum(made), None


def _data_script(rows: list[dict[str, Any]], thumbs: dict[str, str], title: str) -> str:
    items = []
    for row in rows:
        file = row.get("file", "")
        cost = row.get("cost")
        items.append([
            file, thumbs.get(file, file), _text(row.get("id")), _text(row.get("prompt")),
            _text(row.get("model")), _params(row.get("params")), row["status"],
            _text(row.get("error")), _text(row.get("message")),
            cost if isinstance(cost, (int, float)) or cost is None else _text(cost),
            _text(row.get("request_id")),
        ])  # fmt: skip
    payload = {"title": title, "columns": COLUMNS, "items": items}
    # ensure_ascii: the file is plain ASCII whatever the prompts hold (no encoding to guess).
    return "window.GALLERY = " + json.dumps(payload, ensure_ascii=True) + ";\n"


def build_gallery(folder: str | os.PathLike[str], *, thumbnails: bool = True) -> GalleryReport:
    """Write ``gallery.html`` (and its data and thumbnails) into a batch output folder."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(2, "no such folder", str(root))
    rows = _rows(root)
    files = [row["file"] for row in rows if row["file"]]
    thumbs, made, note = _make_thumbnails(root, files) if thumbnails else ({}, 0, None)
    (root / FOLDER).mkdir(exist_ok=True)
    write_atomic(root / FOLDER / "data.js", _data_script(rows, thumbs, root.name).encode())
    page = resources.files("aihubmix_async").joinpath("_gallery_page.html").read_bytes()
    write_atomic(root / PAGE, page)
    failures = sum(1 for row in rows if row["status"] == "failed")
    return GalleryReport(root / PAGE, len(rows) - failures, failures, made, note)
