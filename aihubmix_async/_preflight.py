"""Checks the command line makes before anything is read, locked or billed.

A bulk run that cannot work should fail at once with exit status 2, not turn a million prompts
into a million error lines: no API key, an unknown ``-m`` model, ``--param`` values the model
refuses, a text file with no model, a concurrency the open-files limit cannot carry.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from ._cli_setup import NO_KEY
from ._errors import ConfigurationError, InvalidRequestError
from ._prompts import format_of, parse_param
from ._registry import Registry

if sys.platform != "win32":
    import resource

__all__ = ["BatchSettings", "fit_open_files", "preflight"]

#: Descriptors a run needs beside its connections: stdio, the journal (database, WAL, shared
#: memory, lock), the writer's temporary file, the event loop's own, a few spare.
FD_RESERVE = 32


@attrs.frozen(kw_only=True)
class BatchSettings:
    """The checked command line of ``batch``."""

    source: str
    fmt: str | None
    model: str | None
    params: dict[str, Any]
    shard: tuple[int, int]
    concurrency: int  #: items at once, or with ``adaptive`` the ceiling
    adaptive: bool = False  #: ``--concurrency auto``
    notes: tuple[str, ...] = ()  #: what preflight changed, for the user (e.g. concurrency)


def parse_params(values: Sequence[str]) -> dict[str, Any]:
    return dict(parse_param(v) for v in values)


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InvalidRequestError(f"--shard expects I/N, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise InvalidRequestError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def preflight(
    *,
    source: str,
    fmt: str | None,
    model: str | None,
    params: Sequence[str],
    shard: str | None,
    concurrency: int | str,
    sandbox: bool,
    need_key: bool,
    registry: Registry,
    max_concurrency: int = 64,
) -> BatchSettings:
    """Every check that needs no input line; raises InvalidRequestError/ConfigurationError."""
    values = parse_params(params)
    if need_key and not sandbox and not os.environ.get("AIHUBMIX_API_KEY"):
        raise ConfigurationError(NO_KEY)
    if source != "-" and not os.access(source, os.R_OK):
        raise InvalidRequestError(f"cannot read the prompts file {source!r}")
    fmt = format_of(source, fmt)
    if model is not None:
        adapter, path = registry.resolve(model)
        if values:  # the defaults must suit the default model (lines may still override)
            adapter.build_request(path, "preflight", values)
    elif fmt == "text":
        raise InvalidRequestError("a text prompts file needs a model: give -m MODEL")
    adaptive = concurrency == "auto"
    if adaptive:
        concurrency = max_concurrency  # the ceiling is what the open files must carry
    if not isinstance(concurrency, int) or concurrency < 1:
        flag = "--max-concurrency" if adaptive else "--concurrency"
        raise InvalidRequestError(f"{flag} must be >= 1, got {concurrency}")
    # An in-process sandbox holds the server end of every connection too.
    fitted, note = fit_open_files(concurrency, per_item=2 if sandbox else 1)
    return BatchSettings(
        source=source,
        fmt=fmt,
        model=model,
        params=values,
        shard=parse_shard(shard),
        concurrency=fitted,
        adaptive=adaptive,
        notes=(note,) if note else (),
    )


def fit_open_files(concurrency: int, *, per_item: int = 1) -> tuple[int, str | None]:
    """The concurrency the open-files limit carries: the soft limit is raised towards the hard
    one when that is needed; failing that, the concurrency is lowered (and the note says so).
    Raises InvalidRequestError when not even one item fits.
    """
    if sys.platform == "win32":  # pragma: no cover - no resource module, no such limit
        return concurrency, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = concurrency * per_item + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
        soft = target
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return concurrency, None
    fitted = (soft - FD_RESERVE) // per_item
    if fitted < 1:
        raise InvalidRequestError(
            f"the open-files limit ({soft}, ulimit -n) is too low for even one generation"
        )
    return fitted, (
        f"note: --concurrency {concurrency} needs about {needed} open files but the limit is"
        f" {soft} (ulimit -n); running with --concurrency {fitted}"
    )
