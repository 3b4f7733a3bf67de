"""Google Imagen 3 / 4 (spec §3), always sent as ``google/<id>``.

The count field is ``numberOfImages`` in the docs' examples and ``sampleCount`` in the Chinese
table; both are accepted (not together). Response shape is undocumented: a URL list is most
likely; ``output[]`` of ``{url}`` / ``{b64_json}`` / strings and ``files[].uri`` are all accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import InvalidRequestError
from ._base import Adapter, ModelSpec, param

__all__ = ["ImagenAdapter", "ImagenParams"]


@attrs.frozen(kw_only=True)
class ImagenParams:
    numberOfImages: int | None = param(int, minimum=1, maximum=4, description="default 4")
    sampleCount: int | None = param(
        int, minimum=1, maximum=4, description="alias of numberOfImages"
    )
    aspectRatio: str | None = param(str, choices=("1:1", "3:4", "4:3", "9:16", "16:9"))
    personGeneration: str | None = param(str, choices=("DONT_ALLOW", "ALLOW_ADULT"))

    def __attrs_post_init__(self) -> None:
        if self.numberOfImages is not None and self.sampleCount is not None:
            raise InvalidRequestError(
                "give either 'numberOfImages' or 'sampleCount', not both", field="sampleCount"
            )


_IDS = (
    "imagen-4.0-ultra-generate-001",
    "imagen-4.0-generate-001",
    "imagen-4.0-fast-generate-001",
    "imagen-4.0-fast-generate-preview-06-06",
    "imagen-3.0-generate-002",
)


class ImagenAdapter(Adapter):
    name = "google-imagen"
    models = tuple(ModelSpec(path=f"google/{i}", aliases=(i,)) for i in _IDS)
    params_class = ImagenParams
    expected = "output[] of {url} / {b64_json} / URL strings, or output.files[].uri"

    def validate(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        values = super().validate(model_path, prompt, params)
        count = values.numberOfImages or values.sampleCount
        if "ultra" in model_path and count is not None and count > 1:
            raise InvalidRequestError(
                f"the ultra model generates 1 image per request; got {count}",
                field="numberOfImages",
                model=model_path,
            )
        return values
