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
