"""What every provider adapter shares: the adapter protocol, typed-parameter helpers and the
tolerant response readers. Pure code: nothing here performs I/O.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import enum
import functools
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import quote

import attrs

from .. import _json
from .._converter import converter
from .._errors import InvalidRequestError, ResponseFormatError
from .._models import ModelInfo, ParamInfo, Usage
from .._types import JSONObject, JSONValue

__all__ = [
    "PREDICTIONS",
    "Adapter",
    "FormPart",
    "ModelSpec",
    "Parsed",
    "PreparedRequest",
    "ProviderAdapter",
    "RawImage",
    "TaskState",
    "TaskStatus",
    "decode_base64_image",
    "elide_inline_images",
    "param",
    "read_images",
    "read_usage",
]

PREDICTIONS = "predictions"
_PARAM = "aihubmix_param"


@attrs.frozen(kw_only=True)
class FormPart:
    """One part of a multipart/form-data body (a field, or a file when ``filename`` is set)."""

    name: str
    value: str | bytes = attrs.field(repr=lambda v: f"<{len(v)}>")
    filename: str | None = None
    content_type: str | None = None


@attrs.frozen(kw_only=True)
class PreparedRequest:
    """What to send: method, path below the base URL, and a JSON body or multipart parts."""

    method: str
    path: str
    json: JSONObject = attrs.field(factory=dict)
    form: tuple[FormPart, ...] = ()
    #: How the key is sent: "bearer" (``Authorization: Bearer <key>``) or "x-goog-api-key".
    auth: str = "bearer"

    def encode(self) -> tuple[bytes, str]:
        """The body bytes and their Content-Type."""
        if not self.form:
            return _json.dumps(self.json), "application/json"
        boundary = f"aihubmix-{uuid.uuid4().hex}"
        chunks: list[bytes] = []
        for part in self.form:
            disposition = f'form-data; name="{part.name}"'
            if part.filename is not None:
                disposition += f'; filename="{part.filename}"'
            head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            if part.content_type:
                head += f"Content-Type: {part.content_type}\r\n"
            value = part.value.encode() if isinstance(part.value, str) else part.value
            chunks += [head.encode(), b"\r\n", value, b"\r\n"]
        chunks.append(f"--{boundary}--\r\n".encode())
        return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


@attrs.frozen(kw_only=True)
class RawImage:
    """An image as found in a response: inline bytes, or a URL still to download."""

    data: bytes | None = None
    url: str | None = None
    mime_type: str | None = None


@attrs.frozen(kw_only=True)
class Parsed:
    """A parsed response: images (inline or URLs), usage, or a task handle to poll."""

    images: tuple[RawImage, ...] = ()
    usage: Usage | None = None
    task_id: str | None = None
    polling_url: str | None = None


class TaskStatus(enum.Enum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    MODERATED = "moderated"


@attrs.frozen(kw_only=True)
class TaskState:
    status: TaskStatus
    parsed: Parsed = Parsed()
    message: str | None = None


@attrs.frozen(kw_only=True)
class ModelSpec:
    """A model path an adapter serves, with the short names that resolve to it."""

    path: str
    aliases: tuple[str, ...] = ()


@runtime_checkable
class ProviderAdapter(Protocol):
    """The interface the registry and the client rely on. Implementations do no I/O."""

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> tuple[ModelSpec, ...]: ...

    @property
    def asynchronous(self) -> bool: ...

    @property
    def route(self) -> str: ...

    @property
    def image_params(self) -> Mapping[str, str]: ...

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest: ...

    def parse(self, body: JSONValue) -> Parsed: ...

    def parse_task(self, body: JSONValue) -> TaskState: ...

    def task_path(self, task_id: str) -> str: ...

    def describe(self, model_path: str) -> ModelInfo: ...


# --- typed parameters -------------------------------------------------------------------------

_TYPE_NAMES: dict[type, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}


@attrs.frozen
class _ParamCheck:
    kind: type | tuple[type, ...]
    choices: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None

    def __call__(self, _: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        name = attribute.name
        ok_type = isinstance(value, self.kind) and not (
            isinstance(value, bool) and self.kind is not bool
        )
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = True
        if not ok_type:
            raise InvalidRequestError(
                f"parameter {name!r} must be a {type_name(self.kind)}, got {value!r}", field=name
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequestError(
                f"parameter {name!r} must be a finite number, got {value!r}", field=name
            )
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise InvalidRequestError(
                f"parameter {name!r} must be one of {allowed}; got {value!r}", field=name
            )
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise InvalidRequestError(
                f"parameter {name!r} must be between {self.minimum:g} and {self.maximum:g};"
                f" got {value!r}",
                field=name,
            )


def type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def param(
    kind: type | tuple[type, ...],
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    description: str = "",
) -> Any:
    """An optional, validated model parameter; unset (None) parameters are not sent."""
    check = _ParamCheck(kind, tuple(choices) if choices else None, minimum, maximum)
    info = {"kind": kind, "check": check, "description": description}
    return attrs.field(default=None, validator=check, metadata={_PARAM: info})


def describe_params(cls: type) -> tuple[ParamInfo, ...]:
    """ParamInfo records for the fields of a parameter class."""
    out = []
    for field in attrs.fields(cls):
        info = field.metadata.get(_PARAM)
        if info is None:
            continue
        check: _ParamCheck = info["check"]
        out.append(
            ParamInfo(
                name=field.name,
                type=type_name(info["kind"]),
                choices=check.choices,
                minimum=check.minimum,
                maximum=check.maximum,
                description=info["description"],
            )
        )
    return tuple(out)


def structure_params(cls: type[Any], params: Mapping[str, object], model: str) -> Any:
    """Validate a user's parameter dict into ``cls``; every problem is an InvalidRequestError."""
    known = [f.name for f in attrs.fields(cls)]
    for key in params:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            raise InvalidRequestError(
                f"unknown parameter {key!r}; accepted: {', '.join(known)}.{hint}",
                field=key,
                model=model,
            )
    try:
        return cls(**params)
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, field=exc.field, model=model) from None


