"""Baidu iRAG and ERNIE iRAG edit on Qianfan — ``qianfan/irag-1.0``, ``qianfan/ernie-irag-edit``
(reference §9). Response: ``output[]`` of ``{url}``.
"""

from __future__ import annotations

import attrs

from ._base import Adapter, Answer, ModelSpec, param

__all__ = ["ErnieIragEditAdapter", "ErnieIragEditParams", "IragAdapter", "IragParams"]


@attrs.frozen(kw_only=True)
class IragParams:
    refer_image: str | None = param(str, description="reference image URL")
    n: int | None = param(int, minimum=1, maximum=4)
    size: str | None = param(str, description="e.g. 1024x1024")
    guidance: float | None = param(float, minimum=1, maximum=20)
    watermark: bool | None = param(bool)


@attrs.frozen(kw_only=True)
class ErnieIragEditParams:
    image: str | None = param(str, required=True, description="the image to edit (URL)")
    feature: str | None = param(str, choices=("erase", "repaint", "variation"))
    guidance: float | None = param(float, minimum=1, maximum=20)
    watermark: bool | None = param(bool)


_ANSWER = Answer(shapes=("output[].url",), image_format="jpeg", count_params=("n",), sent_count="n")


class IragAdapter(Adapter):
    name = "baidu-irag"
    models = (ModelSpec(path="qianfan/irag-1.0", aliases=("irag-1.0",)),)
    params_class = IragParams
    image_params = {"refer_image": "data_uri"}
    answer = _ANSWER


class ErnieIragEditAdapter(Adapter):
    name = "baidu-ernie-irag-edit"
    models = (ModelSpec(path="qianfan/ernie-irag-edit", aliases=("ernie-irag-edit",)),)
    params_class = ErnieIragEditParams
    image_params = {"image": "data_uri"}
    answer = _ANSWER
