"""Black Forest Labs Flux (spec §4).

* ``bfl/flux-kontext-max``, ``bfl/flux-kontext-pro``, ``bfl/flux-2-pro``, ``bfl/flux-2-flex`` are
  two-step: the predictions call answers ``output[0].taskId`` (+ ``polling_url``), then
  ``GET {tasks_url}/v1/tasks/<taskId>`` is polled. The poll body is undocumented: ``status`` /
  ``state`` / ``task_status`` is read case-insensitively; Ready/completed/succeeded/success/done
  are done, anything with "moderated" is a content rejection, Error/Failed/canceled fail, all
  else keeps polling. Images from ``result.sample``, ``output[*]``, ``url``/``urls``/``image``.
* ``FLUX.1-Kontext-pro`` and ``FLUX-1.1-pro`` are one-step on the OpenAI-compatible
  ``POST /v1/images/generations`` (``{"model", "prompt", ...}`` -> ``data[].b64_json``), the only
  route documented for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._converter import converter
from .._errors import InvalidRequestError, ResponseFormatError
from .._types import JSONObject, JSONValue
from ._base import (
    Adapter,
    ModelSpec,
    Parsed,
    PreparedRequest,
    TaskState,
    TaskStatus,
    first_string,
    param,
    read_images,
    read_usage,
)

__all__ = ["FluxAsyncAdapter", "FluxAsyncParams", "FluxSyncAdapter", "FluxSyncParams"]

_RATIOS = ("21:9", "16:9", "3:2", "4:3", "1:1", "3:4", "2:3", "9:16", "9:21")


@attrs.frozen(kw_only=True)
class FluxAsyncParams:
    aspect_ratio: str | None = param(str, choices=_RATIOS)
    safety_tolerance: int | None = param(
        int,
        minimum=0,
        maximum=6,
        description="0 strict .. 6 lenient (flux-2: 5); <= 2 with input_image",
    )
    seed: int | None = param(int, minimum=0, maximum=2**32 - 1)
    input_image: str | None = param(str, description="URL or base64 / data URI (image-to-image)")
    prompt_upsampling: bool | None = param(bool)
    output_format: str | None = param(str, choices=("jpeg", "png"))
    width: int | None = param(int, minimum=64, maximum=4096)
    height: int | None = param(int, minimum=64, maximum=4096)
    raw: bool | None = param(bool, description="flux-2 only")

    def __attrs_post_init__(self) -> None:
        if self.input_image is not None and (self.safety_tolerance or 0) > 2:
            raise InvalidRequestError(
                "parameter 'safety_tolerance' must be at most 2 with an 'input_image';"
                f" got {self.safety_tolerance}",
                field="safety_tolerance",
            )
        if (self.width is None) != (self.height is None):
            raise InvalidRequestError("give both 'width' and 'height', or neither", field="width")


_DONE = frozenset({"ready", "completed", "complete", "succeeded", "success", "done", "finished"})
_FAILED = frozenset({"error", "failed", "failure", "canceled", "cancelled", "aborted", "expired"})


class FluxAsyncAdapter(Adapter):
    name = "bfl-flux-async"
    models = (
        ModelSpec(path="bfl/flux-kontext-max", aliases=("flux-kontext-max",)),
        ModelSpec(path="bfl/flux-kontext-pro", aliases=("flux-kontext-pro",)),
        ModelSpec(path="bfl/flux-2-pro", aliases=("flux-2-pro",)),
        ModelSpec(path="bfl/flux-2-flex", aliases=("flux-2-flex",)),
    )
    params_class = FluxAsyncParams
    image_params = {"input_image": "base64"}
    asynchronous = True
    expected = "output[0].taskId on submit; a task status with result.sample / output[] when done"

    def validate(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        values = super().validate(model_path, prompt, params)
        flux2 = "flux-2" in model_path
        if flux2 and (values.safety_tolerance or 0) > 5:
            raise InvalidRequestError(
                f"parameter 'safety_tolerance' must be between 0 and 5;"
                f" got {values.safety_tolerance}",
                field="safety_tolerance",
                model=model_path,
            )
        if not flux2 and values.raw is not None:
            raise InvalidRequestError(
                "parameter 'raw' is only accepted by flux-2 models",
                field="raw",
                model=model_path,
            )
        return values

    def parse(self, body: JSONValue) -> Parsed:
        if isinstance(body, dict):
            output = body.get("output")
            entry = output[0] if isinstance(output, list) and output else output
            if isinstance(entry, dict):
                task_id = first_string(entry, "taskId", "task_id", "id")
                if task_id:
                    return Parsed(task_id=task_id, polling_url=first_string(entry, "polling_url"))
            task_id = first_string(body, "taskId", "task_id")
            if task_id:
                return Parsed(task_id=task_id, polling_url=first_string(body, "polling_url"))
        images = read_images(body, self.expected)  # a submit that answers with the image at once
        if not images:
            raise ResponseFormatError(
                "no taskId and no image in submit response", expected=self.expected
            )
        return Parsed(images=images, usage=read_usage(body))

    def parse_task(self, body: JSONValue) -> TaskState:
        if not isinstance(body, dict):
            raise ResponseFormatError("task status is not a JSON object", expected=self.expected)
        raw = first_string(body, "status", "state", "task_status")
        status = (raw or "").strip().lower()
        message = first_string(body, "message", "detail", "failure_reason", "error")
        if "moderat" in status:
            return TaskState(status=TaskStatus.MODERATED, message=message or raw)
        if status in _FAILED:
            return TaskState(status=TaskStatus.FAILED, message=message or raw)
        images = read_images(body, self.expected)
        if status in _DONE or (not status and images):
            if not images:
                raise ResponseFormatError("task is done but has no image", expected=self.expected)
            return TaskState(status=TaskStatus.DONE, parsed=Parsed(images=images))
        return TaskState(status=TaskStatus.PENDING, message=raw)


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
    models = (
        ModelSpec(path="FLUX.1-Kontext-pro"),
        ModelSpec(path="FLUX-1.1-pro"),
    )
    params_class = FluxSyncParams
    route = "images/generations"
    expected = "data[] of {b64_json} / {url} (OpenAI-compatible images response)"

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest:
        values = self.validate(model_path, prompt, params)
        body: JSONObject = {"model": model_path, "prompt": prompt, **converter.unstructure(values)}
        return PreparedRequest(method="POST", path="/v1/images/generations", json=body)
