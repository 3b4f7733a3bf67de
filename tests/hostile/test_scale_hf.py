"""Attacks on the Hugging Face ``datasets`` helper: a map without ``batched=True``, a wrong key,
Ctrl-C in the middle of a map. The sandbox runs on a thread of its own, as in tests/scale.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from aihubmix_async import InvalidRequestError
from aihubmix_async.sandbox import Sandbox

from ..scale_support import endpoint_in_env

pytest.importorskip("datasets")

import datasets

from aihubmix_async.hf import ImageMap, generate_images


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with endpoint_in_env(monkeypatch, "sk-hostile-hf") as sandbox:
        yield sandbox


def prompts(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"id": [f"h{i}" for i in range(n)], "prompt": [f"a fox, study {i}" for i in range(n)]}
    )


def test_a_map_without_batched_is_refused_before_anything_is_sent(endpoint: Sandbox) -> None:
    """Each row's prompt would otherwise be sent letter by letter, every letter billed."""
    with ImageMap("gpt-image-1") as generate, pytest.raises(InvalidRequestError, match="batched"):
        datasets.Dataset.from_dict({"prompt": ["a fox", "an owl"]}).map(generate)
    assert endpoint.stats.submits == 0


def test_a_wrong_key_sends_one_round_then_nothing(
    endpoint: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 rows with a key the server refuses: the map's batches all run on one loop and stop
    together after the first 401; every row comes back as an error row.
    """
    monkeypatch.setenv("AIHUBMIX_API_KEY", "sk-not-this-one")
    out = generate_images(
        prompts(40), model="gpt-image-1", concurrency=4, batch_size=4,
        client_options={"max_retries": 0},
    )  # fmt: skip
    assert len(out) == 40
    assert endpoint.stats.submits <= 4
    assert set(out["error_type"]) <= {"AuthenticationError", "BatchAbortedError"}
    assert "sk-not-this-one" not in "".join(out["error_message"])


# Run apart: a KeyboardInterrupt thrown through asyncio's C task code leaves CPython 3.11's
# recursion bookkeeping off (a later `ast.parse` fails), which must not spill into pytest.
CTRL_C = """
import datasets
from aihubmix_async.hf import ImageMap
seen = []
def interrupt(event):
    seen.append(event)
    if len(seen) == 3:
        raise KeyboardInterrupt
function = ImageMap("gpt-image-1", concurrency=2, client_options={"on_request": interrupt})
rows = datasets.Dataset.from_dict({"prompt": [f"a fox {i}" for i in range(12)]})
try:
    with function as generate:
        rows.map(generate, batched=True, batch_size=2, remove_columns=["prompt"])
except KeyboardInterrupt:
    print("caught KeyboardInterrupt; open clients:", len(function._clients))
"""


def test_ctrl_c_inside_a_request_reaches_the_caller_as_itself(endpoint: Sandbox) -> None:
    """``datasets`` runs its loop without asyncio's Ctrl-C handling, so the interrupt can land
    inside a request; the caller's ``except KeyboardInterrupt`` must still catch it (not an
    exception group), and the map's client is closed on the way out.
    """
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C], capture_output=True, text=True, timeout=100, check=False
    )
    assert done.stdout.strip() == "caught KeyboardInterrupt; open clients: 0", done.stderr
    assert done.returncode == 0
    assert endpoint.stats.submits <= 3


def test_num_proc_maps_every_row_once(endpoint: Sandbox, capfd: pytest.CaptureFixture[str]) -> None:
    """Two processes, each with its own client (odd batches): every row once, sent once, and
    no aiohttp complaint on the workers' stderr.
    """
    out = generate_images(prompts(9), model="gpt-image-1", concurrency=2, num_proc=2, batch_size=2)
    assert sorted(out["id"]) == sorted(f"h{i}" for i in range(9))
    assert set(out["error_type"]) == {None}
    assert endpoint.stats.submits == 9
    assert "Unclosed" not in capfd.readouterr().err
