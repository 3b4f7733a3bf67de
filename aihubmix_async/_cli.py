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
from typing import Any

import anyio

from . import __version__
from ._cli_batch import dry_run, run_batch, show_status
from ._cli_client import open_client
from ._cli_setup import (
    NO_KEY,
    HelpFormatter,
    concurrency,
    connection_options,
    examples,
    fill_closed_streams,
    positive,
    shard_size,
    start_logging,
    stop_logging,
)
from ._cli_spend import add_spend_flags, price_notes
from ._errors import AIHubMixError, ConfigurationError, InvalidRequestError, cli_wording
from ._gallery import GalleryError, build_gallery
from ._journal_files import safe_name
from ._parquet import ShardTarget
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
    batch_args = _parser().parse_args(
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


def _add_batch(commands: Any, connection: Any) -> None:
    bat = commands.add_parser(
        "batch",
        help="a prompt file into an image dataset, resumably",
        description="Generate an image dataset from a prompt file into a folder. Every item is"
        " journalled:\nrerunning the same command resumes where it stopped and retries failures.",
        formatter_class=HelpFormatter,
        epilog=examples(
            "aihubmix-async batch prompts.txt -m gpt-image-1 -o out/",
            "aihubmix-async batch prompts.jsonl -o out/ --concurrency auto --rpm 60",
            "aihubmix-async batch prompts.csv -o out/ --dry-run",
            "cat prompts.txt | aihubmix-async batch - -m flux-kontext-max -o out/ -p seed=7",
            "aihubmix-async batch prompts.txt -m gpt-image-1 -o out/ --sandbox   # no key needed",
        )
        + "\n\nexit status: 0 all saved; 1 some items failed or lines were bad (a rerun"
        " retries failures);\n  2 refused, nothing sent (or the API key refused); 3 I/O error"
        " (rerun to resume); 4 the"
        " folder is in use;\n  5 stopped by --max-cost / --max-images (rerun with a higher"
        " cap);\n  130/143 stopped by SIGINT/SIGTERM (rerun to resume)",
    )
    _add_batch_files(bat)
    _add_batch_run(bat)
    add_spend_flags(bat)
    connection(bat)


def _add_batch_files(bat: Any) -> None:
    """``batch``'s options: what it reads, and how it writes the folder."""
    bat.add_argument("prompts", help="text (a prompt a line), .jsonl or .csv file; - for stdin")
    bat.add_argument("-m", "--model", help="model for lines that name none")
    bat.add_argument("-o", "--out", required=True, metavar="FOLDER",
                     help="output folder: images, metadata.jsonl, errors.jsonl and the run"
                          " journal (created if missing; a rerun into it resumes)")  # fmt: skip
    bat.add_argument("--format", choices=["text", "jsonl", "csv"],
                     help="the INPUT file's format (default: from the file's extension; text"
                          " for stdin)")  # fmt: skip
    bat.add_argument("--output-format", choices=["imagefolder", "parquet"], default="imagefolder",
                     help="imagefolder: train/00000/... folders of at most 10,000 images and"
                          " train/metadata.jsonl; parquet: Parquet shards in data/ (needs"
                          " pyarrow: the 'parquet' extra)")  # fmt: skip
    bat.add_argument("--parquet-shard-size", type=shard_size, metavar="SIZE",
                     help="with --output-format parquet: a shard per SIZE of images, e.g."
                          f" 500MB or 10000rows (default: {ShardTarget()})")  # fmt: skip
    bat.add_argument("--on-change", choices=["refuse", "regenerate", "keep"], default="refuse",
                     help="items done before whose model, prompt or parameters changed:"
                          " refuse to run, generate them again, or keep the old"
                          " images")  # fmt: skip
    bat.add_argument("--allow-local-files", action="store_true",
                     help="let lines name local image files (read and uploaded)")  # fmt: skip


def _add_batch_run(bat: Any) -> None:
    """``batch``'s options: how it runs (pace, split, retries, stopping)."""
    bat.add_argument("--concurrency", type=concurrency, default=16, metavar="N|auto",
                     help="items in flight at once; auto starts low, grows while answers"
                          " succeed and backs off on 429/503, up to --max-concurrency")  # fmt: skip
    bat.add_argument("--max-concurrency", type=int, default=64, metavar="N",
                     help="the ceiling of --concurrency auto")  # fmt: skip
    bat.add_argument("--rpm", type=float, help="generations per minute, spaced evenly")
    bat.add_argument("--shard", metavar="I/N",
                     help="run shard I of N (items picked by a hash of their id); the shards"
                          " of one split may run at once into one folder")  # fmt: skip
    bat.add_argument("--dry-run", action="store_true",
                     help="check every line and the folder's journal, send nothing")  # fmt: skip
    bat.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                     help="leave items that failed in an earlier run as they are")  # fmt: skip
    bat.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                     help="on SIGINT/SIGTERM, how long generations in flight (already billed)"
                          " get to be saved")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aihubmix-async",
        description="AIHubMix image generation from the command line.",
        formatter_class=HelpFormatter,
        epilog=examples(
            'aihubmix-async generate "a lighthouse at dawn" -m gpt-image-1',
            "aihubmix-async batch prompts.txt -m gpt-image-1 -o out/",
            "aihubmix-async models",
            "aihubmix-async demo   # sample prompts through the built-in sandbox, no key",
            "aihubmix-async COMMAND --help   # each command's options and examples",
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(commands, connection_options)
    _add_batch(commands, connection_options)
    _add_tools(commands)
    return parser


def _add_generate(commands: Any, connection: Any) -> None:
    gen = commands.add_parser(
        "generate",
        help="one generation; files written, paths printed",
        description="Generate images for one prompt; the files' paths are printed.",
        formatter_class=HelpFormatter,
        epilog=examples(
            'aihubmix-async generate "a red fox in snow" -m gpt-image-1',
            'aihubmix-async generate "a red fox" -m imagen-4.0-fast-generate-001 -o out/'
            " -p aspectRatio=16:9",
            'aihubmix-async generate "a paper boat" -m flux-kontext-max --name boat -p seed=7',
            'aihubmix-async generate "a cat" -m gpt-image-1 --sandbox   # no key, no network',
        ),
    )
    gen.add_argument("prompt", help="the prompt (quote it)")
    gen.add_argument("-m", "--model", required=True,
                     help="model name or alias (aihubmix-async models lists them all)")  # fmt: skip
    gen.add_argument("-o", "--out", default=".", metavar="FOLDER",
                     help="folder the images are written into")  # fmt: skip
    gen.add_argument("--name", help="file name stem (default: from the prompt)")
    connection(gen)


def _add_tools(commands: Any) -> None:
    """status, models, sandbox, demo."""
    status = commands.add_parser(
        "status",
        help="what a batch output folder holds",
        description="Count a batch folder's items by state, with tokens and the first failures.",
        formatter_class=HelpFormatter,
        epilog=examples("aihubmix-async status out/", environment=False),
    )
    status.add_argument("folder", help="a folder a batch wrote into (its -o)")
    gallery = commands.add_parser(
        "gallery",
        help="an HTML contact sheet of a batch output folder (DIR/gallery.html)",
        description="Write DIR/gallery.html: thumbnails, prompts, parameters, costs and failures"
        " of a batch folder, with filters; it opens from file:// and fetches nothing.",
        formatter_class=HelpFormatter,
        epilog=examples("aihubmix-async gallery out/", environment=False),
    )
    gallery.add_argument("folder", metavar="DIR", help="a folder a batch wrote into (its -o)")
    gallery.add_argument("--no-thumbnails", dest="thumbnails", action="store_false",
                         help="show the original images scaled by the browser")  # fmt: skip
    commands.add_parser(
        "models",
        help="list models and their parameters",
        description="Every model (with aliases) and the parameters it accepts (-p K=V).",
        formatter_class=HelpFormatter,
        epilog=examples(
            "aihubmix-async models", "aihubmix-async models | grep -i flux", environment=False
        ),
    )
    # The sandbox's own parser reads its options (loading it here would load aiohttp.web).
    commands.add_parser("sandbox", help="serve the built-in emulator (--help for its options)",
                        add_help=False)  # fmt: skip
    demo = commands.add_parser(
        "demo",
        help="sample prompts through the sandbox into a dataset",
        description="Run sample prompts for several model families through the built-in"
        " sandbox into a dataset folder: no key, no network.",
        formatter_class=HelpFormatter,
        epilog=examples(
            "aihubmix-async demo", "aihubmix-async demo -o demo/ --repeat 10", environment=False
        ),
    )
    demo.add_argument("-o", "--out", default="demo-images", metavar="FOLDER",
                      help="folder the dataset is written into")  # fmt: skip
    demo.add_argument("--repeat", type=positive, default=3, metavar="N",
                      help="rounds of the sample prompts")  # fmt: skip


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
    parser = _parser()
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
