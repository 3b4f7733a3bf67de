"""Spend: what a run will cost before it starts, a cap while it runs, the bill after.

:class:`Spend` joins the registry (how many images a request makes) and a :class:`PriceBook`
(what an image costs). :class:`Budget` is one batch's caps: an item is reserved at its worst
case (the most images its request can make, at the highest price that applies) before it is
submitted, and settled at what it really cost once it ends, so the items in flight can never
take the run past the cap together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import attrs

from ._errors import AIHubMixError, InvalidRequestError
from ._models import Cost, ImageRequest, ImageResult, ModelInfo, request_from_mapping
from ._pricing import PriceBook, cost_of, estimate_images
from ._registry import Registry

__all__ = ["Budget", "Estimate", "ModelEstimate", "Planned", "Spend", "SpendCapReached"]

_CACHE_LIMIT = 1024
_UNKNOWN: Any = object()
_IMAGE_STAND_IN = "https://estimate.invalid/image.png"


class SpendCapReached(AIHubMixError):  # noqa: N818 - reads as the event it is
    """An item was not submitted: it could have taken the run past ``max_cost`` /
    ``max_total_images``. Nothing was sent for it; a rerun with a higher cap generates it.
    """

    cap: str

    def __init__(self, message: str, *, cap: str, model: str | None = None) -> None:
        super().__init__(message, model=model)
        self.cap = cap


@attrs.frozen(kw_only=True)
class Planned:
    """One request's worst case: its images and their cost (None: the model has no price)."""

    model: str
    images: int
    cost: float | None
    source: str | None
    #: The model has token prices: its result may be billed by tokens, past the per-image figure.
    by_tokens: bool = False
    #: How much the cost was raised over the per-image figure (what the model's tokens cost).
    scale: float = 1.0


@attrs.frozen(kw_only=True)
class ModelEstimate:
    model: str
    requests: int
    images: int
    cost: float | None  #: None when the model has no price
    source: str | None  #: where the price comes from (``snapshot <date>``, ``catalogue``...)


@attrs.frozen(kw_only=True)
class Estimate:
    """``client.estimate(...)``: requests, images and cost per model and in total. ``cost``
    sums the priced models; ``unpriced`` names the others.
    """

    models: tuple[ModelEstimate, ...]
    requests: int
    images: int
    cost: float
    unpriced: tuple[str, ...]

    def lines(self) -> list[str]:
        """The estimate as text, a line per model and one for the total."""
        out = []
        for row in self.models:
            money = "no price" if row.cost is None else f"${row.cost:.4f} ({row.source})"
            out.append(f"  {row.model}: {row.requests} request(s), {row.images} image(s), {money}")
        unpriced = f" + {len(self.unpriced)} unpriced model(s)" if self.unpriced else ""
        out.append(
            f"  total: {self.requests} request(s), {self.images} image(s),"
            f" ${self.cost:.4f} estimated{unpriced}"
        )
        return out


