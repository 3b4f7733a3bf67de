"""The package's one cattrs converter and its shared hooks.

* Parameter classes (``providers/_params.py``) are structured through it strictly: extra keys
  are forbidden, scalars must already have the declared type (no ``int("3")``, no
  ``bool("no")``), numbers must be finite. Failures surface as cattrs' ``ClassValidationError``
  for the caller to turn into readable messages.
* Parameters are unstructured to wire JSON through it (unset options are omitted rather than
  sent as ``null``).
* Tolerant response records (:class:`Usage`) are structured leniently: servers report token
  counts as ints, sometimes as numeric strings or floats; anything else is "unknown".
"""

from __future__ import annotations

import math
from typing import Any

from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, override

from ._models import Usage

__all__ = ["ParamTypeError", "converter", "make_converter"]


class ParamTypeError(TypeError):
    """A parameter value of the wrong type; ``expected`` names the type for messages."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"must be {expected}, got {value!r}")
        self.expected = expected
        self.value = value


def _lenient_int(value: Any, _: type) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamTypeError("a finite number", value)
    raise ParamTypeError("an integer", value)


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ParamTypeError("a finite number", value)
        return value  # an int stays an int on the wire, as the caller wrote it
    raise ParamTypeError("a number", value)


def _strict_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise ParamTypeError("a string", value)


def _strict_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise ParamTypeError("a boolean", value)


def _str_or_strings(value: Any, _: type) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ParamTypeError("a string or a list of strings", value)


def _optional(hook: Any) -> Any:
    return lambda value, kind: None if value is None else hook(value, kind)


def make_converter() -> Converter:
    """Build a converter configured for aihubmix_async's wire formats."""
    conv = Converter(omit_if_default=True, forbid_extra_keys=True, detailed_validation=True)
    strict: list[tuple[Any, Any]] = [
        (int, _strict_int),
        (float, _strict_float),
        (str, _strict_str),
        (bool, _strict_bool),
        (str | list[str], _str_or_strings),
    ]
    for kind, hook in strict:
        conv.register_structure_hook(kind, hook)
        conv.register_structure_hook(kind | None, _optional(hook))  # one call, not a dispatch
    lenient = override(struct_hook=_lenient_int)
    usage = make_dict_structure_fn(
        Usage,
        conv,
        _cattrs_forbid_extra_keys=False,  # usage carries *_details objects the SDK ignores
        input_tokens=lenient,
        output_tokens=lenient,
        total_tokens=lenient,
    )
    conv.register_structure_hook(Usage, usage)
    return conv


converter = make_converter()
