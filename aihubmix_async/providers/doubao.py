"""ByteDance Doubao Seedream 4.0 / 4.5 (spec §8). Response: ``output[]`` of ``{url}`` (signed,
24 h); with ``response_format`` set to base64, ``{b64_json}`` entries are accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import InvalidRequestError
from .._types import JSONValue
from ._base import Adapter, ModelSpec, param

__all__ = ["DoubaoAdapter", "DoubaoParams"]


@attrs.frozen(kw_only=True)
class DoubaoParams:
    size: str | None = param(str, choices=("1K", "2K", "4K"), description="1K not on 4-5")
    sequential_image_generation: str | None = param(str, choices=("auto", "disabled"))
    max_images: int | None = param(
        int, minimum=1, maximum=15, description="sent as sequential_image_generation_options"
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
        if isinstance(self.image, list) and not all(isinstance(i, str) for i in self.image):
            raise InvalidRequestError("parameter 'image' must hold URL strings", field="image")


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
            path="doubao/doubao-seedream-4-5", aliases=("doubao-seedream-4-5", "seedream-4.5")
        ),
    )
    params_class = DoubaoParams
    image_params = {"image": "data_uri"}

    def validate(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        values = super().validate(model_path, prompt, params)
        if "4-5" in model_path and values.size == "1K":
            raise InvalidRequestError(
                "parameter 'size' must be one of '2K', '4K'; got '1K'",
                field="size",
                model=model_path,
            )
        return values

    def build_request(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        request = super().build_request(model_path, prompt, params)
        body = request.json["input"]
        assert isinstance(body, dict)
        max_images: JSONValue = body.pop("max_images", None)
        if max_images is not None:
            body["sequential_image_generation_options"] = {"max_images": max_images}
        return request
