"""Typed model parameters declared as attrs fields, structured through the package converter.

A family's parameters are an attrs class whose fields are made with :func:`param`: the
annotation gives the type (checked strictly by the converter's hooks), the metadata gives
choices, bounds, whether the field is required and its wire name (a dotted name nests the value,
``"sequential_image_generation_options.max_images"``). cattrs forbids unknown names and collects
every failure; :func:`structure_params` turns the first one into an InvalidRequestError naming
the field, with the allowed values or the nearest known names.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from .._converter import ParamTypeError, converter
from .._errors import InvalidRequestError
from .._models import ParamInfo
from .._types import JSONObject, JSONValue

__all__ = [
    "PARAM_METADATA",
    "ParamSpec",
    "check_prompt",
    "describe_params",
    "param",
    "structure_params",
    "to_wire",
]

PARAM_METADATA = "aihubmix_param"
_TYPE_NAMES: dict[type, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}


def type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


@attrs.frozen
class ParamSpec:
    """What a parameter declares; also the attrs validator for its value ranges."""

    kind: type | tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    required: bool = False
    #: The name on the wire when it differs; dots nest (``"a.b"`` -> ``{"a": {"b": v}}``).
    wire: str | None = None

    def __call__(self, _: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        name = attribute.name
        if value is None:
            if self.required:
                raise InvalidRequestError(f"parameter {name!r} is required", field=name)
            return
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


def param(
    kind: type | tuple[type, ...],
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    description: str = "",
    required: bool = False,
    wire: str | None = None,
    normalise: Callable[[Any], Any] | None = None,
) -> Any:
    """An optional, validated model parameter; unset (None) parameters are not sent.

    ``normalise`` rewrites an accepted spelling before the choices are checked (``"2:1"`` ->
    ``"2x1"``); ``wire`` renames (and with dots, nests) the value in the request body.
    """
    spec = ParamSpec(
        kind, tuple(choices) if choices else None, minimum, maximum, description, required, wire
    )
    return attrs.field(
        default=None,
        validator=spec,
        converter=_optional(normalise) if normalise else None,
        metadata={PARAM_METADATA: spec},
    )


def _optional(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: value if value is None else function(value)


def specs_of(cls: type) -> dict[str, ParamSpec]:
    """The declared parameters of a parameter class, by name."""
    return _specs(cls)


@functools.cache
def _specs(cls: type) -> dict[str, ParamSpec]:
    out = {}
    for field in attrs.fields(cls):
        spec = field.metadata.get(PARAM_METADATA)
        if spec is not None:
            out[field.name] = spec
    return out


def describe_params(cls: type) -> tuple[ParamInfo, ...]:
    """ParamInfo records for the fields of a parameter class."""
    return tuple(
        ParamInfo(
            name=name,
            type=type_name(spec.kind),
            choices=spec.choices,
            minimum=spec.minimum,
            maximum=spec.maximum,
            description=spec.description + (" (required)" if spec.required else ""),
        )
        for name, spec in _specs(cls).items()
    )


@functools.cache
def wire_names(cls: type) -> frozenset[str]:
    """The top-level body field names a parameter class can produce."""
    return frozenset((spec.wire or name).split(".")[0] for name, spec in _specs(cls).items())


_RENAMES: dict[type, tuple[tuple[str, tuple[str, ...]], ...]] = {}


def _renames(cls: type) -> tuple[tuple[str, tuple[str, ...]], ...]:
    renames = _RENAMES.get(cls)
    if renames is None:
        renames = _RENAMES[cls] = tuple(
            (name, tuple(spec.wire.split(".")))
            for name, spec in _specs(cls).items()
            if spec.wire is not None
        )
    return renames


def to_wire(values: object) -> JSONObject:
    """The set parameters of a structured instance as body fields, renamed and nested."""
    body: JSONObject = converter.unstructure(values)
    for name, path in _renames(type(values)):
        if name not in body:
            continue
        value: JSONValue = body.pop(name)
        target = body
        for key in path[:-1]:
            nested = target.setdefault(key, {})
            if not isinstance(nested, dict):  # an adapter's declarations contradict each other
                raise TypeError(f"{type(values).__name__}.{name}: {key!r} is not an object")
            target = nested
        target[path[-1]] = value
    return body


@functools.cache
def accepts_no_params(cls: type) -> bool:
    """Whether a parameter class is valid with nothing set (edit models require an image)."""
    return not any(spec.required for spec in _specs(cls).values())


def structure_params(cls: type[Any], params: Mapping[str, object], model: str) -> Any:
    """Validate a user's parameter dict into ``cls``; every problem is an InvalidRequestError."""
    try:
        return converter.structure(params, cls)
    except ClassValidationError as exc:
        raise _first_problem(exc, cls, model) from None
    except InvalidRequestError as exc:  # ranges, choices and cross-field rules
        raise InvalidRequestError(exc.message, field=exc.field, model=model) from None


def _first_problem(exc: ClassValidationError, cls: type, model: str) -> InvalidRequestError:
    with_notes, without = exc.group_exceptions()
    for error in without:
        if isinstance(error, InvalidRequestError):  # ranges, choices, cross-field rules
            return InvalidRequestError(error.message, field=error.field, model=model)
        if isinstance(error, ForbiddenExtraKeysError):
            known = list(_specs(cls))
            key = min(error.extra_fields)
            near = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            return InvalidRequestError(
                f"unknown parameter {key!r}; accepted: {', '.join(known)}.{hint}",
                field=key,
                model=model,
            )
    for error, note in with_notes:
        name = str(note.name)
        if isinstance(error, ParamTypeError):
            message = f"parameter {name!r} must be {error.expected}, got {error.value!r}"
        else:
            message = f"parameter {name!r}: {error}"
        return InvalidRequestError(message, field=name, model=model)
    return InvalidRequestError(f"invalid parameters: {exc}", model=model)


def check_prompt(prompt: object, model: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError(
            f"prompt must be a non-empty string, got {prompt!r}",
            field="prompt",
            model=model,
        )
    return prompt
