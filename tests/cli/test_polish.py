"""The command line speaks for itself (issue 14: 5): help, version, logging, wording, summary."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import __version__
from aihubmix_async._cli import main
from aihubmix_async._cli_parser import parser as _parser
from aihubmix_async._progress import ProgressLogHandler, make_reporter

from .conftest import ThreadSandbox, jsonl

COMMANDS = ["generate", "batch", "status", "models", "demo"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"aihubmix-async {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Each command's --help shows examples that run that command."""
    text = help_of(capsys, command)
    assert "examples:" in text
    assert f"aihubmix-async {command}" in text.split("examples:")[1]


def test_top_level_help_names_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    """The top-level help lists the commands, examples and both environment variables."""
    text = help_of(capsys)
    for word in [*COMMANDS, "AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL", "--version", "examples:"]:
        assert word in text


@pytest.mark.parametrize("command", ["generate", "batch"])
def test_sending_commands_show_defaults_and_environment(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Generate and batch: the API key's variable, the base URL's default, option defaults."""
    text = " ".join(help_of(capsys, command).split())  # argparse wraps lines
    assert "AIHUBMIX_API_KEY" in text
    assert "$AIHUBMIX_BASE_URL, else https://aihubmix.com" in text
    if command == "batch":
        assert "(default: 16)" in text  # --concurrency
        assert "(default: 64)" in text  # --max-concurrency
        assert "(default: refuse)" in text  # --on-change
    else:
        assert "(default: .)" in text  # -o


def test_every_option_has_help_text() -> None:
    """No option or argument of any command is listed in --help without a description."""
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse_subparsers()))
    missing = [
        (name, action.dest)
        for name, sub in commands.choices.items()
        if name != "sandbox"  # its own parser (the emulator's options)
        for action in sub._actions
        if not action.help
    ]
    assert missing == []


def argparse_subparsers() -> type[Any]:
    import argparse

    return argparse._SubParsersAction


def test_a_model_typo_names_the_models_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A typo in -m: exit 2, near names, and the command that lists models (not Python)."""
    code = main(["generate", "a cat", "-m", "gpt-imag-1", "--sandbox"])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'gpt-image-1'" in err
    assert "aihubmix-async models lists them all" in err
    assert "Client.models()" not in err


def test_a_model_typo_in_a_prompt_file_names_the_models_command(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """A bad model on a prompt-file line is reported with the CLI's wording too."""
    prompts = jsonl(tmp_path / "p.jsonl", [{"prompt": "a fox", "model": "dall-e-33"}])
    ran = cli("batch", prompts, "-o", tmp_path / "out")
    assert "aihubmix-async models lists them all" in ran.err
    assert "Client.models()" not in ran.err + ran.out


def test_vv_logs_this_package_and_aiohttp_never_the_root_logger(cli: Any, tmp_path: Path) -> None:
    """-vv: the SDK's DEBUG lines, but not asyncio's (the root logger stays as it was)."""
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    ran = cli("generate", "a cat", "-m", "gpt-image-1", "--sandbox", "-o", tmp_path, "-vv")
    assert ran.code == 0, ran.err
    assert re.search(r"aihubmix_async DEBUG POST /v1/\S+ -> 200", ran.err)
    assert "asyncio" not in ran.err
    assert (root.level, list(root.handlers)) == before
    for name in ("aihubmix_async", "aiohttp"):  # the command leaves no handler behind
        assert not any(isinstance(h, ProgressLogHandler) for h in logging.getLogger(name).handlers)


def test_v_logs_retries_at_info(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """-v shows a retry (INFO); without -v it is silent; DEBUG lines need -vv."""
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "a fox"}])
    api.fail("status", status=503, route="submit")
    ran = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "out", "-v")
    assert ran.code == 0, ran.err
    assert "aihubmix_async INFO retrying POST" in ran.err
    assert " DEBUG " not in ran.err


def test_log_lines_never_land_on_the_progress_bar() -> None:
    """While a bar is drawn, a log line is written on a line of its own, the bar redrawn."""
    pytest.importorskip("tqdm")
    stream = Terminal()
    handler = ProgressLogHandler()
    logger = logging.getLogger("aihubmix_async.test_polish")
    logger.addHandler(handler)
    try:
        reporter = make_reporter(3, stream)
        reporter.item(ok=True, images=1)
        logger.warning("retrying POST /v1/images after ServerError")
        reporter.item(ok=True, images=1, retries=1)
        reporter.close()
    finally:
        logger.removeHandler(handler)
        ProgressLogHandler.active = None
    segments = re.split(r"[\r\n]", stream.getvalue())
    logged = [s for s in segments if "retrying POST" in s]
    assert logged == ["retrying POST /v1/images after ServerError"]
    assert "retries=1" in stream.getvalue()


def test_summary_counts_retries_and_gives_the_exact_rerun_command(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """One retried item, one failed: the summary counts resent requests (one meaning of
    retries) and prints the exact command that retries the failure.
    """
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "a fox"},
                                           {"id": "b", "prompt": "a cat"}])  # fmt: skip
    out = tmp_path / "out"
    api.fail("status", status=503, route="submit")  # retried, then succeeds
    api.fail("status", status=400, route="submit", message="no cats")  # fails for good
    ran = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--concurrency", "1")
    assert ran.code == 1
    assert "1 saved (1 images), 1 failed" in ran.out
    assert "1 retries (requests resent after a 429, 5xx or timeout)" in ran.out
    command = f"aihubmix-async batch {prompts} -m dall-e-3 -o {out} --concurrency 1"
    assert f"retries them:\n  {command}\n" in ran.err
    again = cli(*command.split()[1:])
    assert again.code == 0, again.err
