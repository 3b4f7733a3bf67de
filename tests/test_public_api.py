"""The public surface is deliberate: __all__ matches the namespace and names the package."""

from __future__ import annotations

import importlib.resources
import types

import aihubmix_async


def test_all_matches_public_namespace() -> None:
    """Every public name is in __all__ and every __all__ name exists (no accidental surface)."""
    public = {
        name
        for name, value in vars(aihubmix_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(aihubmix_async.__all__)
    assert sorted(aihubmix_async.__all__) == list(aihubmix_async.__all__)


def test_exported_objects_name_the_package() -> None:
    """Tracebacks say aihubmix_async.Client, not aihubmix_async._client.Client."""
    for name in aihubmix_async.__all__:
        module = getattr(getattr(aihubmix_async, name), "__module__", None)
        if module is not None and isinstance(getattr(aihubmix_async, name), type):
            assert module == "aihubmix_async", name


def test_py_typed_ships() -> None:
    """Type checkers see the package as typed."""
    assert importlib.resources.files("aihubmix_async").joinpath("py.typed").is_file()


def test_error_tree() -> None:
    """Errors can be caught by category, including the stdlib bases."""
    a = aihubmix_async
    assert issubclass(a.InvalidRequestError, ValueError)
    assert issubclass(a.RequestTimeout, TimeoutError)
    assert issubclass(a.RequestTimeout, a.TransportError)
    assert issubclass(a.ConnectError, a.TransportError)
    assert issubclass(a.RateLimitError, a.APIStatusError)
    assert issubclass(a.ContentPolicyError, a.GenerationFailedError)
    for name in a.__all__:
        obj = getattr(a, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, a.AIHubMixError), name


def test_batch_values_are_one_type_wherever_imported() -> None:
    """The value types moved next to the other models; the old import path still works and
    yields the very same classes (the command line and dataset writer import it).
    """
    from aihubmix_async import _batch, _models

    for name in ("ImageRequest", "Outcome", "BatchProgress", "BatchSummary"):
        assert getattr(_batch, name) is getattr(_models, name) is getattr(aihubmix_async, name)
    assert _batch.request_from_mapping is _models.request_from_mapping


def test_version_and_user_agent_come_from_the_installed_package() -> None:
    from importlib.metadata import version

    from aihubmix_async._config import USER_AGENT

    assert aihubmix_async.__version__ == version("aihubmix-async")
    assert f"aihubmix-async/{aihubmix_async.__version__}" == USER_AGENT


def test_the_async_verbs_are_coroutine_functions() -> None:
    """Frameworks tell sync from async callables by introspection (FastAPI dependencies,
    anyio, ``inspect``): ``Client.generate`` must say it is a coroutine function on every
    supported Python, bound or not.
    """
    import asyncio
    import inspect

    client = aihubmix_async.Client(api_key="sk-test", base_url="http://127.0.0.1:9")
    for verb in (aihubmix_async.Client.generate, client.generate):
        assert inspect.iscoroutinefunction(verb)
        assert asyncio.iscoroutinefunction(verb)
