"""Black Forest Labs Flux (reference §4).

* ``bfl/flux-kontext-max``, ``bfl/flux-kontext-pro``, ``bfl/flux-2-pro``, ``bfl/flux-2-flex`` are
  two-step: the predictions call answers ``output[0].taskId`` (+ ``polling_url``), then
  ``GET {tasks_url}/v1/tasks/<taskId>`` is polled. The poll body is undocumented: ``status`` /
  ``state`` / ``task_status`` is read case-insensitively against :data:`FLUX_TASKS`; images from
  ``result.sample``, ``output[*]``, ``url``/``urls``/``image``. flux-2 models take ``raw`` and
  cap ``safety_tolerance`` at 5 (their own parameter class).
* ``FLUX.1-Kontext-pro`` and ``FLUX-1.1-pro`` are one-step on the OpenAI-compatible
  ``POST /v1/images/generations`` (``{"model", "prompt", ...}`` -> ``data[].b64_json``), the only
  route documented for both.
"""

from __future__ import annotations

import re

import attrs

from .._errors import InvalidRequestError
from ._base import Adapter, Answer, ModelSpec, TaskVocabulary, param

__all__ = [
    "FLUX_TASKS",
    "Flux2Params",
    "FluxAsyncAdapter",
    "FluxAsyncParams",
    "FluxSyncAdapter",
    "FluxSyncParams",
]

_IMAGE_TOLERANCE = 2  # the highest safety_tolerance allowed with an input_image
_RATIO = re.compile(r"([1-9][0-9]{0,3}):([1-9][0-9]{0,3})")


def check_aspect_ratio(value: str | None) -> None:
    """Any ``W:H`` from 21:9 to 9:21 (reference §4a: "aspect_ratio from 21:9 to 9:21"), not
    just the common presets: ``2:1``, ``7:3``, ``5:4`` are all valid.
    """
    if value is None:
        return
    match = _RATIO.fullmatch(value)
    if match is None:
        raise InvalidRequestError(
            f"parameter 'aspect_ratio' must be W:H with positive whole numbers (e.g. '16:9');"
            f" got {value!r}",
            field="aspect_ratio",
        )
    width, height = int(match[1]), int(match[2])
    if width * 9 > height * 21 or height * 9 > width * 21:  # W/H > 21/9 or H/W > 21/9
        raise InvalidRequestError(
            f"parameter 'aspect_ratio' must be between 21:9 and 9:21; got {value!r}",
            field="aspect_ratio",
        )


@attrs.frozen(kw_only=True)
class FluxAsyncParams:
    aspect_ratio: str | None = param(
        str, description="W:H from 21:9 to 9:21, e.g. 16:9, 1:1, 2:1, 7:3, 4:5"
    )
    safety_tolerance: int | None = param(
        int, minimum=0, maximum=6, description="0 strict .. 6 lenient; <= 2 with input_image"
    )
    seed: int | None = param(int, minimum=0, maximum=2**32 - 1)
    input_image: str | None = param(str, description="URL or base64 / data URI (image-to-image)")
    prompt_upsampling: bool | None = param(bool)
    output_format: str | None = param(str, choices=("jpeg", "png"))
    width: int | None = param(int, minimum=64, maximum=4096)
    height: int | None = param(int, minimum=64, maximum=4096)

    def __attrs_post_init__(self) -> None:
        check_aspect_ratio(self.aspect_ratio)
        if self.input_image is not None and (self.safety_tolerance or 0) > _IMAGE_TOLERANCE:
            raise InvalidRequestError(
                f"parameter 'safety_tolerance' must be at most {_IMAGE_TOLERANCE} with an"
                f" 'input_image'; got {self.safety_tolerance}",
                field="safety_tolerance",
            )
        if (self.width is None) != (self.height is None):
            raise InvalidRequestError("give both 'width' and 'height', or neither", field="width")


@attrs.frozen(kw_only=True)
class Flux2Params(FluxAsyncParams):
    safety_tolerance: int | None = param(
        int, minimum=0, maximum=5, description="0 strict .. 5 lenient; <= 2 with input_image"
    )
    raw: bool | None = param(bool, description="less processed, more natural images")


#: BFL's get_result statuses (Pending, Ready, Error, Failed, Request/Content Moderated) plus
#: the words other clients of the tasks route accept (reference §4a).
FLUX_TASKS = TaskVocabulary(
    pending=("Pending",),
    done=("Ready", "completed", "complete", "succeeded", "success", "done", "finished"),
    failed=("Error", "failed", "failure", "canceled", "cancelled", "aborted", "expired"),
    moderated=("Content Moderated", "Request Moderated"),
)


class FluxAsyncAdapter(Adapter):
    name = "bfl-flux-async"
    models = (
        ModelSpec(path="bfl/flux-kontext-max", aliases=("flux-kontext-max",)),
        ModelSpec(path="bfl/flux-kontext-pro", aliases=("flux-kontext-pro",)),
        ModelSpec(path="bfl/flux-2-pro", aliases=("flux-2-pro",), params=Flux2Params),
        ModelSpec(path="bfl/flux-2-flex", aliases=("flux-2-flex",), params=Flux2Params),
    )
    params_class = FluxAsyncParams
    image_params = {"input_image": "base64"}
    tasks = FLUX_TASKS
    answer = Answer(shapes=("output[].url",), image_format="jpeg", format_param="output_format")
    expected = "output[0].taskId on submit; a task status with result.sample / output[] when done"


@attrs.frozen(kw_only=True)
class FluxSyncParams:
    safety_tolerance: int | None = param(int, minimum=0, maximum=6, description="default 6 here")
    seed: int | None = param(int, minimum=0, maximum=2**32 - 1)
    size: str | None = param(str, description="e.g. 1024x1024")
    n: int | None = param(int, minimum=1, maximum=1)
    output_format: str | None = param(str, choices=("jpeg", "png"))
    prompt_upsampling: bool | None = param(bool)


class FluxSyncAdapter(Adapter):
    name = "bfl-flux-sync"
    models = (ModelSpec(path="FLUX.1-Kontext-pro"), ModelSpec(path="FLUX-1.1-pro"))
    params_class = FluxSyncParams
    route = "images/generations"
    answer = Answer(shapes=("data[].b64_json",), format_param="output_format")
    expected = "data[] of {b64_json} / {url} (OpenAI-compatible images response)"