class Spend:
    """A client's prices and the arithmetic on them (no I/O)."""

    def __init__(self, registry: Registry, book: PriceBook) -> None:
        self.registry = registry
        #: The cost of a result without parameters or token usage, by (model, images): every
        #: bulk result of a model costs the same, and a Cost is frozen, so one is shared.
        self._costs: dict[tuple[str, int], Cost | None] = {}
        self._plans: dict[tuple[str, Any], Planned] = {}
        self.book = book

    @property
    def book(self) -> PriceBook:
        return self._book

    @book.setter
    def book(self, book: PriceBook) -> None:
        self._book = book
        # New prices (the live catalogue read): costs and plans (budgets, estimates) are
        # computed again, never from the prices they replaced.
        self._costs.clear()
        self._plans.clear()

    def describe(self, info: ModelInfo) -> ModelInfo:
        """``info`` with its price per image and the price's source."""
        price = self.book.price(info.path)
        if price is None:
            return info
        return attrs.evolve(info, price_per_image=price.image_price({}), price_source=price.source)

    def plan(self, model: str, params: Mapping[str, Any]) -> Planned:
        """The worst case of one request (validated: a bad parameter raises here)."""
        try:
            key: tuple[str, Any] | None = (model, frozenset(params.items()))
            hash(key)
        except TypeError:  # unhashable values (lists, images): not cached
            key = None
        if key is not None and (known := self._plans.get(key)) is not None:
            return known
        adapter, path = self.registry.resolve(model)
        # Local images (bytes, paths, files) are encoded only when sent; a URL stands in for
        # them here, where only the count and the price matter.
        checked = {
            k: _IMAGE_STAND_IN if k in adapter.image_params and v is not None else v
            for k, v in params.items()
        }
        fields = getattr(adapter, "fields", None)
        wire = fields(path, "estimate", checked) if fields is not None else checked
        images = estimate_images(adapter, path, wire)
        price = self.book.price(path)
        each = price.image_price(params) if price is not None else None
        planned = Planned(
            model=path,
            images=images,
            cost=None if each is None else each * images,
            source=None if price is None else price.source,
            by_tokens=price is not None and price.output is not None,
        )
        if key is not None:
            if len(self._plans) >= _CACHE_LIMIT:
                self._plans.clear()
            self._plans[key] = planned
        return planned

    def priced(self, model: str, params: Mapping[str, Any], result: ImageResult) -> ImageResult:
        """``result`` with its :attr:`~ImageResult.cost` set (unchanged without a price)."""
        if params or result.usage is not None:
            cost = cost_of(self._book.price(result.model or model), params, result)
        else:  # the bulk case: the same cost for every result of the model
            key = (result.model or model, len(result.images))
            cost = self._costs.get(key, _UNKNOWN)
            if cost is _UNKNOWN:
                if len(self._costs) >= _CACHE_LIMIT:
                    self._costs.clear()
                cost = self._costs[key] = cost_of(self._book.price(key[0]), params, result)
        if cost is not None:
            # The result was just made by the pipeline and nobody holds it yet: set its cost
            # in place (attrs.evolve copies every field: ~10 us an item at bulk rates).
            object.__setattr__(result, "cost", cost)
        return result

    def estimate_requests(
        self, items: Iterable[Any], model: str | None, params: Mapping[str, Any]
    ) -> Estimate:
        rows: dict[str, list[Any]] = {}
        for item in items:
            request = as_request(item)
            name = request.model or model
            if name is None:
                raise InvalidRequestError("no model: give model=... or a per-item model")
            count_into(rows, self.plan(name, {**params, **request.params}))
        return summarise(rows)


def count_into(rows: dict[str, list[Any]], planned: Planned) -> None:
    """Add one request to ``{model: [requests, images, cost, source, priced]}``."""
    row = rows.setdefault(planned.model, [0, 0, 0.0, planned.source, True])
    row[0] += 1
    row[1] += planned.images
    if planned.cost is None:
        row[4] = False
    else:
        row[2] += planned.cost


def summarise(rows: Mapping[str, list[Any]]) -> Estimate:
    """An Estimate from ``{model: [requests, images, cost, source, priced]}``."""
    models = tuple(
        ModelEstimate(
            model=name,
            requests=r[0],
            images=r[1],
            cost=r[2] if r[4] else None,
            source=r[3] if r[4] else None,
        )
        for name, r in sorted(rows.items())
    )
    return Estimate(
        models=models,
        requests=sum(m.requests for m in models),
        images=sum(m.images for m in models),
        cost=sum(m.cost for m in models if m.cost is not None),
        unpriced=tuple(m.model for m in models if m.cost is None),
    )


def as_request(item: Any) -> ImageRequest:
    """A batch item (prompt, mapping or ImageRequest) as an ImageRequest."""
    if isinstance(item, ImageRequest):
        return item
    if isinstance(item, str):
        return ImageRequest(prompt=item)
    if isinstance(item, Mapping):
        return request_from_mapping(item)
    raise InvalidRequestError(
        f"batch items must be prompts, mappings or ImageRequest, got {type(item).__name__}"
    )


def check_cap(value: object, name: str) -> float | None:
    """A cost cap as a float (a whole number too large for one is no cap: infinity)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidRequestError(f"{name} must be a number >= 0, got {value!r}", field=name)
    try:
        return float(value)
    except OverflowError:
        return math.inf


def check_count_cap(value: object, name: str) -> int | None:
    """An image cap: a whole number >= 0 (2.5 images, infinity or NaN are mistakes)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(f"{name} must be a whole number >= 0, got {value!r}", field=name)
    return value


def _kind(planned: Planned) -> tuple[str, float | None]:
    """Items whose tokens cost alike: one model at one per-image figure (``quality="low"``
    and ``"high"`` are told apart).
    """
    if planned.cost is None or not planned.images:
        return planned.model, planned.cost
    return planned.model, round(planned.cost / planned.scale / planned.images, 9)


