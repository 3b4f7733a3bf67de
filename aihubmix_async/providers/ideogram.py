"""Ideogram V3 — ``ideogram/V3`` (reference §5).

``aspect_ratio`` is written ``WxH`` on the wire (``"2x1"``); ``2:1`` is accepted and converted.
The response JSON is undocumented: URL lists are expected (``output[]`` of strings or ``{url}``).
"""

from __future__ import annotations

import attrs

from ._base import Adapter, Answer, ModelSpec, param

__all__ = ["IdeogramAdapter", "IdeogramParams"]

_RATIOS = (
    "1x3", "3x1", "1x2", "2x1", "9x16", "16x9", "10x16", "16x10",
    "2x3", "3x2", "3x4", "4x3", "4x5", "5x4", "1x1",
)  # fmt: skip


def _x_form(ratio: object) -> object:
    return ratio.replace(":", "x") if isinstance(ratio, str) else ratio


@attrs.frozen(kw_only=True)
class IdeogramParams:
    rendering_speed: str | None = param(str, choices=("TURBO", "DEFAULT", "QUALITY"))
    aspect_ratio: str | None = param(
        str, choices=_RATIOS, description="WxH; W:H is converted", normalise=_x_form
    )
    seed: int | None = param(int, minimum=0, maximum=2147483647)
    negative_prompt: str | None = param(str)


class IdeogramAdapter(Adapter):
    name = "ideogram"
    models = (ModelSpec(path="ideogram/V3", aliases=("ideogram-v3", "V3")),)
    params_class = IdeogramParams
    answer = Answer(shapes=("output[] strings", "output[].url"))
