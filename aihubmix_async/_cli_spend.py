"""The command line's spend: ``--max-cost`` / ``--max-images`` / ``--prices``, the dry run's
estimate, and the cap counted over the whole output folder.

A folder's cap covers everything generated into it: a rerun subtracts what the journal
records as done (its images, its cost) before it starts, so the same command stops at once and
a higher cap continues where the last run stopped (done items are skipped as ever).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import attrs

from ._journal import JOURNAL_DIR
from ._journal_lock import FolderLockedError
from ._models import ImageRequest, ModelInfo
from ._pricing import PriceBook
from ._registry import Registry
from ._spend import Budget, Estimate, Spend, count_into, summarise

__all__ = [
    "EXIT_CAPPED",
    "Caps",
    "SpendFence",
    "Tally",
    "add_spend_flags",
    "caps_left",
    "price_book",
    "price_notes",
]

#: Exit status of a run stopped by ``--max-cost`` / ``--max-images`` (rerun with a higher cap).
EXIT_CAPPED = 5


def add_spend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="stop before the folder's estimated spend could pass USD (items"
                             " in flight count at their worst case); exit status 5. A capped"
                             " run spends alone: no shard runs beside it")  # fmt: skip
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="stop before the folder could hold more than N images; exit"
                             " status 5")  # fmt: skip
    parser.add_argument("--prices", metavar="FILE",
                        help="prices (a /api/v1/models answer or {model: USD per image}) over"
                             " the snapshot shipped with the package")  # fmt: skip


def price_book(args: argparse.Namespace, model: str | None = None) -> PriceBook:
    """The snapshot under ``--prices``; with ``--max-cost``, ``-m``'s model must have a price
    (refused before anything is read or sent, rather than every line failing).
    """
    book = PriceBook.snapshot()
    prices = getattr(args, "prices", None)
    book = book.over(PriceBook.load(prices)) if prices else book
    if getattr(args, "max_cost", None) is not None:
        budget = Budget(Spend(Registry.default(), book), max_cost=args.max_cost,
                        names=("--max-cost", "--max-images"))  # fmt: skip
        budget.check_model(model)
    return book


class Tally:
    """The dry run's estimate, one valid line at a time."""

    def __init__(self, args: argparse.Namespace, model: str | None, params: dict[str, Any]) -> None:
        self._spend = Spend(Registry.default(), price_book(args))
        self._model = model
        self._params = params
        self._rows: dict[str, list[Any]] = {}

    def add(self, request: ImageRequest | None) -> None:
        """Count one valid line; ``None``: a text line (the run's model and parameters)."""
        model = self._model if request is None else request.model or self._model
        if model is None:  # pragma: no cover - the reader refuses such lines
            return
        params = self._params if request is None else {**self._params, **request.params}
        count_into(self._rows, self._spend.plan(model, params))

    def estimate(self) -> Estimate:
        return summarise(self._rows)


def price_notes(registry: Registry) -> Iterator[tuple[ModelInfo, str]]:
    """Each model with its snapshot price as text (``"  $0.02/image (snapshot ...)"``)."""
    spend = Spend(registry, PriceBook.snapshot())
    for info in registry.models():
        priced = spend.describe(info)
        each = priced.price_per_image
        yield info, "" if each is None else f"  ${each:g}/image ({priced.price_source})"


class SpendFence:
    """A capped run's claim on its folder's spend: a cap counts the whole folder, so no other
    run (a shard) may spend into it meanwhile; uncapped shards share the folder as ever.

    ``.aihubmix/spend.lock``, locked exclusively by a capped run and shared by an uncapped
    one; either is refused (exit 4, nothing sent) while the other kind holds it. The kernel
    drops the lock when the process ends, kill -9 included.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def take(cls, args: argparse.Namespace, out: Path) -> SpendFence:
        capped = args.max_cost is not None or args.max_images is not None
        fd = os.open(out / JOURNAL_DIR / "spend.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if capped else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            what = (
                "output folder (--max-cost / --max-images count the whole folder, so a capped"
                " run cannot share it with other runs at once; run the shards one after"
                " another, or without a cap)"
            )
            raise FolderLockedError(out, None, what) from None
        return cls(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self._fd)


@attrs.frozen
class Caps:
    """The caps left for this run, and what the folder held when it started."""

    flags: tuple[float | None, int | None]  #: ``--max-cost`` / ``--max-images`` as given
    cost: float | None  #: ``--max-cost`` less the folder's spend (never below 0)
    images: int | None  #: ``--max-images`` less the folder's images (never below 0)
    held: tuple[float, int]  #: the folder's done items: their cost and images

    def words(self, cap: str) -> str:
        """The SDK's cap message in the CLI's words: the flag as given (not what was left of
        it) and what the folder held before this run.
        """
        cost, images = self.flags
        if cost is not None and self.cost is not None:
            before = f"${self.held[0]:.4f} in the folder before this run,"
            cap = cap.replace(f"max_cost={self.cost:g} reached:",
                              f"--max-cost {cost:g} reached: {before}")  # fmt: skip
        if images is not None and self.images is not None:
            before = f"{self.held[1]} image(s) in the folder before this run,"
            cap = cap.replace(f"max_total_images={self.images} reached:",
                              f"--max-images {images} reached: {before}")  # fmt: skip
        return cap


def caps_left(args: argparse.Namespace, db: sqlite3.Connection) -> Caps:
    """``--max-cost`` / ``--max-images`` less what the folder already holds (never below 0)."""
    flags = (args.max_cost, args.max_images)
    if args.max_cost is None and args.max_images is None:
        return Caps(flags, None, None, (0.0, 0))
    cost, images = db.execute(
        "SELECT coalesce(sum(usage ->> 'cost'), 0.0), coalesce(sum(json_array_length(files)), 0)"
        " FROM items WHERE state = 'done'"
    ).fetchone()
    return Caps(
        flags,
        None if args.max_cost is None else max(0.0, args.max_cost - cost),
        None if args.max_images is None else max(0, args.max_images - images),
        (cost, images),
    )
