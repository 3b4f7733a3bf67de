"""The dataset card: ``README.md`` in the output folder, written from the run journal.

YAML front matter the Hub and ``datasets`` read (``configs`` with ``data_files``, the features,
``size_categories``, ``task_categories``, tags), then prose: models, parameters, counts, dates
and the tool that generated the data. Rewritten at the end of every run and resume. The YAML is
written by hand (JSON scalars are YAML scalars): the core install needs no YAML library.

No ``splits`` with example counts: ``datasets`` checks those against the data, and a card left
by a crashed run (regenerated only by the resume) would then stop the folder from loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from ._config import VERSION
from ._journal_files import ERRORS, Layout, write_atomic

__all__ = ["CARD", "IMAGEFOLDER_FEATURES", "PARQUET_FEATURES", "render_card", "write_card"]

logger = logging.getLogger("aihubmix_async.journal")

CARD = "README.md"
#: Digests of the last cards written (JSON list): a crash between recording one and writing it,
#: or shard runs writing the card at once, leave one of these on disk.
_DIGESTS, _KEPT = "card:sha256", 8
HOMEPAGE = "https://github.com/aihubmix-async/aihubmix-async"

#: The columns ``datasets`` loads from each layout, as (name, dtype in the card).
Features = tuple[tuple[str, str], ...]
IMAGEFOLDER_FEATURES: Features = (
    ("image", "image"), ("id", "string"), ("line", "int64"), ("prompt", "string"),
    ("model", "string"), ("params", "string"), ("image_index", "int64"),
    ("mime_type", "string"), ("request_id", "string"), ("task_id", "string"),
    ("elapsed", "float64"), ("attempts", "int64"), ("input_tokens", "int64"),
    ("output_tokens", "int64"), ("total_tokens", "int64"), ("cost", "float64"),
    ("cost_source", "string"),
)  # fmt: skip
#: The columns shared with the Ray Data and ``datasets`` helpers (usage, params: JSON text).
PARQUET_FEATURES: Features = (
    ("id", "string"), ("prompt", "string"), ("model", "string"), ("params", "string"),
    ("image", "image"), ("mime_type", "string"), ("request_id", "string"),
    ("usage", "string"), ("cost", "float64"), ("attempts", "int64"), ("elapsed", "float64"),
    ("error_type", "string"), ("error_message", "string"),
)  # fmt: skip
_SIZES = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
)  # fmt: skip
_SHOWN = 10  # models and parameter sets named in the prose
_PARAMS_CHARS = 200  # inline images can sit in parameters: cut them short


def size_category(rows: int) -> str:
    for limit, label in _SIZES:
        if rows < limit:
            return label
    return "100M<n<1B"


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))


#: Line breaks and other control characters: outside text must stay on its line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
#: What Markdown (and the HTML it lets through) could read as markup in a heading.
_MARKUP = re.compile(r"([\\`*_\[\]<>#|&~])")


def _one_line(text: str) -> str:
    """One line of valid text (a folder's name may hold bytes that are not UTF-8: ``?``)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub(" ", text).strip()


def _code(text: str) -> str:
    """Text shown as inline code in Markdown (backticks cannot close it early)."""
    text = _one_line(text)
    text = text if len(text) <= _PARAMS_CHARS else text[:_PARAMS_CHARS] + "…"
    return "`` " + text.replace("`", "'") + " ``"


def _heading(text: str) -> str:
    """Outside text (a folder's name) as one Markdown heading line, shown as written: no line
    breaks (a ``---`` line of its own would be YAML or a rule), markup and HTML escaped.
    """
    return "# " + (_MARKUP.sub(r"\\\1", _one_line(text)) or "Generated images")


def _front_matter(layout: Layout, rows: int) -> Iterator[str]:
    pattern: str | None
    features: Features
    if layout.name == "parquet":
        pattern, features = "data/train-*.parquet", PARQUET_FEATURES
    else:
        pattern = "train/**" if layout.name == "imagefolder" else None
        features = IMAGEFOLDER_FEATURES
    yield "---"
    if pattern is not None:  # flat: datasets finds the files itself, as before
        yield "configs:"
        yield "- config_name: default"
        yield "  data_files:"
        yield "  - split: train"
        yield f"    path: {json.dumps(pattern)}"
    yield "dataset_info:"
    yield "  features:"
    for name, dtype in features:
        yield f"  - name: {name}"
        yield f"    dtype: {dtype}"
    yield "size_categories:"
    yield f"- {json.dumps(size_category(rows))}"
    yield "task_categories:"
    yield "- text-to-image"
    yield "tags:"
    yield "- synthetic"
    yield "- aihubmix"
    yield "- aihubmix-async"
    yield "---"


@attrs.frozen(kw_only=True)
class _Facts:
    counts: dict[str, int]
    images: int
    first: float | None
    last: float | None
    models: list[tuple[str, int]]
    params: list[tuple[str, int]]
    n_models: int
    n_params: int


def _facts(db: sqlite3.Connection) -> _Facts:
    counts = dict(db.execute("SELECT state, count(*) FROM items GROUP BY state").fetchall())
    images, first, last = db.execute(
        "SELECT coalesce(sum(json_array_length(files)), 0), min(updated), max(updated)"
        " FROM items WHERE state = 'done'"
    ).fetchone()
    models = db.execute(
        "SELECT model, count(*) FROM items WHERE state = 'done' GROUP BY model"
        " ORDER BY count(*) DESC, model LIMIT ?",
        (_SHOWN,),
    ).fetchall()
    params = db.execute(
        "SELECT params, count(*) FROM items WHERE state = 'done' GROUP BY params"
        " ORDER BY count(*) DESC, params LIMIT ?",
        (_SHOWN,),
    ).fetchall()
    (n_models, n_params) = db.execute(
        "SELECT count(DISTINCT model), count(DISTINCT params) FROM items WHERE state = 'done'"
    ).fetchone()
    return _Facts(counts=counts, images=images, first=first, last=last, models=models,
                  params=params, n_models=n_models, n_params=n_params)  # fmt: skip


def _listing(pairs: list[tuple[str, int]], total: int, noun: str) -> Iterator[str]:
    for value, count in pairs:
        yield f"- {_code(value)}: {count} item(s)"
    if total > len(pairs):
        yield f"- … and {total - len(pairs)} more {noun}"


def _loading(layout: Layout) -> str:
    if layout.name == "parquet":
        return (
            "Parquet shards in `data/` (one row per image; the `image` column holds the image's"
            ' bytes and file name). Load with `datasets.load_dataset("parquet",'
            ' data_dir="<this folder>/data")` or `datasets.load_dataset("<this folder>")`.'
        )
    if layout.name == "imagefolder":
        return (
            "An image folder: the images in `train/00000/`, `train/00001/` … (at most 10,000 a"
            " folder), one row per image in `train/metadata.jsonl`. Load with"
            ' `datasets.load_dataset("imagefolder", data_dir="<this folder>")` or'
            ' `datasets.load_dataset("<this folder>")`.'
        )
    return (
        "An image folder (flat, as written by earlier versions): the images and"
        ' `metadata.jsonl` at the top. Load with `datasets.load_dataset("<this folder>")`.'
    )


def render_card(db: sqlite3.Connection, layout: Layout, *, title: str) -> str:
    """The card's text for the journal ``db`` of a folder in ``layout``."""
    facts = _facts(db)
    counts, images = facts.counts, facts.images
    unfinished = counts.get("pending", 0) + counts.get("submitted", 0)
    lines = [*_front_matter(layout, images), "", _heading(title), ""]
    lines += [
        (
            f"Images generated from text prompts through the AIHubMix API with"
            f" [aihubmix-async]({HOMEPAGE}) {VERSION}."
        ),
        "",
        "## Contents",
        "",
        f"- {counts.get('done', 0)} item(s) generated, {images} image(s)",
        (
            f"- {counts.get('failed', 0)} item(s) failed: listed in `{ERRORS}`, not in the data"
            " (rerunning the same command retries them)"
        ),
        f"- {unfinished} item(s) not generated yet",
        (
            f"- Generated between {_when(facts.first)} and {_when(facts.last)}"
            f" (this card: {_when(time.time())})"
        ),
        "",
        "## Models",
        "",
        *_listing(facts.models, facts.n_models, "models"),
        "",
        "## Parameters",
        "",
        "Each item's parameters (JSON; the command's `--param` merged with the line's own):",
        "",
        *_listing(facts.params, facts.n_params, "parameter sets"),
        "",
        "## Layout",
        "",
        _loading(layout),
        "",
        (
            "The run journal (`.aihubmix/`) is the source of truth these files are written from;"
            " `aihubmix-async status <this folder>` summarises it."
        ),
        "",
    ]
    return "\n".join(lines)


def _digests(db: sqlite3.Connection) -> list[str]:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_DIGESTS,)).fetchone()
    return list(json.loads(row[0])) if row else []


