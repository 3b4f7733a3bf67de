"""ByteDance Doubao Seedream 4.0 / 4.5 (reference §8). Response: ``output[]`` of ``{url}``
(signed, 24 h); with ``response_format`` set to base64, ``{b64_json}`` entries (an inferred
shape: the base64 variant is not evidenced). ``max_images`` is sent nested under
``sequential_image_generation_options``; 4.5 has no ``1K`` size (its own parameter class).
"""

from __future__ import annotations

import attrs

from .._errors import InvalidRequestError
from ._base import Adapter, Answer, ModelSpec, param

__all__ = ["DoubaoAdapter", "DoubaoParams"]


@attrs.frozen(kw_only=True)
class DoubaoParams:
    size: str | None = param(str, choices=("1K", "2K", "4K"))
    sequential_image_generation: str | None = param(str, choices=("auto", "disabled"))
    max_images: int | None = param(
        int,
        minimum=1,
        maximum=15,
        description="sent as sequential_image_generation_options",
        wire="sequential_image_generation_options.max_images",
    )
    stream: bool | None = param(bool, description="only false is supported")
    response_format: str | None = param(str, choices=("url", "b64_json", "base64_json"))
    watermark: bool | None = param(bool)
    seed: int | None = param(int, minimum=-1, maximum=2147483647)
    image: str | list[str] | None = param((str, list), description="URL or list of URLs")

    def __attrs_post_init__(self) -> None:
        if self.stream:
            raise InvalidRequestError("streaming responses are not supported", field="stream")
        if self.max_images is not None and self.sequential_image_generation != "auto":
            raise InvalidRequestError(
                "parameter 'max_images' needs sequential_image_generation='auto'",
                field="max_images",
            )


@attrs.frozen(kw_only=True)
class Doubao45Params(DoubaoParams):
    size: str | None = param(str, choices=("2K", "4K"), description="no 1K on 4.5")


class DoubaoAdapter(Adapter):
    name = "doubao-seedream"
    models = (
        ModelSpec(
            path="doubao/doubao-seedream-4-0", aliases=("doubao-seedream-4-0", "seedream-4.0")
        ),
        ModelSpec(
            path="doubao/doubao-seedream-4-0-250828", aliases=("doubao-seedream-4-0-250828",)
        ),
        ModelSpec(
            path="doubao/doubao-seedream-4-5",
            aliases=("doubao-seedream-4-5", "seedream-4.5"),
            params=Doubao45Params,
        ),
    )
    params_class = DoubaoParams
    image_params = {"image": "data_uri"}
    answer = Answer(
        shapes=("output[].url", "output[].b64_json"),
        switches=(
            ("response_format", "b64_json", "output[].b64_json"),
            ("response_format", "base64_json", "output[].b64_json"),
        ),
        image_format="jpeg",
    )
