"""The hand-written half of the typed call surface (the generated half is ``_typed_params`` and
``_typed_calls``, written by ``python -m aihubmix_async._typed_gen``).

``Client.generate`` and ``Client.batch`` have one overload per parameter family: the model names
the registry knows are ``Literal`` types, and each family's parameters a ``TypedDict`` whose
fixed choices are ``Literal`` values, so a type checker refuses a misspelt model, an unknown
parameter or a value out of the family's choices before the code runs.

A model the registry learns at run time (an entry-point plugin, a new path) goes through the
last overload, which takes a :data:`ModelName` and any parameters (checked at run time). It
takes a ``ModelName`` and not a plain ``str`` on purpose: with a ``str`` fallback, mypy and
pyright both match a misspelt literal (``"gpt-imag-1"``), and a known model with a wrong
parameter, to the fallback and report nothing. Wrapping a name read from a config file in
``ModelName(...)`` says "checked at run time" where it is meant.
"""

from __future__ import annotations

import os
from typing import IO, Any, Literal, NewType, Protocol, TypedDict

from ._batch import BatchTaskHook
from ._inputs import ImageInput
from ._models import ProgressHook

__all__ = ["BatchOptions", "GenerateOptions", "ImageValue", "ModelName"]

#: A model name checked at run time only (a plugin's model, a name from a config file):
#: ``client.generate(ModelName(name), prompt, **params)``. ``ModelName("x")`` is just ``"x"``.
ModelName = NewType("ModelName", str)


class _PillowImage(Protocol):
    """What the SDK uses of a Pillow image: it is saved as PNG into a buffer."""

    def save(self, fp: Any, format: str | None = None) -> None: ...  # noqa: A002 (Pillow's name)


#: Everything an image parameter accepts (see :class:`ImageInput`): a URL, a ``data:`` URI or
#: bare base64, a file path, bytes, a binary file object, an ImageInput or a Pillow image.
ImageValue = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | ImageInput | _PillowImage
)


class GenerateOptions(TypedDict, total=False):
    """The keyword options of ``generate`` besides the model's parameters."""

    download: bool
    deadline: float | None
    task_id: str | None


class BatchOptions(TypedDict, total=False):
    """The keyword options of ``batch`` besides ``model`` and the model's parameters."""

    concurrency: int | Literal["auto"] | None
    ordered: bool
    fail_fast: bool
    rpm: float | None
    deadline: float | None
    download: bool
    on_progress: ProgressHook | None
    on_task: BatchTaskHook | None
    give_up_after: float | None
    max_cost: float | None
    max_total_images: int | None
