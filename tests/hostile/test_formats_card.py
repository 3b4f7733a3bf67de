"""Hostile pass over the dataset card (``README.md``, issue 13): a folder name or a parameter
that carries Markdown, HTML or YAML cannot add lines, markup or keys to the card.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli import conftest as cli_support
from tests.cli.conftest import ThreadSandbox, jsonl

api, cli = cli_support.api, cli_support.cli  # the CLI tests' fixtures: a sandbox, main(argv)
yaml = pytest.importorskip("yaml")  # datasets depends on PyYAML

HOSTILE = "evil\n---\nconfigs: [x]\n<img src=x onerror=alert(1)>"


def test_a_folder_name_cannot_inject_lines_or_html_into_the_card(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """The card's title is the folder's name: newlines, ``---`` and raw HTML in it stay one
    escaped heading line; the front matter is the only YAML (``datasets`` itself cannot glob
    a path with a newline: not loaded here).
    """
    out = tmp_path / HOSTILE
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    text = (out / "README.md").read_text()
    lines = text.splitlines()
    assert lines.count("---") == 2  # the front matter's own fences, nothing else
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["configs"][0]["data_files"] == [{"split": "train", "path": "train/**"}]
    (title,) = [line for line in lines if line.startswith("# ")]
    assert "evil" in title
    assert "configs:" not in "\n".join(lines[lines.index(title) + 1 :])
    assert "\\<img" in title  # escaped: shown as text, never run as markup
    assert "<img" not in text.replace("\\<img", "")


def test_parameters_with_markdown_stay_inline_code_on_one_line(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """A free-text parameter with newlines, a fence and backticks is listed as one inline-code
    line (regression guard: JSON escapes the newlines, the backticks cannot close the code).
    """
    hostile = "a\n---\n<script>alert(1)</script> `` x"
    rows = [{"id": "n", "prompt": "x", "model": "ideogram-v3", "negative_prompt": hostile}]
    out = tmp_path / "out"
    assert cli("batch", jsonl(tmp_path / "p.jsonl", rows), "-o", out).code == 0
    text = (out / "README.md").read_text()
    (listed,) = [line for line in text.splitlines() if "negative_prompt" in line]
    assert listed.startswith("- `` {")
    assert listed.endswith(" ``: 1 item(s)")
    assert listed.count("``") == 2
    assert text.splitlines().count("---") == 2


def test_a_readme_the_user_wrote_is_never_overwritten(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """An output folder that already has the user's own README.md (a dataset repository's
    card, say), or one whose generated card the user has since edited: the run leaves it as it
    is and says so. A README.md that is a folder does not fail the run either.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    mine = "# My card\n\nWritten by hand.\n"
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text(mine)
    ran = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert ran.code == 0, ran.err
    assert (out / "README.md").read_text() == mine
    assert "README.md" in ran.err
    edited = tmp_path / "edited"
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", edited).code == 0
    card = edited / "README.md"
    card.write_text(card.read_text() + "\nMy notes.\n")
    kept = card.read_text()
    prompts.write_text("a fox\nan owl\n")
    again = cli("batch", prompts, "-m", "dall-e-3", "-o", edited)
    assert again.code == 0, again.err
    assert card.read_text() == kept
    folder = tmp_path / "folder"
    (folder / "README.md").mkdir(parents=True)
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", folder).code == 0


def test_the_card_written_by_the_tool_is_still_rewritten_by_a_resume(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """The guard above does not freeze the tool's own card: every resume brings it up to date,
    also a card written before the journal recorded what it wrote.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    out = tmp_path / "out"
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    assert "- 1 item(s) generated" in (out / "README.md").read_text()
    db = sqlite3.connect(out / ".aihubmix" / "journal.sqlite3")  # as an earlier version left it
    db.execute("DELETE FROM meta WHERE key LIKE 'card:%'")
    db.commit()
    db.close()
    prompts.write_text("a fox\nan owl\n")
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    assert "- 2 item(s) generated" in (out / "README.md").read_text()


def test_a_folder_name_that_is_not_utf8_still_gets_its_card(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """A folder named with bytes that are not UTF-8 (a lone surrogate in Python): the run ended
    in a UnicodeEncodeError traceback after every item was billed, and so did every rerun.
    """
    out = tmp_path / os.fsdecode(b"bad\xffname")
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    ran = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert ran.code == 0, ran.err
    assert "# bad?name" in (out / "README.md").read_text()
