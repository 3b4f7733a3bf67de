"""Provider adapters: one module per model family, pure code (no I/O).

Third-party packages add adapters through the ``aihubmix_async.providers`` entry-point group;
an entry point names an adapter instance, an adapter class, or a callable returning adapters.
"""

from __future__ import annotations

from ._base import (
    ROUTES,
    SHAPES,
    Adapter,
    Answer,
    ModelSpec,
    Parsed,
    PreparedRequest,
    ProviderAdapter,
    RawImage,
    Route,
    TaskState,
    TaskStatus,
    TaskVocabulary,
    param,
)
from ._spec import Shape
from .baidu import ErnieIragEditAdapter, IragAdapter
from .doubao import DoubaoAdapter
from .flux import FluxAsyncAdapter, FluxSyncAdapter
from .gemini import GeminiImageAdapter
from .ideogram import IdeogramAdapter
from .imagen import ImagenAdapter
from .openai import DallE3Adapter, GptImageAdapter
from .qwen import QwenImageAdapter, QwenImageEditAdapter
from .stability import StabilityAdapter

__all__ = [
    "BUILTIN_ADAPTERS",
    "ROUTES",
    "SHAPES",
    "Adapter",
    "Answer",
    "ModelSpec",
    "Parsed",
    "PreparedRequest",
    "ProviderAdapter",
    "RawImage",
    "Route",
    "Shape",
    "TaskState",
    "TaskStatus",
    "TaskVocabulary",
    "param",
]


def builtin_adapters() -> tuple[ProviderAdapter, ...]:
    return (
        GptImageAdapter(),
        DallE3Adapter(),
        ImagenAdapter(),
        FluxAsyncAdapter(),
        FluxSyncAdapter(),
        IdeogramAdapter(),
        StabilityAdapter(),
        QwenImageAdapter(),
        QwenImageEditAdapter(),
        DoubaoAdapter(),
        IragAdapter(),
        ErnieIragEditAdapter(),
        GeminiImageAdapter(),
    )


BUILTIN_ADAPTERS: tuple[ProviderAdapter, ...] = builtin_adapters()
