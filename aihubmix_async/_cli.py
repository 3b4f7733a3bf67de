"""The ``aihubmix-async`` command (also ``python -m aihubmix_async``).

Argument parsing is the standard library's argparse: no dependency for the core install. The
progress bar uses tqdm when the ``cli`` extra is installed and the terminal is interactive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ._batch import ImageRequest
from ._client import Client
from ._config import PollPolicy
from ._dataset import BadLine, DatasetWriter, InputItem, parse_param, read_items, safe_name
from ._errors import AIHubMixError, InvalidRequestError
from ._progress import make_reporter
from ._registry import Registry
from .sandbox import DEFAULT_API_KEY, serve
from .sandbox import __main__ as sandbox_command

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
_FAST_POLL = PollPolicy(initial_interval=0.05, max_interval=0.5)


def _params(values: Sequence[str]) -> dict[str, Any]:
    try:
        return dict(parse_param(v) for v in values)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Client]:
    """A client for the real API, or for an in-process sandbox with ``--sandbox``."""
    options: dict[str, Any] = {"max_concurrency": max(getattr(args, "concurrency", 16), 1)}
    if getattr(args, "rpm", None):
        options["rpm"] = args.rpm
    if args.sandbox:
        async with serve() as sandbox:
            client = Client(api_key=DEFAULT_API_KEY, base_url=sandbox.base_url,
                            poll=_FAST_POLL, **options)  # fmt: skip
            async with client:
                yield client
        return
    async with Client(base_url=args.base_url, **options) as client:
        yield client


# --- generate ---------------------------------------------------------------------------------


async def _generate(args: argparse.Namespace) -> int:
    params = _params(args.param)
    async with _client(args) as client:
        result = await client.generate(args.model, args.prompt, **params)
    stem = safe_name(args.name or args.prompt[:40].strip().replace(" ", "-"))
    for k, image in enumerate(result.images):
        path = await image.save(
            Path(args.out) / f"{stem}{'' if k == 0 else f'-{k}'}{image.extension}"
        )
        print(path)
    return 0


# --- batch ------------------------------------------------------------------------------------


def _shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InvalidRequestError(f"--shard expects I/N, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise InvalidRequestError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def _count(source: str) -> int | None:
    if source == "-":
        return None
    with open(source, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _dry_run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    registry = Registry.default()
    bad = good = 0
    for entry in read_items(args.prompts, args.format):
        if isinstance(entry, InputItem):
            request = entry.request
            model = request.model or args.model
            try:
                if model is None:
                    raise InvalidRequestError("no model: give -m or a 'model' on the line")
                adapter, path = registry.resolve(model)
                adapter.build_request(path, request.prompt, {**params, **request.params})
            except InvalidRequestError as exc:
                entry = BadLine(line=entry.line, index=entry.index, message=str(exc))
        if isinstance(entry, BadLine):
            bad += 1
            print(f"line {entry.line}: {entry.message}", file=sys.stderr)
        else:
            good += 1
    print(f"{good} line(s) valid, {bad} invalid; nothing was sent")
    return 1 if bad else 0


async def _batch(args: argparse.Namespace) -> int:
    params = _params(args.param)
    shard_i, shard_n = _shard(args.shard)
    if args.dry_run:
        return _dry_run(args, params)
    writer = DatasetWriter(Path(args.out))
    done = await anyio.to_thread.run_sync(writer.recover)
    lines: dict[str, int] = {}  # in-flight item id -> input line, for the records
    bad_lines: list[BadLine] = []
    skipped = 0

    def pending() -> Iterator[ImageRequest]:
        nonlocal skipped
        for entry in read_items(args.prompts, args.format):
            if entry.index % shard_n != shard_i:
                continue
            if isinstance(entry, BadLine):
                bad_lines.append(entry)
                print(f"line {entry.line}: {entry.message}", file=sys.stderr)
                continue
            if entry.request.id in done:
                skipped += 1
                continue
            lines[str(entry.request.id)] = entry.line
            yield entry.request

    total = _count(args.prompts)
    if total is not None and shard_n > 1:
        total = len(range(shard_i, total, shard_n))
    reporter = make_reporter(None if total is None else max(total - len(done), 0))
    written = failed = 0
    async with _client(args) as client, client.batch(
        pending(), model=args.model, concurrency=args.concurrency, on_progress=reporter,
        **params,
    ) as outcomes:  # fmt: skip
        async for outcome in outcomes:
            line = lines.pop(str(outcome.request.id), 0)
            if outcome.ok:
                await anyio.to_thread.run_sync(writer.write, outcome, line)
                written += 1
            else:
                await anyio.to_thread.run_sync(writer.write_error, outcome, line)
                failed += 1
    reporter.close()
    summary = outcomes.summary
    print(
        f"{written} written, {failed} failed, {len(bad_lines)} bad line(s),"
        f" {skipped} already done, {summary.retries} retries, {summary.elapsed:.1f}s -> {args.out}"
    )
    return 0 if failed == 0 and not bad_lines and summary.cancelled == 0 else 1


# --- models, sandbox, demo --------------------------------------------------------------------


def _models(args: argparse.Namespace) -> int:
    for info in Registry.default().models():
        aliases = f" (aliases: {', '.join(info.aliases)})" if info.aliases else ""
        print(f"{info.path}{aliases}  [{info.family}{', task' if info.asynchronous else ''}]")
        for p in info.params:
            if p.choices:
                allowed = " | ".join(map(str, p.choices))
            elif p.minimum is not None:
                allowed = f"{p.minimum:g}..{p.maximum:g}"
            else:
                allowed = p.type
            note = f"  # {p.description}" if p.description else ""
            print(f"    {p.name}: {allowed}{note}")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    await sandbox_command.serve_forever(args)
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
    batch_args = argparse.Namespace(
        prompts=str(source), format="jsonl", model=None, out=args.out, concurrency=8, rpm=None,
        param=[], shard=None, dry_run=False, sandbox=True, base_url=None,
    )  # fmt: skip
    try:
        return await _batch(batch_args)
    finally:
        await anyio.Path(source).unlink(missing_ok=True)


# --- entry ------------------------------------------------------------------------------------


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
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="log retries (-v) and every request (-vv) to stderr")  # fmt: skip

    gen = commands.add_parser("generate", help="one generation; files written, paths printed")
    gen.add_argument("prompt")
    gen.add_argument("-m", "--model", required=True)
    gen.add_argument("-o", "--out", default=".")
    gen.add_argument("--name", help="file name stem (default: from the prompt)")
    connection(gen)

    bat = commands.add_parser("batch", help="a prompt file into an image dataset, resumably")
    bat.add_argument("prompts", help="text (a prompt a line), .jsonl or .csv file; - for stdin")
    bat.add_argument("-m", "--model", help="model for lines that name none")
    bat.add_argument("-o", "--out", required=True)
    bat.add_argument("--format", choices=["text", "jsonl", "csv"])
    bat.add_argument("--concurrency", type=int, default=16)
    bat.add_argument("--rpm", type=float, help="generations per minute, spaced evenly")
    bat.add_argument("--shard", metavar="I/N", help="take items whose index mod N is I")
    bat.add_argument("--dry-run", action="store_true", help="validate every line, send nothing")
    connection(bat)

    commands.add_parser("models", help="list models and their parameters")

    srv = commands.add_parser("sandbox", help="serve the built-in emulator")
    sandbox_command.add_arguments(srv)

    demo = commands.add_parser("demo", help="sample prompts through the sandbox into a dataset")
    demo.add_argument("-o", "--out", default="demo-images")
    demo.add_argument("--repeat", type=int, default=3, help="rounds of the sample prompts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            stream=sys.stderr,
        )
    try:
        if args.command == "models":
            return _models(args)
        if args.command == "batch" and args.dry_run:
            return _dry_run(args, _params(args.param))
        handler = {"generate": _generate, "batch": _batch, "sandbox": _serve, "demo": _demo}
        return asyncio.run(handler[args.command](args))
    except AIHubMixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # full disk, read-only folder, unreadable prompt file ...
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 3
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
