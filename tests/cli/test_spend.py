"""The command line's spend: the dry run's estimate, --max-cost / --max-images, status."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async._cli import main

from .conftest import ThreadSandbox, images, jsonl, metadata

FAST = "imagen-4.0-fast-generate-001"  # $0.02 an image in the shipped snapshot


def test_a_capped_run_stops_at_the_cap_and_resumes_past_it_with_a_higher_one(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(8)))
    out = tmp_path / "out"
    run = ("batch", prompts, "-m", FAST, "-o", out, "--concurrency", "3")
    capped = cli(*run, "--max-cost", "0.1")
    assert capped.code == 5, capped.err
    assert "stopped at the cap: --max-cost 0.1 reached" in capped.err
    assert "3 item(s) not generated" in capped.err
    assert api.submits == 5
    assert len(images(out)) == 5
    same = cli(*run, "--max-cost", "0.1")  # the folder's spend counts: nothing more is sent
    assert same.code == 5
    assert api.submits == 5
    higher = cli(*run, "--max-cost", "1")
    assert higher.code == 0, higher.err
    assert api.submits == 8  # the 5 done items were skipped, not paid twice
    rows = metadata(out)
    assert len(rows) == 8
    assert {(r["cost"], r["cost_source"].split()[0]) for r in rows} == {(0.02, "snapshot")}
    status = cli("status", out)
    assert "cost: $0.1600 estimated for 8 priced item(s)" in status.out


def test_max_images_caps_the_folder(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    prompts = jsonl(tmp_path / "p.jsonl", [{"prompt": f"p{i}", "numberOfImages": 2}
                                           for i in range(4)])  # fmt: skip
    out = tmp_path / "out"
    capped = cli("batch", prompts, "-m", FAST, "-o", out, "--max-images", "5")
    assert capped.code == 5
    assert "--max-images 5 reached" in capped.err
    assert len(images(out)) == 4
    assert api.submits == 2


def test_the_dry_runs_estimate_equals_the_real_runs_cost(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    prompts = jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "a fox", "model": FAST, "numberOfImages": 3},
        {"id": "b", "prompt": "a cat", "model": "flux-kontext-max"},
        {"id": "c", "prompt": "a sign", "model": "ideogram/V3", "rendering_speed": "TURBO"},
        {"id": "d", "prompt": "a bowl", "model": "doubao-seedream-4-0"},
        {"id": "e", "prompt": "a tea house", "model": "qwen-image"},
    ])  # fmt: skip
    out = tmp_path / "out"
    dry = cli("batch", prompts, "-o", out, "--dry-run")
    assert dry.code == 0, dry.err
    assert api.submits == 0
    assert "bfl/flux-kontext-max: 1 request(s), 1 image(s), $0.0800 (snapshot" in dry.out
    assert "qianfan/qwen-image: 1 request(s), 1 image(s), no price" in dry.out
    total = re.search(r"total: 5 request\(s\), 7 image\(s\), \$([0-9.]+) estimated", dry.out)
    assert total is not None, dry.out
    real = cli("batch", prompts, "-o", out)
    assert real.code == 0, real.err
    spent = sum(r["cost"] for r in metadata(out) if r["cost"] is not None)
    assert spent == pytest.approx(float(total.group(1)))
    assert f"${float(total.group(1)):.4f} estimated" in real.out


@pytest.mark.parametrize("flags", [("--max-cost", "-1"), ("--max-images", "-2")])
def test_a_bad_cap_is_refused_before_anything_is_sent(
    api: ThreadSandbox, cli: Any, tmp_path: Path, flags: tuple[str, str]
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    ran = cli("batch", prompts, "-m", FAST, "-o", tmp_path / "out", *flags)
    assert ran.code == 2
    assert "must be a number >= 0" in ran.err
    assert api.submits == 0


def test_a_prices_file_overrides_the_snapshot(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"qwen-image": 0.5}')
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\na cat\n")
    dry = cli("batch", prompts, "-m", "qwen-image", "-o", tmp_path / "o", "--dry-run",
              "--prices", prices)  # fmt: skip
    assert "$1.0000 (override)" in dry.out
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    bad = cli("batch", prompts, "-m", "qwen-image", "-o", tmp_path / "o", "--prices", broken)
    assert bad.code == 2
    assert "cannot read prices" in bad.err
    assert api.submits == 0


def test_models_lists_snapshot_prices(cli: Any) -> None:
    listing = cli("models")
    assert listing.code == 0
    line = next(x for x in listing.out.splitlines() if x.startswith(f"google/{FAST}"))
    assert "$0.02/image (snapshot " in line
    qwen = next(x for x in listing.out.splitlines() if x.startswith("qianfan/qwen-image "))
    assert "/image" not in qwen


def test_a_folder_written_before_costs_were_recorded_resumes(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Rows with no cost (an older version's) need no migration: the run resumes, status reads
    them, and the cap counts what is recorded.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\na cat\n")
    out = tmp_path / "out"
    assert cli("batch", prompts, "-m", FAST, "-o", out).code == 0
    db = sqlite3.connect(out / ".aihubmix" / "journal.sqlite3")
    with db:
        db.execute("UPDATE items SET usage = NULL")  # what the previous version wrote
    db.close()
    prompts.write_text("a fox\na cat\nan owl\n")
    again = cli("batch", prompts, "-m", FAST, "-o", out, "--max-cost", "0.02")
    assert again.code == 0, again.err
    assert api.submits == 3
    assert "cost: $0.0200 estimated for 1 priced item(s)" in cli("status", out).out


# --- attacked (hostile pass): shards at once under a cap, a resumed cap's message ------------


def _until(condition: object, what: str) -> None:
    """Wait for an event another process causes (a bound on a hang, not a timing window)."""
    for _ in range(1200):
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _child(*argv: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # our own interpreter and module
        [sys.executable, "-m", "aihubmix_async", *map(str, argv)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def _prompts(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "p.txt"
    path.write_text("".join(f"prompt {i}\n" for i in range(count)))
    return path


@pytest.mark.slow
def test_a_capped_folder_is_spent_by_one_run_at_a_time(
    api: ThreadSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two shards with --max-cost 0.1 at once each counted the folder as it was when they
    started, and spent $0.16 together. Now the second is refused (exit 4, nothing sent) while
    the first holds the folder's spend, and runs once the first is gone (even by kill -9).
    """
    prompts, out = _prompts(tmp_path, 20), tmp_path / "out"
    api.fail("delay", delay=3600)  # the first shard's one submit stays in flight
    first = _child("batch", prompts, "-m", FAST, "-o", out, "--shard", "0/2",
                   "--max-cost", "0.1", "--concurrency", "1")  # fmt: skip
    try:
        _until(lambda: api.requests >= 1, "the first shard's submit reached the server")
        sent = api.requests
        for cap in (["--max-cost", "0.1"], []):  # capped or not, no second run spends meanwhile
            code = main(["batch", str(prompts), "-m", FAST, "-o", str(out), "--shard", "1/2", *cap])
            err = capsys.readouterr().err
            assert code == 4, err
            assert "count the whole folder" in err
        assert api.requests == sent
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    capped = main(["batch", str(prompts), "-m", FAST, "-o", str(out), "--shard", "1/2",
                   "--max-cost", "1"])  # fmt: skip
    assert capped == 0, capsys.readouterr().err  # the kernel dropped the dead run's claim
    assert api.submits == 1 + 10  # the killed shard's one submit, then shard 1's ten items


