"""Prices: where they come from, and what a call costs before and after it runs.

AIHubMix publishes a model catalogue with prices: ``GET /api/v1/models`` answers
``{success, message, data: [{model_id, types, pricing, ...}]}`` (reference §11). Its ``pricing``
has ``input`` / ``output`` in US dollars per million tokens (the docs say per thousand; client
authors measured per million, which is what is read here). How it states a price per image is
not documented: ``per_image`` (and ``per_image_by``, a price per value of one parameter, e.g.
``quality``) is read when present, which is the form of the snapshot shipped with the package
(``data/prices.json``) and of the sandbox's catalogue.

Catalogue ids are bare (``imagen-4.0-fast-generate-001``), so a model path is matched on its
last segment, case-insensitively. Every figure carries its source: ``snapshot <date>``,
``catalogue`` or ``override``.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from ._errors import InvalidRequestError, ResponseFormatError
from ._models import Cost, ImageResult, Usage

__all__ = ["MAX_CATALOGUE_BYTES", "Price", "PriceBook", "cost_of", "estimate_images"]

SNAPSHOT = "prices.json"
#: The largest price file read (a catalogue answer is well under 1 MiB).
MAX_PRICES_BYTES = 16 * 1024 * 1024
#: The largest live catalogue answer read: a hostile 60 MB one took ~500 MB to decode.
MAX_CATALOGUE_BYTES = 8 * 1024 * 1024
#: Doubao's ``sequential_image_generation="auto"`` makes up to this many images by default.
_DOUBAO_AUTO_MAX = 15
#: The largest price believed (US dollars per image or per 1M tokens).
_MOST_DOLLARS = 1e6
#: More tokens than any one image request reports (~6,000 an image, 10 images): past this, a
#: server's count is not believed.
_MOST_TOKENS = 10**9


def _number(value: object) -> float | None:
    """A believable price: a number from 0 to a million dollars (a larger one overflowed a
    result's cost to infinity, which the journal then recorded as no cost at all).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _MOST_DOLLARS:  # NaN fails too
        return None
    return float(value)


@attrs.frozen(kw_only=True)
class Price:
    """One model's prices: per image (optionally by a parameter's value) and per 1M tokens."""

    model: str
    source: str
    per_image: float | None = None
    #: (parameter, {value: price per image}): e.g. ``("quality", {"low": 0.016, ...})``.
    per_image_by: tuple[str, Mapping[str, float]] | None = None
    input: float | None = None  #: US dollars per 1M input tokens
    output: float | None = None  #: US dollars per 1M output tokens

    @classmethod
    def read(cls, model: str, pricing: object, source: str) -> Price | None:
        """A price from a catalogue ``pricing`` object (or a bare number: per image)."""
        if _number(pricing) is not None:
            return cls(model=model, source=source, per_image=_number(pricing))
        if not isinstance(pricing, Mapping):
            return None
        by = pricing.get("per_image_by")
        per_value = None
        if isinstance(by, Mapping) and isinstance(by.get("param"), str):
            prices = by.get("prices")
            table = {
                str(k): n
                for k, v in (prices.items() if isinstance(prices, Mapping) else ())
                if (n := _number(v)) is not None
            }
            per_value = (str(by["param"]), table) if table else None
        price = cls(
            model=model,
            source=source,
            per_image=_number(pricing.get("per_image")),
            per_image_by=per_value,
            input=_number(pricing.get("input")),
            output=_number(pricing.get("output")),
        )
        if price.per_image is None and price.input is None and price.output is None:
            return None
        return price

    def image_price(self, params: Mapping[str, Any]) -> float | None:
        """The price of one image with these parameters (the parameter's own price when the
        table has one, else the model's figure per image).
        """
        if self.per_image_by is not None:
            name, table = self.per_image_by
            value = params.get(name)
            if isinstance(value, str) and value in table:
                return table[value]
        return self.per_image


@functools.cache
def snapshot_body() -> dict[str, Any]:
    """The shipped snapshot, read once per process (a new client reads no file)."""
    text = resources.files("aihubmix_async").joinpath("data", SNAPSHOT).read_text("utf-8")
    body: dict[str, Any] = json.loads(text)
    return body


def _read_small_file(path: Path) -> bytes:
    """A regular file's bytes, refusing anything else before reading: a FIFO nobody writes
    (which would block forever), a device (``/dev/zero`` never ends), a file over 16 MiB.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequestError(
                f"cannot read prices from {str(path)!r}: is not a regular file"
            )
        if info.st_size > MAX_PRICES_BYTES:
            raise InvalidRequestError(
                f"cannot read prices from {str(path)!r}: larger than"
                f" {MAX_PRICES_BYTES >> 20} MiB ({info.st_size} bytes)"
            )
        data = handle.read(MAX_PRICES_BYTES + 1)  # the file may grow while it is read
    if len(data) > MAX_PRICES_BYTES:
        raise InvalidRequestError(
            f"cannot read prices from {str(path)!r}: larger than {MAX_PRICES_BYTES >> 20} MiB"
        )
    return data


def _key(model: str) -> str:
    return model.rsplit("/", 1)[-1].lower()


def _worst(price: Price) -> tuple[float, float, float]:
    table = price.per_image_by[1].values() if price.per_image_by is not None else ()
    return (max((price.per_image or 0.0, *table)), price.output or 0.0, price.input or 0.0)


def _keep_higher(prices: dict[str, Price], model: str, price: Price) -> None:
    """Add ``price`` under ``model``'s key unless the key holds a higher price already."""
    key = _key(model)
    known = prices.get(key)
    if known is None or _worst(price) > _worst(known):
        prices[key] = price


_CATALOGUE_SHAPE = "a model catalogue {success, message, data: [{model_id, pricing}]}"


def _server_says(body: object) -> str:
    message = body.get("message") if isinstance(body, Mapping) else None
    return f": the server says {message[:500]!r}" if isinstance(message, str) and message else ""


def _catalogue_problem(body: object) -> str:
    return f"no data[]; expected {_CATALOGUE_SHAPE}{_server_says(body)}"


class PriceBook:
    """Prices by model. Later layers win: ``snapshot().over(catalogue).over(override)``."""

    def __init__(
        self, prices: Mapping[str, Price] | None = None, *, date: str | None = None
    ) -> None:
        self._prices: dict[str, Price] = {}
        for model, price in (prices or {}).items():
            _keep_higher(self._prices, model, price)
        #: The snapshot date, for a book read from a dated snapshot.
        self.date = date

    def __repr__(self) -> str:
        return f"<PriceBook of {len(self._prices)} models>"

    def __len__(self) -> int:
        return len(self._prices)

    @classmethod
    def snapshot(cls) -> PriceBook:
        """The dated snapshot shipped with the package (for offline estimates)."""
        body = snapshot_body()
        date = str(body.get("snapshot_date", "undated"))
        book = cls.from_catalogue(body, source=f"snapshot {date}")
        book.date = date
        return book

    @classmethod
    def from_catalogue(cls, body: object, *, source: str = "catalogue") -> PriceBook:
        """Read a ``/api/v1/models`` answer; entries without a usable price are skipped, and
        a model listed twice (in any case) keeps its higher price: a cap never trusts the
        cheaper of two figures.
        """
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, list):
            raise InvalidRequestError(_catalogue_problem(body))
        prices: dict[str, Price] = {}
        for entry in data:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("model_id"), str):
                continue
            price = Price.read(entry["model_id"], entry.get("pricing"), source)
            if price is not None:
                _keep_higher(prices, entry["model_id"], price)
        return cls(prices)

    @classmethod
    def from_answer(cls, body: object, *, request_id: str | None) -> PriceBook:
        """The live catalogue's answer, or a :class:`ResponseFormatError` naming what the
        server said (its ``message``) and the request id: a broken catalogue is the
        server's fault, not the caller's.
        """
        try:
            return cls.from_catalogue(body)
        except InvalidRequestError:
            raise ResponseFormatError(
                f"the model catalogue's answer has no data[]{_server_says(body)}",
                expected=_CATALOGUE_SHAPE,
                request_id=request_id,
                model="catalogue",
            ) from None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, source: str = "override") -> PriceBook:
        """The caller's prices: ``{model: per-image price}`` or ``{model: {pricing}}``."""
        prices: dict[str, Price] = {}
        for model, pricing in mapping.items():
            price = Price.read(str(model), pricing, source)
            if price is None:
                raise InvalidRequestError(
                    f"price for {model!r} must be a number from 0 to 1e6 (per image) or an"
                    f" object with per_image / input / output, got {pricing!r}",
                    field="prices",
                )
            prices[str(model)] = price
        return cls(prices)

    @classmethod
    def load(cls, path: str | Path) -> PriceBook:
        """A price file: a catalogue answer (``data[]``) or a ``{model: price}`` object."""
        try:
            body = json.loads(_read_small_file(Path(path)).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise InvalidRequestError(f"cannot read prices from {str(path)!r}: {exc}") from None
        if isinstance(body, Mapping) and "data" in body:
            return cls.from_catalogue(body, source="override")
        if not isinstance(body, Mapping):
            raise InvalidRequestError(f"{str(path)!r} is not a JSON object of prices")
        return cls.from_mapping(body)

    def over(self, other: PriceBook) -> PriceBook:
        """A book of these prices with ``other``'s replacing (or adding to) its own."""
        book = PriceBook(date=self.date)
        book._prices = {**self._prices, **other._prices}
        return book

    def price(self, model: str) -> Price | None:
        """The price of a model path or name (matched on its last segment), or None."""
        return self._prices.get(_key(model))


def estimate_images(adapter: object, path: str, fields: Mapping[str, Any]) -> int:
    """The most images one request with these body fields can make (the count sent, else the
    family's one; Doubao's sequential mode makes up to ``max_images``, 15 by default).
    """
    if fields.get("sequential_image_generation") == "auto":
        options = fields.get("sequential_image_generation_options")
        most = options.get("max_images") if isinstance(options, Mapping) else None
        return most if isinstance(most, int) else _DOUBAO_AUTO_MAX
    answer = getattr(adapter, "answer", None)
    count = getattr(answer, "count", None)
    if count is None:
        return 1  # a plugin adapter that states no answer: one image a call
    limit = getattr(adapter, "max_count", lambda _p: None)(path)
    return int(count(fields, limit))


def _tokens(count: object) -> int | None:
    """A token count the server reported, if it is believable (a whole number in range)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MOST_TOKENS:
        return None
    return count


def _token_cost(price: Price, usage: Usage | None) -> float | None:
    """US dollars for the reported tokens; None when the model has no token price or the
    server's counts cannot be believed (negative, absurd): the images' price counts then, so
    a lying server can neither lift a cap nor turn a paid image into a failure.
    """
    if usage is None or price.output is None:
        return None
    output = _tokens(usage.output_tokens)
    given = usage.input_tokens
    inputs = 0 if given is None else _tokens(given)
    if output is None or inputs is None:
        return None
    return (output * price.output + inputs * (price.input or 0.0)) / 1e6


def cost_of(price: Price | None, params: Mapping[str, Any], result: ImageResult) -> Cost | None:
    """What a finished generation cost: from its token usage when the family reports tokens
    and the model has token prices, else its images times the price per image.
    """
    if price is None:
        return None
    amount = _token_cost(price, result.usage)
    if amount is not None:
        return Cost(amount=amount, source=price.source, basis="tokens")
    each = price.image_price(params)
    if each is None:
        return None
    return Cost(amount=each * len(result.images), source=price.source)
