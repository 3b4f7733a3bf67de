"""Qwen image and image edit on Qianfan — ``qianfan/qwen-image``, ``qianfan/qwen-image-edit``
(reference §7). Sizes are accepted as ``1024x1024`` or ``1024*1024`` and sent in the ``x`` form
of the docs' examples. Response: ``output[]`` of ``{url}``.
"""

from __future__ import annotations

import attrs

from ._base import Adapter, Answer, ModelSpec, param

__all__ = ["QwenImageAdapter", "QwenImageEditAdapter", "QwenImageEditParams", "QwenImageParams"]

_SIZES = ("512x1024", "768x512", "768x1024", "1024x576", "576x1024", "1024x1024")


def _x_form(size: object) -> object:
    return size.replace("*", "x") if isinstance(size, str) else size


@attrs.frozen(kw_only=True)
class QwenImageParams:
    refer_image: str | None = param(str, description="reference image URL")
    n: int | None = param(int, minimum=1, maximum=10)
    size: str | None = param(str, choices=_SIZES, normalise=_x_form)
    guidance: float | None = param(float, minimum=0, maximum=20)
    watermark: bool | None = param(bool)
    seed: int | None = param(int, minimum=0, maximum=2147483647)


@attrs.frozen(kw_only=True)
class QwenImageEditParams:
    image: str | None = param(str, required=True, description="the image to edit (URL)")
    n: int | None = param(int, minimum=1, maximum=10)
    size: str | None = param(str, choices=_SIZES, normalise=_x_form)
    watermark: bool | None = param(bool)
    seed: int | None = param(int, minimum=0, maximum=2147483647)


_ANSWER = Answer(shapes=("output[].url",), image_format="jpeg", count_params=("n",), sent_count="n")


class QwenImageAdapter(Adapter):
    name = "qwen-image"
    models = (ModelSpec(path="qianfan/qwen-image", aliases=("Qwen-Image", "qwen-image")),)
    params_class = QwenImageParams
    image_params = {"refer_image": "data_uri"}
    answer = _ANSWER


class QwenImageEditAdapter(Adapter):
    name = "qwen-image-edit"
    models = (
        ModelSpec(path="qianfan/qwen-image-edit", aliases=("Qwen-Image-Edit", "qwen-image-edit")),
    )
    params_class = QwenImageEditParams
    image_params = {"image": "data_uri"}
    answer = _ANSWER