def check_prompt(prompt: object, model: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError(
            f"prompt must be a non-empty string, got {prompt!r}",
            field="prompt",
            model=model,
        )
    return prompt


@functools.cache
def _accepts_no_params(cls: type) -> bool:
    """Whether a parameter class is valid with nothing set (edit models require an image)."""
    try:
        cls()
    except InvalidRequestError:
        return False
    return True


class Adapter:
    """Base for the built-in adapters: a family of models sharing one parameter class.

    Subclasses set the class attributes and may override :meth:`build_request`, :meth:`parse`
    and :meth:`parse_task`; the defaults cover the common predictions envelope.
    """

    name: ClassVar[str]
    models: ClassVar[tuple[ModelSpec, ...]]
    params_class: ClassVar[type]
    asynchronous: ClassVar[bool] = False
    route: ClassVar[str] = PREDICTIONS
    #: The response shapes :meth:`parse` accepts, for error messages and docs.
    expected: ClassVar[str] = "output[] of {url} / {b64_json}"
    #: Parameters that carry images, and how the family wants local bytes: "data_uri" or
    #: "base64" (URLs always pass through). The client converts them before build_request.
    image_params: ClassVar[Mapping[str, str]] = {}

    def validate(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        check_prompt(prompt, model_path)
        return structure_params(self.params_class, params, model_path)

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest:
        if params or not _accepts_no_params(self.params_class):
            values = self.validate(model_path, prompt, params)
            body: JSONObject = {"prompt": prompt, **converter.unstructure(values)}
        else:  # the common bulk case: nothing to validate beyond the prompt
            check_prompt(prompt, model_path)
            body = {"prompt": prompt}
        return PreparedRequest(
            method="POST", path=f"/v1/models/{model_path}/predictions", json={"input": body}
        )

    def parse(self, body: JSONValue) -> Parsed:
        images = read_images(body, self.expected)
        if not images:
            raise ResponseFormatError("response contains no image", expected=self.expected)
        return Parsed(images=images, usage=read_usage(body))

    def parse_task(self, body: JSONValue) -> TaskState:
        raise NotImplementedError(f"{self.name} models are not task based")

    def task_path(self, task_id: str) -> str:
        """The poll path (below the tasks URL) of a task this family's submit answered."""
        return f"/v1/tasks/{quote(task_id, safe='')}"

    def describe(self, model_path: str) -> ModelInfo:
        spec = next(m for m in self.models if m.path == model_path)
        return ModelInfo(
            name=spec.aliases[0] if spec.aliases else spec.path,
            path=spec.path,
            family=self.name,
            aliases=spec.aliases,
            params=describe_params(self.params_class),
            asynchronous=self.asynchronous,
            route=self.route,
        )


# --- tolerant response readers ----------------------------------------------------------------


def decode_base64_image(text: str, mime_type: str | None, expected: str) -> RawImage:
    """Decode a base64 string or a ``data:`` URI into image bytes."""
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        mime_type = header[5:].split(";")[0] or mime_type
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ResponseFormatError("image is not valid base64", expected=expected) from None
    if not data:
        raise ResponseFormatError("image data is empty", expected=expected)
    return RawImage(data=data, mime_type=mime_type)


def _from_string(value: str, expected: str) -> RawImage:
    if value.startswith(("http://", "https://")) or "://" in value[:16]:
        return RawImage(url=value)
    return decode_base64_image(value, None, expected)


_B64_KEYS = ("b64_json", "bytesBase64", "bytesBase64Encoded", "base64", "b64", "image_base64")
_URL_KEYS = ("url", "image_url", "uri", "content_url", "sample")


def _from_item(item: JSONValue, expected: str) -> list[RawImage]:
    if isinstance(item, str):
        return [_from_string(item, expected)]
    if isinstance(item, list):
        return [img for sub in item for img in _from_item(sub, expected)]
    if not isinstance(item, dict):
        raise ResponseFormatError(
            f"unexpected image entry {type(item).__name__}", expected=expected
        )
    mime = item.get("mimeType") or item.get("mime_type")
    mime = mime if isinstance(mime, str) else None
    for key in _B64_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value:
            return [decode_base64_image(value, mime, expected)]
        if isinstance(value, list) and value:  # gpt-image: "b64_json": [{"bytesBase64": ...}]
            return [img for sub in value for img in _from_item(sub, expected)]
    for key in _URL_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value:
            return [RawImage(url=value, mime_type=mime)]
    images: list[RawImage] = []
    for key in ("urls", "images", "files", "data"):
        value = item.get(key)
        if isinstance(value, list):
            images.extend(img for sub in value for img in _from_item(sub, expected))
    if images:
        return images
    result = item.get("result")
    if isinstance(result, dict):
        return _from_item(result, expected)
    return []


def read_images(body: JSONValue, expected: str) -> tuple[RawImage, ...]:
    """Every image in a response body, in the documented places, in order.

    Accepted: ``output`` as a list (URL strings, ``{url}``, ``{b64_json}``, ``{bytesBase64}``)
    or as an object (``b64_json[]``, ``urls[]``, ``files[].uri``); OpenAI-compatible ``data[]``;
    BFL ``result.sample``; top-level ``url`` / ``urls`` / ``image`` / ``image_url``.
    """
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"response is a JSON {type(body).__name__}, not an object", expected=expected
        )
    images: list[RawImage] = []
    for key in ("output", "data", "result"):
        if key in body and body[key] is not None:
            images.extend(_from_item(body[key], expected))
    if not images:
        for key in ("urls", "url", "image_url", "image", "images"):
            value = body.get(key)
            if isinstance(value, str | list) and value:
                images.extend(_from_item(value, expected))
    return tuple(images)


def elide_inline_images(body: JSONValue) -> JSONValue:
    """Replace decoded base64 image strings in a parsed body by a short marker, in place.

    The decoded bytes live in ``ImageResult.images``; keeping the ~3 MB text too would double
    the memory every result holds (measured: 1.96x raw aiohttp's peak RSS on 2 MB images).
    """
    if isinstance(body, dict):
        for key, value in body.items():
            if key in _B64_KEYS and isinstance(value, str) and len(value) > 256:
                body[key] = f"<{len(value)} base64 characters, decoded into ImageResult.images>"
            elif isinstance(value, dict | list):
                elide_inline_images(value)
    elif isinstance(body, list):
        for item in body:
            if isinstance(item, dict | list):
                elide_inline_images(item)
    return body


def read_usage(body: JSONValue) -> Usage | None:
    if not isinstance(body, dict) or not isinstance(body.get("usage"), dict):
        return None
    return converter.structure(body["usage"], Usage)


def first_string(mapping: Mapping[str, JSONValue], *keys: str) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None
