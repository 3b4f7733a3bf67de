"""Spend keywords misspelt or mistyped (issue 12, hostile pass): each line must be an error for
mypy and for pyright, like ``mistakes.py``. ``max_images`` is Doubao's count parameter, not a
cap: on a model without it, it is an error too.
"""

from __future__ import annotations

from aihubmix_async import BlockingClient, Client


def caps(client: Client, blocking: BlockingClient) -> None:
    client.batch(["a"], model="imagen-4.0-fast-generate-001", max_costs=1.0)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    client.batch(["a"], model="imagen-4.0-fast-generate-001", max_images=3)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="imagen-4.0-fast-generate-001", max_cost="5")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="gpt-image-1", max_total_images=2.5)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    blocking.batch(["a"], model="imagen-4.0-fast-generate-001", max_costs=1.0)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]


def caps_that_type_check(client: Client) -> None:
    client.batch(["a"], model="imagen-4.0-fast-generate-001", max_cost=5, max_total_images=10)
    client.batch(["a"], model="seedream-4.0", max_images=3, max_total_images=10)
