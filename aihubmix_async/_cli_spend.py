"""The command line's spend: ``--max-cost`` / ``--max-images`` / ``--prices``, the dry run's
estimate, and the cap counted over the whole output folder.

A folder's cap covers everything generated into it: a rerun subtracts what the journal
records as done (its images, its cost) before it starts, so the same command stops at once and
a higher cap continues where the last run stopped (done items are skipped as ever).
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from typing import Any

from ._models import ImageRequest, ModelInfo
from ._pricing import PriceBook
from ._registry import Registry
from ._spend import Estimate, Spend, count_into, summarise

__all__ = ["EXIT_CAPPED", "Tally", "add_spend_flags", "caps_left", "price_book", "price_notes"]

#: Exit status of a run stopped by ``--max-cost`` / ``--max-images`` (rerun with a higher cap).
EXIT_CAPPED = 5


def add_spend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="stop before the folder's estimated spend could pass USD (items"
                             " in flight count at their worst case); exit status 5")  # fmt: skip
    parser.add_argument("--max-images", type=int, metavar="N",
                        help="stop before the folder could hold more than N images; exit"
                             " status 5")  # fmt: skip
    parser.add_argument("--prices", metavar="FILE",
                        help="prices (a /api/v1/models answer or {model: USD per image}) over"
                             " the snapshot shipped with the package")  # fmt: skip


def price_book(args: argparse.Namespace) -> PriceBook:
    book = PriceBook.snapshot()
    prices = getattr(args, "prices", None)
    return book.over(PriceBook.load(prices)) if prices else book


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


def caps_left(args: argparse.Namespace, db: sqlite3.Connection) -> tuple[float | None, int | None]:
    """``--max-cost`` / ``--max-images`` less what the folder already holds (never below 0)."""
    if args.max_cost is None and args.max_images is None:
        return None, None
    cost, images = db.execute(
        "SELECT coalesce(sum(usage ->> 'cost'), 0.0), coalesce(sum(json_array_length(files)), 0)"
        " FROM items WHERE state = 'done'"
    ).fetchone()
    return (
        None if args.max_cost is None else max(0.0, args.max_cost - cost),
        None if args.max_images is None else max(0, args.max_images - images),
    )
