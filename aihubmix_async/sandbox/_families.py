"""What the emulator knows about families, read from the same specs the adapters use.

Given a route and a body, find the family (through the registry), check the body against what
the family documents (fields, required inputs, image inputs), and write its answer in one of the
family's documented shapes. No family is named here.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import AIHubMixError
from .._models import sniff_mime_type
from .._registry import Registry
from .._types import JSONValue
from ..providers import SHAPES, Adapter, Route, Shape
from ..providers._spec import Unwrapped
from ._images import ImageSpec, image_for, png_of_size, spec_for

__all__ = ["Problem", "b64_image", "check_body", "find_family", "render_answer"]


@attrs.frozen
class Problem:
    """Why the emulator refuses a body: status, message, ``error.param`` and ``error.code``."""

    status: int
    message: str
    code: str
    param: str | None = None


@functools.lru_cache(maxsize=512)
def b64_image(kind: str, size: int, spec: ImageSpec) -> str:
    """An inline image: noise of ``size`` bytes for payload benchmarks, else ``spec``'s picture."""
    data = png_of_size(size) if size and kind != "jpeg" else image_for(spec, kind)
    return base64.b64encode(data).decode()


def find_family(registry: Registry, model: str | None) -> tuple[Adapter, str] | None:
    """The built-in-style adapter serving ``model`` and its path, or None."""
    if not model:
        return None
    try:
        adapter, path = registry.resolve(model)
    except AIHubMixError:
        return None
    return (adapter, path) if isinstance(adapter, Adapter) else None


def check_body(
    adapter: Adapter, path: str, route: Route, body: Unwrapped, image_inputs: Counter[str]
) -> Problem | None:
    """The first thing wrong with a body for this family on this route, like a server says it."""
    prefix = route.field_prefix
    if route.name not in adapter.routes():
        return Problem(400, f"model {path} is not served on {route.path}", "unsupported_route")
    if not isinstance(body.prompt, str) or not body.prompt:
        return Problem(400, f"{prefix}prompt is required", "prompt_missing", f"{prefix}prompt")
    documented = adapter.documented_fields(path, route.name)
    for name in body.fields:
        if name not in documented:
            return Problem(
                400,
                f"Unknown parameter: '{prefix}{name}'. {path} documents:"
                f" {', '.join(sorted(documented)) or 'no options'}.",
                "unknown_parameter",
                f"{prefix}{name}",
            )
    for name in adapter.required_fields(path, route.name):
        if body.fields.get(name) in (None, "", []):
            code = "image_missing" if name in adapter.image_params else "missing_parameter"
            return Problem(400, f"{prefix}{name} is required", code, f"{prefix}{name}")
    for name in adapter.image_params:
        problem = _check_images(name, body.fields.get(name), prefix, image_inputs)
        if problem is not None:
            return problem
    return None


def _check_images(name: str, values: Any, prefix: str, seen: Counter[str]) -> Problem | None:
    """Image inputs must be an http(s) URL, a base64 data: URI, bare base64 or an uploaded file
    of a real image.
    """
    for value in values if isinstance(values, list) else [values]:
        if value is None:
            continue
        if value == "":  # the docs' "no reference image"; recorded so tests see it arrived
            seen[f"{name}:empty"] += 1
            continue
        if isinstance(value, bytes):
            form, data = "multipart", value
        elif not isinstance(value, str):
            return Problem(400, f"{prefix}{name} must be a string", "invalid_image", prefix + name)
        elif value.startswith(("http://", "https://")):
            seen[f"{name}:url"] += 1
            continue
        else:
            form, text = "base64", value
            if value.startswith("data:"):
                form, text = "data_uri", value.partition(",")[2]
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return Problem(
                    400, f"{prefix}{name} is not a URL or valid base64", "invalid_image",
                    prefix + name,
                )  # fmt: skip
        if not sniff_mime_type(data).startswith("image/"):
            return Problem(400, f"{prefix}{name} is not an image", "invalid_image", prefix + name)
        seen[f"{name}:{form}"] += 1
    return None


def render_answer(
    adapter: Adapter,
    path: str,
    route: Route,
    fields: Mapping[str, Any],
    *,
    prompt: object,
    url: Any,
    image_bytes: int,
    swaps: Mapping[str, str],
) -> dict[str, Any]:
    """The family's answer to a generation: count, format and shape from its spec.

    Each image is drawn from ``prompt``, the fields' seed and size, and its index (see
    ``_images.spec_for``). ``url(ext, spec)`` makes an image URL; ``swaps`` replaces a default
    shape by another documented one (the sandbox's ``openai_form="list"``).
    """
    answer = adapter.answer
    shape: Shape = answer.shape_for(fields)
    if route.name != adapter.route and route.shape is not None:
        shape = SHAPES[route.shape]
    elif shape.name in swaps and swaps[shape.name] in answer.shapes:
        shape = SHAPES[swaps[shape.name]]
    count = answer.count(fields, adapter.max_count(path))
    fmt = answer.image_format_for(fields)
    specs = [spec_for(prompt, fields, index) for index in range(count)]
    if shape.inline:
        images = [b64_image(fmt, image_bytes, spec) for spec in specs]
    else:
        images = [url("jpg" if fmt == "jpeg" else "png", spec) for spec in specs]
    usage: dict[str, JSONValue] | None = None
    if answer.usage_per_image:
        prompt_tokens = 37 if route.name == adapter.route else 300
        out = answer.usage_per_image * count
        usage = {"input_tokens": prompt_tokens, "output_tokens": out,
                 "total_tokens": prompt_tokens + out}  # fmt: skip
    return shape.render(images, fmt, usage)
