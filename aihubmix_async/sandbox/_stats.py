"""What the emulator saw: counters and an ordered, bounded event log for tests to assert on."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, NamedTuple

import attrs

__all__ = ["MAX_EVENTS", "Event", "SandboxStats"]

#: How many events (and finished tasks) the emulator keeps; older ones are dropped first.
MAX_EVENTS = 100_000


class Event(NamedTuple):
    """One thing the emulator saw, in arrival order.

    ``kind`` is "submit", "poll", "download", "rejected" (a 4xx the emulator chose), "limited"
    (a 429 from the per-key limit; route "submit" or "tasks"),
    "unauthorized" or "fault:<route>:<kind>[:<status>]"; ``route`` the family route name
    ("predictions", "images/generations", "images/edits", "gemini"), "tasks" or "cdn".
    """

    time: float  # time.monotonic()
    route: str
    model: str | None
    kind: str


@attrs.define
class SandboxStats:
    """What the emulator saw; tests assert on these."""

    requests: int = 0
    submits: int = 0
    polls: int = 0
    downloads: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    #: In flight and its maximum per kind of request ("submit", "poll", "download").
    in_flight_by_kind: Counter[str] = attrs.Factory(Counter)
    max_in_flight_by_kind: Counter[str] = attrs.Factory(Counter)
    unauthorized: int = 0
    #: Requests refused with a 4xx because of what they sent (unknown field, missing image...).
    rejected: int = 0
    faults: int = 0
    #: Injected faults by "route:kind[:status]", for reconciling outcomes against them.
    fault_kinds: Counter[str] = attrs.Factory(Counter)
    #: Download requests that carried an Authorization header (must stay 0).
    downloads_with_auth: int = 0
    by_model: Counter[str] = attrs.Factory(Counter)
    #: Image inputs seen, keyed "parameter:form" (form: url, data_uri, base64 or multipart).
    image_inputs: Counter[str] = attrs.Factory(Counter)
    #: Requests answered 429 by the per-key limit (``key_concurrency`` / ``key_rpm``).
    limited: int = 0
    #: The key's requests in flight as each admitted request arrived (arrival order, bounded),
    #: and the most ever: what a client's concurrency looked like from the server.
    key_in_flight_seen: deque[int] = attrs.Factory(lambda: deque(maxlen=MAX_EVENTS))
    max_key_in_flight: int = 0
    #: Monotonic arrival times of the most recent generation submits.
    submit_times: deque[float] = attrs.Factory(lambda: deque(maxlen=10_000))

    def enter(self, kind: str) -> None:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_by_kind[kind] += 1
        seen = self.in_flight_by_kind[kind]
        self.max_in_flight_by_kind[kind] = max(self.max_in_flight_by_kind[kind], seen)

    def leave(self, kind: str) -> None:
        self.in_flight -= 1
        self.in_flight_by_kind[kind] -= 1

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        for name in ("by_model", "image_inputs", "fault_kinds"):
            data[name] = dict(getattr(self, name))
        for name in ("in_flight_by_kind", "max_in_flight_by_kind"):
            data[name] = dict(getattr(self, name))
        data["submit_times"] = list(self.submit_times)
        data["key_in_flight_seen"] = list(self.key_in_flight_seen)
        return data
