"""Qwen image and image edit on Qianfan — ``qianfan/qwen-image``, ``qianfan/qwen-image-edit``
(spec §7). Sizes are accepted as ``1024x1024`` or ``1024*1024`` and sent in the ``x`` form of
the docs' examples. Response: ``output[]`` of ``{url}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .._errors import InvalidRequestError
from ._base import Adapter, ModelSpec, param

__all__ = ["QwenImageAdapter", "QwenImageEditAdapter", "QwenImageEditParams", "QwenImageParams"]

_SIZES = ("512x1024", "768x512", "768x1024", "1024x576", "576x1024", "1024x1024")


def _normalise_size(params: Mapping[str, object]) -> Mapping[str, object]:
    size = params.get("size")
    if isinstance(size, str) and "*" in size:
        return {**params, "size": size.replace("*", "x")}
    return params


@attrs.frozen(kw_only=True)
class QwenImageParams:
    refer_image: str | None = param(str, description="reference image URL")
    n: int | None = param(int, minimum=1, maximum=10)
    size: str | None = param(str, choices=_SIZES)
    guidance: float | None = param(float, minimum=0, maximum=20)
    watermark: bool | None = param(bool)
    seed: int | None = param(int, minimum=0, maximum=2147483647)


@attrs.frozen(kw_only=True)
class QwenImageEditParams:
    image: str | None = param(str, description="the image to edit (URL); required")
    n: int | None = param(int, minimum=1, maximum=10)
    size: str | None = param(str, choices=_SIZES)
    watermark: bool | None = param(bool)
    seed: int | None = param(int, minimum=0, maximum=2147483647)

    def __attrs_post_init__(self) -> None:
        if self.image is None:
            raise InvalidRequestError("parameter 'image' is required for edits", field="image")


class QwenImageAdapter(Adapter):
    name = "qwen-image"
    models = (ModelSpec(path="qianfan/qwen-image", aliases=("Qwen-Image", "qwen-image")),)
    params_class: ClassVar[type] = QwenImageParams
    image_params: ClassVar[Mapping[str, str]] = {"refer_image": "data_uri"}

    def validate(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        return super().validate(model_path, prompt, _normalise_size(params))


class QwenImageEditAdapter(QwenImageAdapter):
    name = "qwen-image-edit"
    models = (
        ModelSpec(path="qianfan/qwen-image-edit", aliases=("Qwen-Image-Edit", "qwen-image-edit")),
    )
    params_class = QwenImageEditParams
    image_params = {"image": "data_uri"}
