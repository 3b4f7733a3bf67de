"""What :class:`BlockingClient` returns: the async results with a synchronous ``save()``.

``GeneratedImage.save`` is a coroutine (it writes in a worker thread so the event loop keeps
running); called without ``await`` in a script it writes nothing. The blocking facade hands
out these subclasses instead, whose ``save`` writes before it returns. They are the same
values otherwise (every field is copied), so ``isinstance(result, ImageResult)`` holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ._files import save_into
from ._models import Failure, GeneratedImage, ImageResult, Outcome, Success
from ._provenance import embed

__all__ = [
    "BlockingImage",
    "BlockingOutcome",
    "BlockingResult",
    "BlockingSuccess",
    "blocking",
    "blocking_result",
]

_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class BlockingImage(GeneratedImage):
    """A :class:`GeneratedImage` whose :meth:`save` blocks until the file is written."""

    # Overriding a coroutine with a plain method breaks substitutability on purpose: code that
    # holds a BlockingImage runs without an event loop and must not have to await.
    def save(  # type: ignore[override]
        self, path: str | os.PathLike[str], *, provenance: bool = True
    ) -> Path:
        """Write the image atomically (temporary name, then rename); returns the path.

        A directory path gets a file name chosen by content type. ``provenance`` as in
        :meth:`GeneratedImage.save`: the prompt, model and parameters go into the file's metadata.
        """
        if self.data is None:
            raise ValueError("image was not downloaded (download=False); nothing to save")
        data = embed(self.data, self.provenance) if provenance else self.data
        return save_into(Path(path), data, f"image{self.extension}")


@attrs.frozen(kw_only=True)
class BlockingResult(ImageResult):
    """An :class:`ImageResult` whose images save synchronously."""

    images: tuple[BlockingImage, ...]

    @property
    def image(self) -> BlockingImage:
        """The first image (every successful result has at least one)."""
        return self.images[0]


@attrs.frozen(kw_only=True)
class BlockingSuccess(Success):
    """A :class:`Success` whose result saves synchronously."""

    result: BlockingResult


#: A blocking batch's outcome: ``if outcome.ok: outcome.result.image.save(path)``.
BlockingOutcome = BlockingSuccess | Failure


def _copy(value: Any, cls: type[_T], **changes: Any) -> _T:
    """``value`` as an instance of its subclass ``cls``, every init field copied."""
    fields = {a.name: getattr(value, a.name) for a in attrs.fields(type(value)) if a.init}
    return cls(**{**fields, **changes})


def blocking_result(result: ImageResult) -> BlockingResult:
    images = tuple(_copy(image, BlockingImage) for image in result.images)
    return _copy(result, BlockingResult, images=images)


def blocking(outcome: Outcome) -> BlockingOutcome:
    """A batch outcome as the blocking facade hands it out."""
    if isinstance(outcome, Success):
        return _copy(outcome, BlockingSuccess, result=blocking_result(outcome.result))
    return outcome
