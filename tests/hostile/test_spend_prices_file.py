"""Issue 12's ``--prices FILE`` / ``Client(prices=path)`` against hostile files: a FIFO nobody
writes, an endless device, a sparse giant, JSON nested past the recursion limit.

Every one must be refused with a clear typed error (exit 2 on the command line) before anything
is read in bulk or sent; none may hang or eat the machine's memory.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from aihubmix_async import Client, InvalidRequestError, PriceBook

MAX_PRICES_BYTES = 16 * 1024 * 1024  # the documented bound on a price file


def _dry_run(tmp_path: Path, prices: str | Path) -> subprocess.CompletedProcess[str]:
    """The real command in a child process whose memory is bounded (a file read whole must
    fail there, not take the machine), with the timeout as the bound on a hang.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")

    def bound_memory() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m", "qwen-image",
         "-o", str(tmp_path / "out"), "--dry-run", "--prices", str(prices)],
        capture_output=True, text=True, timeout=90, preexec_fn=bound_memory, check=False,
    )  # fmt: skip


def test_a_fifo_nobody_writes_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "prices.fifo"
    os.mkfifo(fifo)
    ran = _dry_run(tmp_path, fifo)
    assert ran.returncode == 2, ran.stderr
    assert "is not a regular file" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_an_endless_device_is_refused_not_read(tmp_path: Path) -> None:
    ran = _dry_run(tmp_path, "/dev/zero")
    assert ran.returncode == 2, ran.stderr
    assert "is not a regular file" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_giant_price_file_is_refused_by_its_size(tmp_path: Path) -> None:
    giant = tmp_path / "prices.json"
    with giant.open("wb") as handle:  # sparse: no disk is spent
        handle.truncate(MAX_PRICES_BYTES + 1)
    with pytest.raises(InvalidRequestError, match="larger than 16 MiB"):
        PriceBook.load(giant)
    with pytest.raises(InvalidRequestError, match="larger than 16 MiB"):
        Client(api_key="sk-test-1", prices=giant)


def test_json_nested_past_the_recursion_limit_is_a_bad_file(tmp_path: Path) -> None:
    deep = tmp_path / "prices.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InvalidRequestError, match="cannot read prices"):
        PriceBook.load(deep)


def test_a_file_at_the_size_bound_is_still_read(tmp_path: Path) -> None:
    body = '{"qwen-image": 0.03}'
    path = tmp_path / "prices.json"
    path.write_text(body + " " * (MAX_PRICES_BYTES - len(body)))
    price = PriceBook.load(path).price("qwen-image")
    assert price is not None
    assert price.per_image == 0.03


def test_an_astronomical_price_is_not_believed(tmp_path: Path) -> None:
    """$1e308 an image made a two-image result cost infinity, which the journal stored as no
    cost (so a folder cap counted it as free). A price file refuses it; a catalogue entry with
    it has no price (and ``max_cost`` then refuses the model up front).
    """
    path = tmp_path / "prices.json"
    path.write_text('{"imagen-4.0-fast-generate-001": 1e308}')
    with pytest.raises(InvalidRequestError, match="number from 0 to 1e6"):
        PriceBook.load(path)
    book = PriceBook.from_catalogue(
        {"data": [{"model_id": "imagen-4.0-fast-generate-001", "pricing": {"per_image": 1e308}}]}
    )
    assert book.price("imagen-4.0-fast-generate-001") is None
    assert PriceBook.from_mapping({"qwen-image": 1e6}).price("qwen-image") is not None
