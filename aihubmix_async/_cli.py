"""The ``aihubmix-async`` command (also ``python -m aihubmix_async``).

Argument parsing is the standard library's argparse: no dependency for the core install. The
progress bar uses tqdm when the ``cli`` extra is installed and the terminal is interactive.
The sandbox (and with it ``aiohttp.web``) is imported only by ``--sandbox``, ``demo`` and
``sandbox``: the other commands start faster and never load a server.

Exit status: 0 done; 1 finished, but some items failed or some lines were bad (a rerun retries
the failures); 2 refused before anything was sent (usage, preflight, colliding ids, changed
items); 3 an I/O error such as a full disk (rerun to resume); the journal's code for a folder
another process is writing; 5 stopped by ``--max-cost`` / ``--max-images`` (rerun with a
higher cap to continue); 130/143 stopped by SIGINT/SIGTERM (rerun to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ._cli_batch import dry_run, run_batch, show_status
from ._cli_client import open_client
from ._cli_spend import add_spend_flags, price_notes
from ._errors import AIHubMixError
from ._gallery import build_gallery
from ._journal_files import safe_name
from ._parquet import ShardTarget, parse_shard_size
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
    params = parse_params(args.param)
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
    batch_args = _parser().parse_args(
        ["batch", str(source), "-o", args.out, "--concurrency", "8", "--sandbox"]
    )
    try:
        return await run_batch(batch_args)
    finally:
        await anyio.Path(source).unlink(missing_ok=True)


async def _batch(args: argparse.Namespace) -> int:
    return await (dry_run(args) if args.dry_run else run_batch(args))


async def _status(args: argparse.Namespace) -> int:
    return await show_status(Path(args.folder))


# --- entry ------------------------------------------------------------------------------------


def _gallery(args: argparse.Namespace) -> int:
    report = build_gallery(args.folder, thumbnails=args.thumbnails)
    if report.note:
        say(f"note: {report.note}", sys.stderr)
    say(
        f"{report.page.resolve().as_uri()} ({report.images} images, {report.failures} failed;"
        f" {report.thumbnails_made} new thumbnails)"
    )
    return 0


def _concurrency(text: str) -> int | str:
    """``--concurrency``: a whole number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'auto', got {text!r}"
        ) from None


def _shard_size(text: str) -> ShardTarget:
    try:
        return parse_shard_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_batch(commands: Any, connection: Any) -> None:
    bat = commands.add_parser(
        "batch",
        help="a prompt file into an image dataset, resumably",
        epilog="exit status: 0 all saved; 1 some items failed or lines were bad (a rerun"
        " retries failures); 2 refused, nothing sent; 3 I/O error (rerun to resume); 4 the"
        " folder is in use; 5 stopped by --max-cost / --max-images (rerun with a higher cap);"
        " 130/143 stopped by SIGINT/SIGTERM (rerun to resume)",
    )
    bat.add_argument("prompts", help="text (a prompt a line), .jsonl or .csv file; - for stdin")
    bat.add_argument("-m", "--model", help="model for lines that name none")
    bat.add_argument("-o", "--out", required=True)
    bat.add_argument("--format", choices=["text", "jsonl", "csv"],
                     help="the INPUT file's format (default: from its extension)")  # fmt: skip
    bat.add_argument("--output-format", choices=["imagefolder", "parquet"], default="imagefolder",
                     help="imagefolder (default): train/00000/... folders of at most 10,000"
                          " images and train/metadata.jsonl; parquet: Parquet shards in data/"
                          " (needs pyarrow: the 'parquet' extra)")  # fmt: skip
    bat.add_argument("--parquet-shard-size", type=_shard_size, default=ShardTarget(),
                     metavar="SIZE", help="with --output-format parquet: write a shard per SIZE"
                     " of images, e.g. 500MB (default) or 10000rows")  # fmt: skip
    bat.add_argument("--concurrency", type=_concurrency, default=16, metavar="N|auto",
                     help="items at once (default 16); auto starts low, grows while answers"
                          " succeed and backs off on 429/503, up to --max-concurrency")  # fmt: skip
    bat.add_argument("--max-concurrency", type=int, default=64, metavar="N",
                     help="the ceiling of --concurrency auto (default 64)")  # fmt: skip
    bat.add_argument("--rpm", type=float, help="generations per minute, spaced evenly")
    bat.add_argument("--shard", metavar="I/N",
                     help="run shard I of N (items picked by a hash of their id); the shards"
                          " of one split may run at once into one folder")  # fmt: skip
    bat.add_argument("--dry-run", action="store_true",
                     help="check every line and the folder's journal, send nothing")  # fmt: skip
    bat.add_argument("--on-change", choices=["refuse", "regenerate", "keep"], default="refuse",
                     help="items done before whose model, prompt or parameters changed:"
                          " refuse to run (default), generate them again, or keep the old"
                          " images")  # fmt: skip
    bat.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                     help="leave items that failed in an earlier run as they are")  # fmt: skip
    bat.add_argument("--allow-local-files", action="store_true",
                     help="let lines name local image files (read and uploaded)")  # fmt: skip
    add_spend_flags(bat)
    bat.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                     help="on SIGINT/SIGTERM, how long generations in flight (already billed)"
                          " get to be saved (default 30)")  # fmt: skip
    connection(bat)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aihubmix-async", description="AIHubMix image generation from the command line."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sandbox", action="store_true",
                       help="run against an in-process sandbox (no key, no network)")  # fmt: skip
        p.add_argument("--base-url", default=os.environ.get("AIHUBMIX_BASE_URL"))
        p.add_argument("--param", "-p", action="append", default=[], metavar="K=V",
                       help="model parameter (value read as JSON when it parses)")  # fmt: skip
        p.add_argument("--no-provenance", dest="provenance", action="store_false",
                       help="save images without prompt, model, parameters and request id"
                            " in their metadata")  # fmt: skip
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="log retries (-v) and every request (-vv) to stderr")  # fmt: skip

    gen = commands.add_parser("generate", help="one generation; files written, paths printed")
    gen.add_argument("prompt")
    gen.add_argument("-m", "--model", required=True)
    gen.add_argument("-o", "--out", default=".")
    gen.add_argument("--name", help="file name stem (default: from the prompt)")
    connection(gen)
    _add_batch(commands, connection)
    status = commands.add_parser("status", help="what a batch output folder holds")
    status.add_argument("folder")
    gallery = commands.add_parser(
        "gallery", help="an HTML contact sheet of a batch output folder (DIR/gallery.html)"
    )
    gallery.add_argument("folder", metavar="DIR")
    gallery.add_argument("--no-thumbnails", dest="thumbnails", action="store_false",
                         help="show the original images scaled by the browser")  # fmt: skip
    commands.add_parser("models", help="list models and their parameters")
    # The sandbox's own parser reads its options (loading it here would load aiohttp.web).
    commands.add_parser("sandbox", help="serve the built-in emulator (--help for its options)",
                        add_help=False)  # fmt: skip
    demo = commands.add_parser("demo", help="sample prompts through the sandbox into a dataset")
    demo.add_argument("-o", "--out", default="demo-images")
    demo.add_argument("--repeat", type=int, default=3, help="rounds of the sample prompts")
    return parser


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
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "sandbox":
        args.options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    verbose = getattr(args, "verbose", 0)
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            stream=sys.stderr,
        )
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
