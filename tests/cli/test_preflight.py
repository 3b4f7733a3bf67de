"""Preflight: a run that cannot work fails at once, exit 2, nothing sent (issue 9: 7, 14)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async.sandbox import DEFAULT_API_KEY

from .conftest import ThreadSandbox, jsonl, metadata


def prompts_file(tmp_path: Path, n: int = 3) -> Path:
    return jsonl(tmp_path / "p.jsonl", [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(n)])


def test_no_key_fails_before_anything(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 14: batch with no key (and no --sandbox) exits 2 at once: no request, no
    errors.jsonl full of authentication failures, not even an output folder.
    """
    monkeypatch.delenv("AIHUBMIX_API_KEY")
    done = cli("batch", prompts_file(tmp_path), "-m", "dall-e-3", "-o", tmp_path / "out")
    assert done.code == 2
    assert "no API key" in done.err
    assert api.requests == 0
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["p.txt"], "a text prompts file needs a model", id="text without -m"),
        pytest.param(["-", "--format", "text"], "needs a model", id="stdin text without -m"),
        pytest.param(["p.jsonl", "-m", "gpt-imagine-9"], "did you mean", id="unknown -m"),
        pytest.param(["p.jsonl", "-m", "gpt-image-1", "-p", "size=3x3"], "size", id="bad -p"),
        pytest.param(["p.jsonl", "-p", "oops"], "key=value", id="malformed -p"),
        pytest.param(["p.jsonl", "--shard", "3/2"], "--shard", id="bad shard"),
        pytest.param(["p.jsonl", "--concurrency", "0"], "--concurrency", id="no concurrency"),
    ],
)
def test_bad_run_settings_are_refused_with_exit_2(
    api: ThreadSandbox,
    cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    """Finding 14: settings every item would fail on are refused before any item."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", prompts_file(tmp_path).open())
    (tmp_path / "p.txt").write_text("a fox\na cat\n")
    prompts_file(tmp_path)
    done = cli("batch", *argv, "-o", tmp_path / "out")
    sys.stdin.close()
    assert done.code == 2, done.err
    assert message in done.err
    assert api.requests == 0
    assert not (tmp_path / "out" / "errors.jsonl").exists()


def test_lines_without_a_model_are_bad_lines_not_errors(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Finding 14: JSONL lines naming no model (and no -m) are bad lines, never billed."""
    prompts = jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "a fox", "model": "dall-e-3"},
        {"id": "b", "prompt": "a cat"},
    ])  # fmt: skip
    done = cli("batch", prompts, "-o", tmp_path / "out")
    assert done.code == 1
    assert "line 2: no model" in done.err
    assert api.submits == 1
    assert json.loads((tmp_path / "out" / "errors.jsonl").read_text() or "[]") == []


def test_models_loads_neither_the_sandbox_nor_aiohttp_web() -> None:
    """The CLI imports the sandbox (and aiohttp.web) only for --sandbox, demo and sandbox."""
    probe = (
        "import sys\n"
        "from aihubmix_async._cli import main\n"
        "assert main(['models']) == 0\n"
        "loaded = [m for m in ('aiohttp.web', 'aihubmix_async.sandbox') if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert "LOADED []" in done.stdout


def test_sandbox_flag_needs_no_key(cli: Any, tmp_path: Path) -> None:
    """--sandbox runs without a key (and says so by finishing)."""
    assert DEFAULT_API_KEY  # the in-process sandbox's own key is used
    done = cli("batch", prompts_file(tmp_path), "-m", "dall-e-3", "-o", tmp_path / "out",
               "--sandbox")  # fmt: skip
    assert done.code == 0, done.err
    assert len(metadata(tmp_path / "out")) == 3


def test_missing_prompts_file_is_refused(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """A prompts file that is not there is a usage error (exit 2), not a resumable failure."""
    done = cli("batch", tmp_path / "nope.jsonl", "-m", "dall-e-3", "-o", tmp_path / "out")
    assert done.code == 2
    assert "cannot read the prompts file" in done.err
    assert not (tmp_path / "out").exists()


def test_older_dataset_folder_is_refused(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """A folder written before the journal existed is refused, not silently mixed into."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "metadata.jsonl").write_text('{"file_name": "000000.png", "id": "000000"}\n')
    done = cli("batch", prompts_file(tmp_path), "-m", "dall-e-3", "-o", out)
    assert done.code == 2
    assert "written without a journal" in done.err
    assert api.requests == 0


def batch_under_open_files_limit(
    tmp_path: Path, soft: int, hard: int, *extra: str, items: int = 300
) -> subprocess.CompletedProcess[str]:
    """The command (in-process sandbox) as a process whose ``ulimit -n`` is soft/hard."""
    prompts = prompts_file(tmp_path, items)
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m", "dall-e-3",
               "-o", str(tmp_path / "out"), "--sandbox", *extra]  # fmt: skip

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        command, capture_output=True, check=False, text=True, timeout=300, preexec_fn=limit
    )


def test_concurrency_is_fitted_to_the_open_files_limit(tmp_path: Path) -> None:
    """Finding 7: --concurrency 2000 under ``ulimit -n 256`` is lowered with a message, and
    every item is generated and committed (not billed and lost to EMFILE).
    """
    done = batch_under_open_files_limit(tmp_path, 256, 256, "--concurrency", "2000")
    assert done.returncode == 0, done.stderr
    assert "note: --concurrency 2000 needs about" in done.stderr
    assert "running with --concurrency 112" in done.stderr
    assert len(metadata(tmp_path / "out")) == 300


def test_open_files_soft_limit_is_raised_when_the_hard_one_allows(tmp_path: Path) -> None:
    """Finding 7: a soft ``ulimit -n`` below what the concurrency needs is raised towards the
    hard limit (no note, nothing lowered) and every item is committed.
    """
    done = batch_under_open_files_limit(tmp_path, 256, 4096, "--concurrency", "500")
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stderr
    assert len(metadata(tmp_path / "out")) == 300


def test_open_files_limit_too_low_for_anything(tmp_path: Path) -> None:
    """Finding 7: a limit that cannot carry a single generation is refused with exit 2."""
    done = batch_under_open_files_limit(tmp_path, 33, 33, "--dry-run", items=3)
    assert done.returncode == 2, done.stderr
    assert "too low for even one generation" in done.stderr
