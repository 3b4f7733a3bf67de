"""Hugging Face ``datasets``: an async batched map on the sandbox, one client per event loop,
closed when the map ends.
"""

from __future__ import annotations

import gc
import importlib.util
import json
from pathlib import Path

import pytest

from aihubmix_async import ConfigurationError, InvalidRequestError
from aihubmix_async.sandbox import Sandbox

from ..support import decode_image
from .conftest import require

require("datasets")

import datasets  # noqa: E402

from aihubmix_async.hf import FEATURES, ImageMap, generate_images  # noqa: E402


def prompts(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"id": [f"h{i}" for i in range(n)], "prompt": [f"a fox, study {i}" for i in range(n)]}
    )


def test_map_generates_a_row_per_prompt_with_errors_as_rows(endpoint: Sandbox) -> None:
    """Every prompt is a row; a refused one carries its error; images decode as Image."""
    endpoint.fail("status", status=400, message="scripted refusal", times=2)
    out = generate_images(prompts(10), model="gpt-image-1", concurrency=4, size="1024x1024")
    assert out.features == FEATURES
    assert sorted(out["id"]) == sorted(f"h{i}" for i in range(10))
    assert endpoint.stats.submits == 10
    failed = out.filter(lambda row: row["error_type"] is not None)
    assert len(failed) == 2
    assert set(failed["error_type"]) == {"BadRequestError"}
    assert all("scripted refusal" in message for message in failed["error_message"])
    assert failed["image"] == [None, None]
    good = out.filter(lambda row: row["error_type"] is None).cast_column(
        "image", datasets.Image(decode=False)
    )
    for row in good:
        assert decode_image(row["image"]["bytes"])[0] == "PNG"
        assert row["request_id"]
        assert json.loads(row["params"]) == {"size": "1024x1024"}
    # One client per map, bounded by concurrency, shared by every batch of the map.
    assert endpoint.stats.max_key_in_flight <= 4


def test_the_client_is_closed_when_the_map_ends(endpoint: Sandbox) -> None:
    """Leaving the block closes the map's client on its own loop: no unclosed session."""
    function = ImageMap("gpt-image-1", concurrency=2)
    with function as generate:
        prompts(4).map(generate, batched=True, batch_size=2, remove_columns=["id", "prompt"])
        clients = [client for client, _ in function._clients.values()]
        assert len(clients) == 1  # one client for the map's event loop, not one per batch
    assert function._clients == {}
    assert repr(clients[0]).endswith("state=closed)")
    del clients
    gc.collect()  # an unclosed aiohttp session would warn here, and warnings are errors


def test_a_second_map_closes_the_first_maps_client(endpoint: Sandbox) -> None:
    """Each map runs a new loop; the client of a finished map is closed when the next starts."""
    function = ImageMap("gpt-image-1", concurrency=2)
    with function as generate:
        prompts(2).map(generate, batched=True, remove_columns=["id", "prompt"])
        first, _ = next(iter(function._clients.values()))
        prompts(2).map(generate, batched=True, remove_columns=["id", "prompt"])
        assert repr(first).endswith("state=closed)")
        assert len(function._clients) == 1
    assert endpoint.stats.submits == 4


def test_bad_input_is_refused_before_anything_is_sent(endpoint: Sandbox) -> None:
    """A wrong parameter or a key in the options fails up front; nothing is billed."""
    with pytest.raises(InvalidRequestError, match="sise"):
        generate_images(prompts(2), model="gpt-image-1", sise="big")
    with pytest.raises(ConfigurationError, match="AIHUBMIX_API_KEY"):
        ImageMap("gpt-image-1", client_options={"api_key": "sk-hf-test"})
    assert endpoint.stats.submits == 0


def test_a_bad_endpoint_is_refused_up_front(
    endpoint: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base URL the client cannot use fails before the map starts; nothing is sent."""
    monkeypatch.setenv("AIHUBMIX_BASE_URL", "ftp://example.invalid")
    with pytest.raises(InvalidRequestError, match="base_url"):
        generate_images(prompts(3), model="gpt-image-1")
    assert endpoint.stats.submits == 0


def test_the_example_maps_every_prompt(
    endpoint: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/hf_generate.py saves a dataset whose images load back as Image."""
    examples = Path(__file__).parents[2] / "examples"
    monkeypatch.syspath_prepend(str(examples))
    spec = importlib.util.spec_from_file_location("hf_generate", examples / "hf_generate.py")
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.run(tmp_path / "out") == (12, 0)
    saved = datasets.load_from_disk(str(tmp_path / "out"))
    assert saved.features["image"] == datasets.Image()
    assert saved.cast_column("image", datasets.Image(decode=False))[0]["image"]["bytes"]
