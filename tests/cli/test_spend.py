"""The command line's spend: the dry run's estimate, --max-cost / --max-images, status."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

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
