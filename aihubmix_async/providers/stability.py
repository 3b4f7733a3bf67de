"""Stability — ``stability/Stable-Diffusion-3-5-Large`` (reference §6).

Only ``prompt`` and ``n`` are documented; the response is undocumented, so every shape the
shared reader knows is accepted (``output[]`` of ``{b64_json}`` / ``{url}`` / strings).
"""

from __future__ import annotations

import attrs

from ._base import Adapter, Answer, ModelSpec, param

__all__ = ["StabilityAdapter", "StabilityParams"]


@attrs.frozen(kw_only=True)
class StabilityParams:
    n: int | None = param(int, minimum=1, maximum=4)


class StabilityAdapter(Adapter):
    name = "stability"
    models = (
        ModelSpec(
            path="stability/Stable-Diffusion-3-5-Large",
            aliases=("Stable-Diffusion-3-5-Large", "sd-3.5-large"),
        ),
    )
    params_class = StabilityParams
    answer = Answer(
        shapes=("output[].b64_json", "output[].url", "output[] strings"),
        count_params=("n",),
        sent_count="n",
    )
