"""The registry of provider adapters: model name -> (adapter, path to send)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from importlib.metadata import entry_points

import attrs

from ._errors import InvalidRequestError, ProviderLoadError
from ._models import ModelInfo
from .providers import BUILTIN_ADAPTERS, ProviderAdapter

__all__ = ["ENTRY_POINT_GROUP", "Registry"]

ENTRY_POINT_GROUP = "aihubmix_async.providers"


@attrs.frozen
class _Entry:
    adapter: ProviderAdapter
    path: str


class Registry:
    """Maps model names (paths and aliases) to adapters. Later registrations win.

    A path is sent as written; an alias resolves to its adapter's documented path. Third-party
    adapters declared in the ``aihubmix_async.providers`` entry-point group are loaded on the
    first lookup that misses, and whenever the model list is asked for
    (``load_entry_points=False`` turns that off).
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.load_entry_points = load_entry_points
        self._entries: dict[str, _Entry] = {}
        self._folded: dict[str, str] = {}
        self._adapters: list[ProviderAdapter] = []
        self._entry_points_loaded = False

    def __repr__(self) -> str:
        return f"<Registry of {len(self._adapters)} adapters, {len(self._entries)} names>"

    @classmethod
    def default(cls) -> Registry:
        """A registry holding every built-in adapter."""
        registry = cls()
        for adapter in BUILTIN_ADAPTERS:
            registry.register(adapter)
        return registry

    def register(self, adapter: ProviderAdapter) -> None:
        """Serve every model path and alias of ``adapter``, replacing earlier owners."""
        if not isinstance(adapter, ProviderAdapter):
            raise ProviderLoadError(f"{adapter!r} does not implement the ProviderAdapter protocol")
        self._adapters.append(adapter)
        for spec in adapter.models:
            for name in (spec.path, *spec.aliases):
                self._entries[name] = _Entry(adapter, spec.path)
                self._folded[name.lower()] = name

    def resolve(self, model: str) -> tuple[ProviderAdapter, str]:
        """(adapter, path to send) for a model name; InvalidRequestError if unknown."""
        if not isinstance(model, str) or not model:
            raise InvalidRequestError(
                f"model must be a non-empty string, got {model!r}", field="model"
            )
        entry = self._lookup(model)
        if entry is None and not self._entry_points_loaded:
            self._load_entry_points()
            entry = self._lookup(model)
        if entry is None:
            near = difflib.get_close_matches(model, list(self._entries), n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise InvalidRequestError(
                f"unknown model {model!r}{hint}", field="model", model=model, hint="models"
            )
        # Every served path (opanai/ and openai/ alike) is its own entry, so a path the user
        # writes is sent as written; aliases and other casings get the canonical spelling.
        return entry.adapter, entry.path

    def _lookup(self, model: str) -> _Entry | None:
        entry = self._entries.get(model)
        if entry is None and (name := self._folded.get(model.lower())) is not None:
            entry = self._entries.get(name)
        return entry

    def models(self) -> tuple[ModelInfo, ...]:
        """Every model path served, with its aliases and parameters."""
        if not self._entry_points_loaded:
            self._load_entry_points()
        seen: dict[str, ModelInfo] = {}
        for name, entry in self._entries.items():
            if name == entry.path and name not in seen:
                seen[name] = entry.adapter.describe(entry.path)
        return tuple(seen.values())

    def _load_entry_points(self) -> None:
        self._entry_points_loaded = True
        if not self.load_entry_points:
            return
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
                adapters = _as_adapters(loaded() if callable(loaded) else loaded)
            except Exception as exc:
                raise ProviderLoadError(
                    f"provider entry point {ep.name!r} ({ep.value}) failed to load: {exc!r}"
                ) from exc
            for adapter in adapters:
                self.register(adapter)


def _as_adapters(obj: object) -> list[ProviderAdapter]:
    if isinstance(obj, ProviderAdapter):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        items = list(obj)
        if all(isinstance(item, ProviderAdapter) for item in items):
            return items
    raise TypeError(f"expected a ProviderAdapter or an iterable of them, got {type(obj).__name__}")
