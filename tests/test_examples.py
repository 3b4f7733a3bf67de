"""The README's examples run as written (against the built-in sandbox: no key, no network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import decode_image

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIHUBMIX_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, check=False, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip


def test_quickstart(tmp_path: Path) -> None:
    """examples/quickstart.py saves an image and fans out more."""
    done = run_example("quickstart.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert decode_image((tmp_path / "lighthouse.png").read_bytes())[0] == "PNG"
    assert "4 more images" in done.stdout


def test_bulk_dataset(tmp_path: Path) -> None:
    """examples/bulk_dataset.py saves every item and prints the summary."""
    done = run_example("bulk_dataset.py", str(tmp_path / "out"), cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").iterdir())) == 40
    assert "succeeded=40, failed=0" in done.stdout
