"""The package's one cattrs converter and its shared hooks.

Parameters are unstructured to wire JSON through it (unset options are omitted rather than sent
as ``null``); tolerant response records (usage) are structured through it. Providers that need
their own hooks add them with a ``configure(converter)`` function (cattrs' preconf pattern).
"""

from __future__ import annotations

from typing import Any

from cattrs import Converter

__all__ = ["converter", "make_converter"]


def _lenient_int(value: Any, _: type) -> int | None:
    # Servers report token counts as ints, sometimes as numeric strings; anything else is "unknown".
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def make_converter() -> Converter:
    """Build a converter configured for aihubmix_async's wire formats."""
    conv = Converter(omit_if_default=True, forbid_extra_keys=False)
    conv.register_structure_hook(int | None, _lenient_int)
    return conv


converter = make_converter()
