"""The declarative parts of a family: models, routes, task vocabulary and answer shapes.

These records are pure data (plus the pure functions that build a body for a route and
render an answer in a shape). Adapters build requests and parse answers from them; the sandbox
mounts the same routes and answers in the same shapes, so there is one copy of each fact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import attrs

from .._types import JSONObject, JSONValue
from ._wire import FormPart, PreparedRequest, RawImage

__all__ = [
    "PREDICTIONS",
    "ROUTES",
    "SHAPES",
    "Answer",
    "ModelSpec",
    "Route",
    "Shape",
    "TaskVocabulary",
]

PREDICTIONS = "predictions"


@attrs.frozen(kw_only=True)
class ModelSpec:
    """A model path an adapter serves, with the short names that resolve to it.

    ``params`` replaces the family's parameter class for this model (a model with other ranges
    or extra options); ``max_count`` caps the family's image-count parameters.
    """

    path: str
    aliases: tuple[str, ...] = ()
    params: type | None = None
    max_count: int | None = None


# --- routes -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Unwrapped:
    """A request body as the server sees it: model, prompt and the option fields."""

    model: str | None
    prompt: object
    fields: dict[str, Any]


@attrs.frozen(kw_only=True)
class Route:
    """Where and how a family's request goes.

    ``envelope`` says where prompt and options sit: ``input`` (``{"input": {prompt, ...}}``),
    ``flat`` (``{model, prompt, ...}``, OpenAI-compatible), ``form`` (the same as multipart
    parts) or ``gemini`` (``contents[].parts[].text`` and ``generationConfig``).
    """

    name: str
    path: str  #: the request path; ``{model}`` is replaced by the model path
    envelope: str
    auth: str = "bearer"
    #: Body fields the route itself always sends (not parameters).
    fixed: JSONObject = attrs.field(factory=dict)
    #: The model is sent without its ``provider/`` namespace (the OpenAI-compatible routes).
    bare_model: bool = False
    #: Where a field sits, for error messages ("input.size").
    field_prefix: str = ""
    #: The answer shape of this route when a family uses it besides its own route.
    shape: str | None = None

    def url_path(self, model_path: str) -> str:
        return self.path.replace("{model}", model_path)

    def build(self, model_path: str, prompt: str, fields: Mapping[str, Any]) -> PreparedRequest:
        path = self.url_path(model_path)
        if self.envelope == "input":  # the common case first: it runs once per item
            body: JSONObject = {"input": {"prompt": prompt, **fields}}
            return PreparedRequest(method="POST", path=path, json=body, auth=self.auth)
        model = model_path.rsplit("/", 1)[-1] if self.bare_model else model_path
        if self.envelope == "flat":
            body = {"model": model, "prompt": prompt, **fields}
        elif self.envelope == "gemini":
            body = {
                "contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {**self.fixed, **fields},
            }
        else:
            return PreparedRequest(
                method="POST", path=path, form=_form(model, prompt, fields), auth=self.auth
            )
        return PreparedRequest(method="POST", path=path, json=body, auth=self.auth)

    def unwrap(self, body: Any, model: str | None) -> Unwrapped | str:
        """Read a body sent to this route (the emulator's side); a string is what is wrong."""
        if not isinstance(body, dict):
            return "the request body must be a JSON object"
        rest = dict(body)
        if self.envelope == "input":
            fields = rest.pop("input", None)
            if not isinstance(fields, dict):
                return "input must be an object"
            fields = dict(fields)
            prompt = fields.pop("prompt", None)
            return Unwrapped(model=model, prompt=prompt, fields={**rest, **fields})
        if self.envelope == "gemini":
            config = rest.pop("generationConfig", {})
            texts = [
                part.get("text")
                for content in _dicts(rest.pop("contents", None))
                for part in _dicts(content.get("parts"))
            ]
            prompt = " ".join(t for t in texts if isinstance(t, str)) or None
            fields = {k: v for k, v in _as_dict(config).items() if k not in self.fixed}
            return Unwrapped(model=model, prompt=prompt, fields={**rest, **fields})
        model = rest.pop("model", None)
        prompt = rest.pop("prompt", None)
        return Unwrapped(
            model=model if isinstance(model, str) else None, prompt=prompt, fields=rest
        )


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _form(
    model: str, prompt: str, fields: Mapping[str, JSONValue | RawImage]
) -> tuple[FormPart, ...]:
    parts = [FormPart(name="model", value=model), FormPart(name="prompt", value=prompt)]
    for name, value in fields.items():
        if isinstance(value, RawImage):
            mime = value.mime_type or "image/png"
            ext = {"image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}.get(
                mime, ".png"
            )
            parts.append(
                FormPart(
                    name=name, value=value.data or b"", filename=f"{name}{ext}", content_type=mime
                )
            )
        elif value is not None:
            parts.append(FormPart(name=name, value=str(value)))
    return tuple(parts)


ROUTES: dict[str, Route] = {
    route.name: route
    for route in (
        Route(
            name=PREDICTIONS,
            path="/v1/models/{model}/predictions",
            envelope="input",
            field_prefix="input.",
        ),
        Route(name="images/generations", path="/v1/images/generations", envelope="flat"),
        Route(
            name="images/edits",
            path="/v1/images/edits",
            envelope="form",
            bare_model=True,
            shape="data[].b64_json",
        ),
        Route(
            name="gemini",
            path="/gemini/v1beta/models/{model}:generateContent",
            envelope="gemini",
            auth="x-goog-api-key",
            fixed={"responseModalities": ["TEXT", "IMAGE"]},
            bare_model=True,
            field_prefix="generationConfig.",
        ),
    )
}


# --- tasks ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TaskVocabulary:
    """How a task-style family names its task states (matched case-insensitively).

    The first word of each set is what the emulator answers with.
    """

    status_keys: tuple[str, ...] = ("status", "state", "task_status")
    message_keys: tuple[str, ...] = ("message", "detail", "failure_reason", "error")
    id_keys: tuple[str, ...] = ("taskId", "task_id", "id")
    pending: tuple[str, ...] = ("Pending",)
    done: tuple[str, ...]
    failed: tuple[str, ...]
    #: A status containing this (case-insensitive) is a content rejection.
    moderated_marker: str = "moderat"
    moderated: tuple[str, ...] = ("Content Moderated",)
    #: The poll path below the tasks URL; ``{task_id}`` is replaced (percent-encoded).
    poll_path: str = "/v1/tasks/{task_id}"
    _done: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    _failed: frozenset[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_done", frozenset(w.lower() for w in self.done))
        object.__setattr__(self, "_failed", frozenset(w.lower() for w in self.failed))

    def path(self, task_id: str) -> str:
        return self.poll_path.replace("{task_id}", quote(task_id, safe=""))

    def is_done(self, status: str) -> bool:
        return status in self._done

    def is_failed(self, status: str) -> bool:
        return status in self._failed


# --- answer shapes ----------------------------------------------------------------------------

Render = Callable[[list[str], str, "JSONObject | None"], JSONObject]


@attrs.frozen(kw_only=True)
class Shape:
    """A documented answer shape: whether it carries images inline (base64) or as URLs, and
    how to write one (the emulator's side; adapters read every shape with the tolerant reader).
    """

    name: str
    inline: bool
    render: Render


def _usage(body: JSONObject, usage: JSONObject | None) -> JSONObject:
    return {**body, "usage": usage} if usage is not None else body


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape(
            name="output[].url",
            inline=False,
            render=lambda images, *_: {"output": [{"url": u} for u in images]},
        ),
        Shape(
            name="output[] strings",
            inline=False,
            render=lambda images, *_: {"output": list(images)},
        ),
        Shape(
            name="output[].b64_json",
            inline=True,
            render=lambda images, _fmt, usage: _usage(
                {"output": [{"b64_json": b} for b in images]}, usage
            ),
        ),
        Shape(
            name="output.b64_json[].bytesBase64",
            inline=True,
            render=lambda images, fmt, usage: _usage(
                {"output": {"b64_json": [{"bytesBase64": b, "mimeType": fmt} for b in images],
                            "urls": []}},
                usage,
            ),
        ),
        Shape(
            name="predictions[].bytesBase64Encoded",
            inline=True,
            render=lambda images, fmt, _usage: {
                "predictions": [{"bytesBase64Encoded": b, "mimeType": f"image/{fmt}"}
                                for b in images]
            },
        ),
        Shape(
            name="data[].b64_json",
            inline=True,
            render=lambda images, _fmt, usage: _usage(
                {"created": int(time.time()),
                 "data": [{"b64_json": b, "revised_prompt": None} for b in images]},
                usage,
            ),
        ),
        Shape(
            name="candidates[].content.parts[].inlineData",
            inline=True,
            render=lambda images, fmt, usage: {
                "candidates": [
                    {"content": {"role": "model",
                                 "parts": [{"inlineData": {"mimeType": f"image/{fmt}", "data": b}}
                                           for b in images]},
                     "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": usage["input_tokens"],
                    "candidatesTokenCount": usage["output_tokens"],
                    "totalTokenCount": usage["total_tokens"],
                } if usage else {},
            },
        ),
    )
}  # fmt: skip


@attrs.frozen(kw_only=True)
class Answer:
    """How a family answers a generation: its shapes (the first is the default), a parameter
    that switches the shape, the image format, and how many images it makes.
    """

    shapes: tuple[str, ...] = ("output[].url",)
    #: (parameter, value, shape): the answer shape when the parameter has that value.
    switches: tuple[tuple[str, str, str], ...] = ()
    image_format: str = "png"
    #: A parameter choosing the format ("output_format": "jpeg"|"png").
    format_param: str | None = None
    count_params: tuple[str, ...] = ()
    #: The server's count when the body has none (the emulator answers that many).
    default_count: int = 1
    #: The count parameter sent as 1 when the caller gives none, so that a call makes (and
    #: bills) one image unless more are asked for, whatever the server's default.
    sent_count: str | None = None
    #: Token usage the emulator reports per image (0 = no usage object).
    usage_per_image: int = 0

    def shape_for(self, fields: Mapping[str, Any], preferred: str | None = None) -> Shape:
        for name, value, shape in self.switches:
            if fields.get(name) == value:
                return SHAPES[shape]
        if preferred in self.shapes:
            return SHAPES[preferred]
        return SHAPES[self.shapes[0]]

    def count(self, fields: Mapping[str, Any], max_count: int | None) -> int:
        for name in self.count_params:
            value = fields.get(name)
            if isinstance(value, str) and value.isdigit():  # a multipart form field
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return min(self.default_count, max_count or self.default_count)

    def image_format_for(self, fields: Mapping[str, Any]) -> str:
        value = fields.get(self.format_param) if self.format_param else None
        return value if value in ("png", "jpeg") else self.image_format
