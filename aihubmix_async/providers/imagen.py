"""Google Imagen 3 / 4 (reference §3), always sent as ``google/<id>``.

The count field is ``numberOfImages`` in the docs' examples and ``sampleCount`` in the Chinese
table; both are accepted (not together). The ultra model makes one image per request, the
others four by default: ``numberOfImages: 1`` is sent unless a count is given (as the documented
examples do), so a call bills one image. Response shape is undocumented: a URL list is most likely;
``output[]`` of ``{url}`` / ``{b64_json}`` / strings, ``files[].uri`` and Google's native
``predictions[].bytesBase64Encoded`` (+ ``mimeType``) are all accepted; when Google filtered
every image, its ``raiFilteredReason`` is in the error.
"""

from __future__ import annotations

import attrs

from .._errors import InvalidRequestError, ResponseFormatError
from .._types import JSONValue
from ._base import Adapter, Answer, ModelSpec, Parsed, param

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


class ImagenAdapter(Adapter):
    name = "google-imagen"
    models = (
        ModelSpec(
            path="google/imagen-4.0-ultra-generate-001",
            aliases=("imagen-4.0-ultra-generate-001",),
            max_count=1,
        ),
        *(
            ModelSpec(path=f"google/{i}", aliases=(i,))
            for i in (
                "imagen-4.0-generate-001",
                "imagen-4.0-fast-generate-001",
                "imagen-4.0-fast-generate-preview-06-06",
                "imagen-3.0-generate-002",
            )
        ),
    )
    params_class = ImagenParams
    answer = Answer(
        shapes=(
            "output[].url",
            "output[].b64_json",
            "output[] strings",
            "predictions[].bytesBase64Encoded",
        ),
        count_params=("numberOfImages", "sampleCount"),
        default_count=4,
        sent_count="numberOfImages",
    )
    expected = (
        "output[] of {url} / {b64_json} / URL strings, output.files[].uri, or"
        " predictions[].bytesBase64Encoded"
    )

    def parse(self, body: JSONValue) -> Parsed:
        try:
            return super().parse(body)
        except ResponseFormatError:
            predictions = body.get("predictions") if isinstance(body, dict) else None
            reasons = [
                str(p["raiFilteredReason"])
                for p in (predictions if isinstance(predictions, list) else [])
                if isinstance(p, dict) and p.get("raiFilteredReason")
            ]
            if not reasons:
                raise
            raise ResponseFormatError(
                f"response contains no image (filtered: {'; '.join(reasons)})",
                expected=self.expects,
            ) from None
