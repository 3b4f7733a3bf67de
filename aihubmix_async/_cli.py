"""The ``aihubmix-async`` command (also ``python -m aihubmix_async``).

Argument parsing is the standard library's argparse: no dependency for the core install. The
progress bar uses tqdm when the ``cli`` extra is installed and the terminal is interactive.
The sandbox (and with it ``aiohttp.web``) is imported only by ``--sandbox``, ``demo`` and
``sandbox``: the other commands start faster and never load a server.

Exit status: 0 done; 1 finished, but some items failed or some lines were bad (a rerun retries
the failures); 2 refused before anything was sent (usage, preflight, colliding ids, changed
items) or the API key refused by the server; 3 an I/O error such as a full disk (rerun to
resume); 4 a folder another process is writing; 5 stopped by ``--max-cost`` /
``--max-images`` (rerun with a higher cap to continue); 130/143 stopped by SIGINT/SIGTERM
(rerun to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio

from ._cli_batch import dry_run, run_batch, show_status
from ._cli_client import open_client
from ._cli_parser import parser as cli_parser
from ._cli_setup import (
    NO_KEY,
    fill_closed_streams,
    start_logging,
    stop_logging,
)
from ._cli_spend import price_notes
from ._errors import AIHubMixError, ConfigurationError, InvalidRequestError, cli_wording
from ._gallery import GalleryError, build_gallery
from ._journal_files import safe_name
from ._preflight import parse_params
from ._progress import say
from ._registry import Registry

__all__ = ["main", "run"]

DEMO_PROMPTS: tuple[tuple[str, str], ...] = (
    ("gpt-image-1", "a lighthouse on a cliff at dawn, watercolour"),
    ("imagen-4.0-fast-generate-001", "a red fox in fresh snow"),
    ("flux-kontext-max", "a paper boat on a rainy street"),
    ("ideogram/V3", "a poster that says HELLO"),
    ("doubao-seedream-4-0", "a bowl of ramen, studio light"),
    ("FLUX-1.1-pro", "a brutalist library at night"),
    ("qwen-image", "a tea house in the mountains"),
    ("stability/Stable-Diffusion-3-5-Large", "an astronaut gardening on the moon"),
)
EXIT_REFUSED = 2
EXIT_IO = 3


# --- generate, models, sandbox, demo ----------------------------------------------------------


async def _generate(args: argparse.Namespace) -> int:
    _check_utf8([("the prompt", args.prompt), *(("--param", p) for p in args.param)])
    params = parse_params(args.param)
    # Both before anything is sent: a generation paid for and then not saved is lost (a
    # rerun generates, and pays, again).
    if not args.sandbox and not os.environ.get("AIHUBMIX_API_KEY"):
        raise ConfigurationError(NO_KEY)
    await anyio.to_thread.run_sync(_check_writable, args.out)
    async with open_client(args) as client:
        result = await client.generate(args.model, args.prompt, **params)
    stem = safe_name(args.name or args.prompt[:40].strip().replace(" ", "-"))
    for k, image in enumerate(result.images):
        path = await image.save(
            Path(args.out) / f"{stem}{'' if k == 0 else f'-{k}'}{image.extension}",
            provenance=args.provenance,
        )
        say(str(path))
    return 0


def _check_utf8(texts: list[tuple[str, str]]) -> None:
    """An undecodable byte on the command line arrives as a lone surrogate, which no request
    body can carry: refused by name instead of a traceback.
    """
    for what, text in texts:
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidRequestError(
                f"{what} is not valid UTF-8 text (an undecodable byte on the command line?):"
                f" {text!r}"
            ) from None


def _check_writable(folder: str) -> None:
    """Create ``folder`` if missing and prove a file can be written in it."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write into -o {folder}: {exc.strerror or exc}; nothing was sent"
        ) from None


def _models(_args: argparse.Namespace) -> int:
    for info, price in price_notes(Registry.default()):
        aliases = f" (aliases: {', '.join(info.aliases)})" if info.aliases else ""
        say(f"{info.path}{aliases}  [{info.family}{', task' if info.asynchronous else ''}]{price}")
        for p in info.params:
            if p.choices:
                allowed = " | ".join(map(str, p.choices))
            elif p.minimum is not None:
                allowed = f"{p.minimum:g}..{p.maximum:g}"
            else:
                allowed = p.type
            note = f"  # {p.description}" if p.description else ""
            say(f"    {p.name}: {allowed}{note}")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    # Only now: the sandbox loads aiohttp.web, which the other commands never need.
    from .sandbox import __main__ as sandbox_command  # noqa: PLC0415

    sandbox_command.main(list(args.options))
    return 0


async def _demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default: sample prompts through the sandbox into a dataset."""
    rows = [
        json.dumps({"prompt": f"{prompt} #{i}", "model": model, "id": f"{safe_name(model)}-{i}"})
        for i in range(args.repeat)
        for model, prompt in DEMO_PROMPTS
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        handle.write("\n".join(rows) + "\n")
    source = Path(handle.name)
    batch_args = cli_parser().parse_args(
        ["batch", str(source), "-o", args.out, "--concurrency", "8", "--sandbox"]
    )
    batch_args.argv = args.argv  # a rerun of the demo, not of its temporary prompt file
    try:
        return await run_batch(batch_args)
    finally:
        await anyio.Path(source).unlink(missing_ok=True)


async def _batch(args: argparse.Namespace) -> int:
    if args.parquet_shard_size is not None and args.output_format != "parquet":
        say("error: --parquet-shard-size needs --output-format parquet (an image folder has"
            " no shards)", sys.stderr)  # fmt: skip
        return 2
    return await (dry_run(args) if args.dry_run else run_batch(args))


async def _status(args: argparse.Namespace) -> int:
    return await show_status(Path(args.folder))


# --- entry ------------------------------------------------------------------------------------


def _gallery(args: argparse.Namespace) -> int:
    try:  # a missing folder, a file, no permission: GalleryError says which (exit 2)
        report = build_gallery(args.folder, thumbnails=args.thumbnails)
    except GalleryError as exc:
        say(f"aihubmix-async gallery: {exc}", sys.stderr)
        return 2
    if report.note:
        say(f"note: {report.note}", sys.stderr)
    say(
        f"{report.page.resolve().as_uri()} ({report.images} images, {report.failures} failed;"
        f" {report.thumbnails_made} new thumbnails)"
    )
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "models":
        return _models(args)
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "gallery":
        return _gallery(args)
    handler = {"generate": _generate, "batch": _batch, "demo": _demo, "status": _status}
    return asyncio.run(handler[args.command](args))


def main(argv: Sequence[str] | None = None) -> int:
    fill_closed_streams()
    parser = cli_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "sandbox":
        args.options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the summary's rerun command
    handler, saved = start_logging(getattr(args, "verbose", 0))
    try:
        with cli_wording():
            return _run(args)
    finally:
        stop_logging(handler, saved)


def _run(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except AIHubMixError as exc:
        say(f"error: {exc}", sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:  # full disk, read-only folder, unreadable prompt file ...
        where = f" ({exc.filename})" if exc.filename else ""
        say(f"error: {exc.strerror or exc}{where}; rerun the same command to resume", sys.stderr)
        return EXIT_IO
    except sqlite3.DatabaseError as exc:  # the journal on a full disk: the same remedy
        say(f"error: run journal: {exc}; rerun the same command to resume", sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt:
        say("interrupted; rerun the same command to resume", sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
