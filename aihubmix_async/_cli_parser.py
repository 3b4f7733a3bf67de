"""The ``aihubmix-async`` command line's grammar: commands, options, help texts, examples.

argparse only; what each command does is in ``_cli``.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import __version__
from ._cli_setup import (
    HelpFormatter,
    concurrency,
    connection_options,
    examples,
    positive,
    shard_size,
)
from ._cli_spend import add_spend_flags
from ._parquet import ShardTarget

__all__ = ["parser"]


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


def parser() -> argparse.ArgumentParser:
    """The command line's grammar: every command, option, help text and example."""
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
