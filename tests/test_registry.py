"""The registry: aliases, paths sent as written, overrides, and entry-point plugins."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aihubmix_async import InvalidRequestError, ModelName, ProviderLoadError, Registry
from aihubmix_async.providers import ModelSpec
from aihubmix_async.providers.stability import StabilityAdapter
from aihubmix_async.sandbox import Sandbox

from .conftest import decode_image, make_client


def test_aliases_and_paths() -> None:
    """Aliases map to the documented path; a written path is kept; case does not matter."""
    registry = Registry.default()
    assert registry.resolve("gpt-image-1")[1] == "openai/gpt-image-1"
    assert registry.resolve("opanai/gpt-image-1")[1] == "opanai/gpt-image-1"
    assert registry.resolve("GPT-IMAGE-1")[1] == "openai/gpt-image-1"
    assert registry.resolve("flux-kontext-max")[1] == "bfl/flux-kontext-max"
    assert registry.resolve("flux.1-kontext-pro")[1] == "FLUX.1-Kontext-pro"


def test_later_registration_wins() -> None:
    """Registering an adapter for a known name replaces the earlier owner."""

    class Override(StabilityAdapter):
        models = (ModelSpec(path="openai/gpt-image-1", aliases=("gpt-image-1",)),)

    registry = Registry.default()
    override = Override()
    registry.register(override)
    assert registry.resolve("gpt-image-1")[0] is override


def test_not_an_adapter_is_refused() -> None:
    """Registering an object without the adapter interface fails clearly."""
    with pytest.raises(ProviderLoadError):
        Registry().register(object())  # type: ignore[arg-type]


def test_unknown_model() -> None:
    """Unknown names raise InvalidRequestError with close matches."""
    with pytest.raises(InvalidRequestError, match="did you mean 'ideogram/V3'"):
        Registry.default().resolve("ideogram/V2")


PLUGIN = """
from aihubmix_async.providers import ModelSpec
from aihubmix_async.providers.stability import StabilityAdapter


class PainterAdapter(StabilityAdapter):
    name = "acme-painter"
    models = (ModelSpec(path="stability/acme-painter", aliases=("acme-painter",)),)


def broken():
    raise RuntimeError("plugin exploded")
"""


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Iterator[Path]:
    """A tiny installed distribution declaring adapters in the entry-point group."""
    (tmp_path / "acme_painter.py").write_text(PLUGIN)
    dist = tmp_path / "acme_painter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-painter\nVersion: 1.0\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield dist
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_painter", None)


def write_entry_points(dist: Path, *lines: str) -> None:
    body = "[aihubmix_async.providers]\n" + "\n".join(lines) + "\n"
    (dist / "entry_points.txt").write_text(textwrap.dedent(body))


async def test_entry_point_plugin_generates(plugin_dist: Path, sandbox: Sandbox) -> None:
    """A third-party adapter from the entry-point group is loaded lazily and used."""
    write_entry_points(plugin_dist, "painter = acme_painter:PainterAdapter")
    registry = Registry.default()
    assert "acme_painter" not in sys.modules  # nothing loaded up front
    async with make_client(sandbox, registry=registry) as client:
        result = await client.generate(ModelName("acme-painter"), "a cat")
    assert decode_image(result.image.data)[0] == "PNG"
    assert sandbox.stats.by_model == {"stability/acme-painter": 1}
    assert any(m.path == "stability/acme-painter" for m in registry.models())


def test_broken_entry_point_is_provider_load_error(plugin_dist: Path) -> None:
    """A plugin that fails to load raises ProviderLoadError naming the entry point."""
    write_entry_points(plugin_dist, "broken = acme_painter:broken")
    with pytest.raises(ProviderLoadError, match="'broken'"):
        Registry.default().resolve("not-a-builtin-model")


def test_constructor_takes_only_public_options() -> None:
    """The constructor exposes no private state: only load_entry_points, by keyword."""
    registry = Registry(load_entry_points=False)
    assert registry.load_entry_points is False
    for private in ("entries", "_entries", "folded", "adapters", "entry_points_loaded"):
        with pytest.raises(TypeError):
            Registry(**{private: {}})  # type: ignore[arg-type]
    assert "Registry of 0 adapters" in repr(registry)
