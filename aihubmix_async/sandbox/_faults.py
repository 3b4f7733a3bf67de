"""Scripted faults for the emulator: what the next matching request(s) should suffer."""

from __future__ import annotations

import random
from typing import Literal

import attrs

__all__ = ["FAULT_KINDS", "Fault", "FaultScript", "Route"]

Route = Literal["submit", "poll", "download", "any"]

FAULT_KINDS = (
    "status",  # answer `status` with an {"error": ...} body (and Retry-After if given)
    "error_body",  # HTTP 200 whose body is {"error": ...}
    "malformed",  # HTTP 200 with a body that is not JSON
    "truncated",  # HTTP 200 with a JSON body cut short (Content-Length matches)
    "reset",  # headers and half the body, then the connection is dropped
    "delay",  # answer normally after `delay` seconds
    "moderated",  # gpt-image etc: 400 moderation_blocked; Flux: the task ends "Content Moderated"
    "task_failed",  # Flux: the task ends "Error"
    "never_finish",  # Flux: the task stays "Pending" forever
)


@attrs.define(kw_only=True)
class Fault:
    """One scripted fault. ``model`` (a substring of the model path) narrows what it hits."""

    kind: str = attrs.field(validator=attrs.validators.in_(FAULT_KINDS))
    route: Route = "submit"
    status: int = 500
    message: str = "scripted fault"
    code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    model: str | None = None
    times: int = 1

    def matches(self, route: str, model: str | None) -> bool:
        if self.times <= 0 or (self.route not in {"any", route}):
            return False
        return self.model is None or (model is not None and self.model in model)


@attrs.define
class FaultScript:
    """Faults taken in order by matching requests, plus an optional random fault rate."""

    _queue: list[Fault] = attrs.Factory(list)
    rate: float = 0.0
    random_kinds: tuple[Fault, ...] = ()
    _rng: random.Random = attrs.Factory(lambda: random.Random(0))  # noqa: S311

    def add(self, fault: Fault) -> None:
        self._queue.append(fault)

    def clear(self) -> None:
        self._queue.clear()
        self.rate = 0.0

    def seed(self, seed: int) -> None:
        self._rng.seed(seed)

    def take(self, route: str, model: str | None) -> Fault | None:
        for fault in self._queue:
            if fault.matches(route, model):
                fault.times -= 1
                if fault.times <= 0:
                    self._queue.remove(fault)
                return fault
        if self.rate and self.random_kinds and self._rng.random() < self.rate:
            candidates = [f for f in self.random_kinds if f.route in (route, "any")]
            if candidates:
                return attrs.evolve(self._rng.choice(candidates), times=1)
        return None