class Budget:
    """One run's caps. ``spent_cost`` / ``spent_images`` start the count (a resumed folder's
    earlier spend); every reserved item counts at its worst case until it is settled.
    """

    def __init__(
        self,
        spend: Spend,
        *,
        max_cost: float | None = None,
        max_images: int | None = None,
        spent_cost: float = 0.0,
        spent_images: int = 0,
        names: tuple[str, str] = ("max_cost", "max_total_images"),
    ) -> None:
        #: How the caps are spelt where the user set them (keywords, or the CLI's flags).
        self.names = names
        self.spend = spend
        self.max_cost = check_cap(max_cost, names[0])
        self.max_images = check_count_cap(max_images, names[1])
        self.spent_cost = spent_cost
        self.spent_images = spent_images
        self._held_cost = 0.0
        self._held_images = 0
        #: Why the run stopped (a sentence), once an item did not fit.
        self.reached: str | None = None
        #: Token-billed (model, per-image figure): the most a result cost over it, once known.
        self._scale: dict[tuple[str, float | None], float] = {}
        #: Those whose first item is in flight: the others wait for its cost.
        self._probes: dict[tuple[str, float | None], anyio.Event] = {}

    def check_model(self, model: str | None) -> None:
        """Under ``max_cost``, refuse the batch's own model at once if it has no price at all
        (each item would otherwise end refused, one by one, nothing sent).
        """
        if model is None or self.max_cost is None:
            return
        path = self.spend.registry.resolve(model)[1]
        price = self.spend.book.price(path)
        if price is None or (price.per_image is None and price.per_image_by is None):
            raise InvalidRequestError(
                f"no price per image is known for {path}, so {self.names[0]} cannot bound it;"
                " give its price (prices=... / --prices FILE)",
                field="max_cost",
                model=path,
            )

    async def admit(self, model: str, params: Mapping[str, Any], *, force: bool = False) -> Planned:
        """:meth:`reserve`, but under ``max_cost`` the first item of a token-billed model runs
        alone: its tokens may cost more than the per-image figure, and until one result says
        how much, items in flight together could pass the cap. The rest are then held at the
        most a result of that model has cost over its figure.
        """
        if self.max_cost is None or force:
            return self.reserve(model, params, force=force)
        planned = self.spend.plan(model, params)
        kind = _kind(planned)
        while planned.by_tokens and kind not in self._scale:
            probe = self._probes.get(kind)
            if probe is None:
                held = self.reserve(model, params)  # raises before the probe is set up
                self._probes[kind] = anyio.Event()  # this item finds out
                return held
            await probe.wait()
        return self.reserve(model, params)

    def reserve(self, model: str, params: Mapping[str, Any], *, force: bool = False) -> Planned:
        """Hold an item's worst case, or raise :class:`SpendCapReached` (nothing is sent).
        ``force`` (a resumed task, already paid for) holds it whatever the caps say.
        """
        planned = self.spend.plan(model, params)
        scale = self._scale.get(_kind(planned), 1.0)
        if scale != 1.0 and planned.cost is not None:
            planned = attrs.evolve(planned, cost=planned.cost * scale, scale=scale)
        cost = planned.cost
        if self.max_cost is not None and cost is None and not force:
            raise InvalidRequestError(
                f"no price is known for {planned.model}, so {self.names[0]} cannot bound it; give"
                " its price (prices=... / --prices FILE)",
                field="max_cost",
                model=planned.model,
            )
        if not force and self.reached is None:
            self.reached = self._overflow(planned)
        if self.reached is not None and not force:
            raise SpendCapReached(self.reached, cap=self.reached, model=planned.model)
        self._held_images += planned.images
        self._held_cost += cost or 0.0
        return planned

    def _overflow(self, planned: Planned) -> str | None:
        images = self.spent_images + self._held_images + planned.images
        if self.max_images is not None and images > self.max_images:
            return (
                f"{self.names[1]}={self.max_images} reached: {self.spent_images} image(s) made,"
                f" {self._held_images} in flight, the next item could make {planned.images}"
            )
        cost = self.spent_cost + self._held_cost + (planned.cost or 0.0)
        if self.max_cost is not None and cost > self.max_cost + 1e-12:
            return (
                f"{self.names[0]}={self.max_cost:g} reached: ${self.spent_cost:.4f} spent,"
                f" ${self._held_cost:.4f} in flight, the next item could cost"
                f" ${planned.cost or 0.0:.4f}"
            )
        return None

    def settle(self, planned: Planned, result: ImageResult | None) -> None:
        """Release an item's hold and count what it really made (a failure: nothing)."""
        self._held_images -= planned.images
        self._held_cost -= planned.cost or 0.0
        kind = _kind(planned)
        if result is not None:
            self.spent_images += len(result.images)
            cost = result.cost.amount if result.cost is not None else planned.cost
            self.spent_cost += max(cost or 0.0, 0.0)  # nothing a server says gives money back
            if planned.by_tokens and cost is not None and planned.cost:
                figure = planned.cost / planned.scale  # what it was planned at, unscaled
                self._scale[kind] = max(self._scale.get(kind, 1.0), cost / figure)
        probe = self._probes.pop(kind, None)
        if probe is not None:  # the first item is back (or failed: the next one finds out)
            probe.set()