def _ours(db: sqlite3.Connection, path: Path) -> bool:
    """Whether ``path`` is absent or a card this journal wrote (not edited since)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return True
    except OSError:  # a folder, a dangling or looping link, unreadable: not ours to replace
        return False
    recorded = _digests(db)
    if recorded:
        return hashlib.sha256(data).hexdigest() in recorded
    # A card written before digests were recorded: the tool's own front matter and link.
    front = data.startswith((b"---\nconfigs:", b"---\ndataset_info:"))
    return front and f"[aihubmix-async]({HOMEPAGE})".encode() in data


def write_card(db: sqlite3.Connection, out: Path, layout: Layout, scratch: Path) -> None:
    """Rewrite ``out/README.md`` from the journal, atomically; a README.md the tool did not
    write (the user's own, or its card edited by hand) is left as it is, with a warning.
    """
    path = out / CARD
    if not _ours(db, path):
        logger.warning("%s was not written by aihubmix-async (or was edited since): left as it"
                       " is; the dataset card is not updated", path)  # fmt: skip
        return
    text = render_card(db, layout, title=out.resolve().name or "Generated images").encode()
    db.execute("BEGIN IMMEDIATE")  # recorded before it is written: see _DIGESTS
    try:
        kept = [*_digests(db), hashlib.sha256(text).hexdigest()][-_KEPT:]
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_DIGESTS, json.dumps(kept)))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    write_atomic(path, iter([text]), scratch)
