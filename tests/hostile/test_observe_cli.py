"""Hostile use of the command line: closed standard streams, no key, an unwritable output
folder, a missing gallery folder, nonsense counts. Every path answers in CLI words.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aihubmix_async._cli import main
from aihubmix_async.sandbox import DEFAULT_API_KEY, Sandbox

from ..support import sandbox_in_thread

#: Only a hang reaches it.
HANG_GUARD = 120


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` in sh, with ``$CLI`` the command line under this interpreter."""
    return subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        check=False,
        text=True,
        timeout=HANG_GUARD,
        cwd=cwd,
        env={"CLI": f"{sys.executable} -m aihubmix_async", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox the CLI reaches through AIHUBMIX_BASE_URL / AIHUBMIX_API_KEY."""
    with sandbox_in_thread() as running:
        monkeypatch.setenv("AIHUBMIX_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("AIHUBMIX_BASE_URL", running.base_url)
        yield running


@pytest.mark.slow
def test_a_batch_with_standard_error_closed_still_saves_everything(tmp_path: Path) -> None:
    """``2>&-``: no bar and no log lines anywhere, but every item is generated and saved, and
    nothing meant for standard error lands in the summary on standard output.
    """
    (tmp_path / "p.txt").write_text("a fox\nan owl\n")
    ran = shell("$CLI batch p.txt -m gpt-image-1 -o out --sandbox -v 2>&-", tmp_path)
    assert ran.returncode == 0, ran.stdout
    rows = (tmp_path / "out" / "train" / "metadata.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["prompt"] for r in rows) == ["a fox", "an owl"]
    assert ran.stdout.startswith("2 saved")
    assert "[aihubmix]" not in ran.stdout


@pytest.mark.slow
def test_an_error_with_standard_error_closed_stays_off_standard_output(tmp_path: Path) -> None:
    """``2>&-``: the error is lost with its stream, not printed among the data on stdout."""
    ran = shell("$CLI generate 'a cat' -m gpt-imag-1 --sandbox 2>&-", tmp_path)
    assert ran.returncode == 2
    assert ran.stdout == ""


def test_generate_without_a_key_names_the_variable_and_the_sandbox(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No key: the command line's remedy (the variable, or --sandbox), not a Python call."""
    code = main(["generate", "a cat", "-m", "gpt-image-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "AIHUBMIX_API_KEY" in err
    assert "--sandbox" in err
    assert "Client(" not in err


def test_generate_into_an_unwritable_folder_refuses_before_paying(
    api: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o under a regular file: refused before anything is sent (a rerun resumes nothing)."""
    (tmp_path / "file").write_text("x")
    code = main(["generate", "a cat", "-m", "gpt-image-1", "-o", str(tmp_path / "file" / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert api.stats.submits == 0
    assert "-o" in err
    assert "resume" not in err


def test_gallery_of_a_missing_folder_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in the gallery's folder: exit 2 and what is missing, no advice to resume."""
    code = main(["gallery", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nowhere" in err
    assert "resume" not in err


@pytest.mark.parametrize("repeat", ["0", "-1", "many"])
def test_demo_repeat_must_be_a_positive_count(
    repeat: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--repeat 0 ran an empty demo and said all was well; now it is a usage error."""
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--repeat", repeat, "-o", str(tmp_path / "demo")])
    assert exited.value.code == 2
    assert "--repeat" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_an_undecodable_byte_in_the_prompt_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A byte that is not UTF-8 in the prompt (``generate $'caf<0xff>'``): argv holds a lone
    surrogate that JSON cannot carry. Exit 2 with what is wrong, not a traceback.
    """
    code = main(["generate", "caf\udcff", "-m", "gpt-image-1", "--sandbox", "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "the prompt is not valid UTF-8" in err
    assert list(tmp_path.iterdir()) == []
