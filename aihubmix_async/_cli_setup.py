"""The command line's setup: help formatting with examples and the environment, the options
shared by the commands that send, and logging routed through the progress bar.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ._parquet import ShardTarget, parse_shard_size
from ._progress import ProgressLogHandler

__all__ = [
    "ENVIRONMENT",
    "NO_KEY",
    "HelpFormatter",
    "concurrency",
    "connection_options",
    "examples",
    "fill_closed_streams",
    "positive",
    "shard_size",
    "start_logging",
    "stop_logging",
]

ENVIRONMENT = """environment:
  AIHUBMIX_API_KEY   the API key (required unless --sandbox)
  AIHUBMIX_BASE_URL  the API's base URL (default https://aihubmix.com)"""

#: The command line's words for a missing key (the library's name ``Client(api_key=...)``).
NO_KEY = "no API key: set AIHUBMIX_API_KEY (or try the emulator with --sandbox)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Epilogs keep their line breaks; options show their defaults, unless there is nothing
    worth showing (no default, a flag, a counter) or the help already names it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = action.nargs == 0  # store_true/false, count, version: nothing to show
        if flag or action.default in (None, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action) or text


def examples(*lines: str, environment: bool = True) -> str:
    text = "examples:\n" + "\n".join(f"  {line}" for line in lines)
    return f"{text}\n\n{ENVIRONMENT}" if environment else text


def start_logging(verbose: int) -> tuple[logging.Handler, list[tuple[logging.Logger, int]]]:
    """Log lines to standard error, through the progress bar while one is drawn. Warnings
    always; ``-v`` this package's INFO (retries), ``-vv`` its DEBUG and aiohttp's. The root
    logger is never touched (asyncio's and other libraries' debug output stays off).
    """
    handler = ProgressLogHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    names = ["aihubmix_async", "aiohttp"] if verbose > 1 else ["aihubmix_async"]
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(level)
        logger.addHandler(handler)
    return handler, saved


def stop_logging(handler: logging.Handler, saved: list[tuple[logging.Logger, int]]) -> None:
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)
    ProgressLogHandler.active = None


def connection_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that talks to the API."""
    p.add_argument("--sandbox", action="store_true",
                   help="run against an in-process sandbox (no key, no network)")  # fmt: skip
    p.add_argument("--base-url", metavar="URL",
                   help="the API's base URL (default: $AIHUBMIX_BASE_URL, else"
                        " https://aihubmix.com)")  # fmt: skip
    p.add_argument("--param", "-p", action="append", default=[], metavar="K=V",
                   help="model parameter, repeatable (value read as JSON when it parses:"
                        " -p n=2 -p size=1024x1024)")  # fmt: skip
    p.add_argument("--no-provenance", dest="provenance", action="store_false",
                   help="save images without prompt, model, parameters and request id in"
                        " their metadata")  # fmt: skip
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log retries (-v) and every request (-vv, with aiohttp's debug"
                        " log) to stderr")  # fmt: skip


# --- argument types and standard streams ------------------------------------------------


def concurrency(text: str) -> int | str:
    """``--concurrency``: a whole number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'auto', got {text!r}"
        ) from None


def positive(text: str) -> int:
    """A count of at least one."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def shard_size(text: str) -> ShardTarget:
    try:
        return parse_shard_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fill_closed_streams() -> None:
    """A standard stream closed at start (``2>&-``, ``<&-``) is None in ``sys``: point it at
    the null device, so its output is dropped (its input empty) instead of crashing the run or
    landing on another one. In descriptor order: each takes the lowest free one, its own.
    """
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, Path(os.devnull).open(mode))  # noqa: SIM115 - lives as sys does