def test_a_resumed_capped_run_names_the_cap_as_given(
    api: ThreadSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rerun's message said "--max-cost 0.05 reached" (what was left of it) to a user who
    typed 0.15, and "--max-cost 0 reached: $0.0000 spent" to one who reran the same command.
    """
    prompts, out = _prompts(tmp_path, 12), tmp_path / "out"
    run = ["batch", str(prompts), "-m", FAST, "-o", str(out), "--concurrency", "1"]
    assert main([*run, "--max-cost", "0.1"]) == 5
    capsys.readouterr()
    assert main([*run, "--max-cost", "0.1"]) == 5
    same = capsys.readouterr().err
    assert "--max-cost 0.1 reached: $0.1000 in the folder before this run," in same
    assert main([*run, "--max-cost", "0.15"]) == 5
    higher = capsys.readouterr().err
    assert "--max-cost 0.15 reached: $0.1000 in the folder before this run, $0.0400 spent" in higher
    assert api.submits == 7
    assert main([*run, "--max-images", "8"]) == 5
    images = capsys.readouterr().err
    assert (
        "--max-images 8 reached: 7 image(s) in the folder before this run, 1 image(s) made"
        in images
    )


def test_max_cost_with_an_unpriced_model_is_refused_up_front(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Every line used to fail on its own ("no price"), each recorded as a failure, exit 1."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\na cat\n")
    out = tmp_path / "out"
    ran = cli("batch", prompts, "-m", "qwen-image", "-o", out, "--max-cost", "1")
    assert ran.code == 2, ran.err
    assert "no price per image is known for qianfan/qwen-image" in ran.err
    assert api.submits == 0
    assert not out.exists()
    priced = tmp_path / "prices.json"
    priced.write_text('{"qwen-image": 0.01}')
    assert cli("batch", prompts, "-m", "qwen-image", "-o", out, "--max-cost", "1",
               "--prices", priced).code == 0  # fmt: skip
