"""Hostile pass over ``--output-format parquet`` (issue 13): a Parquet folder damaged between
runs (a shard deleted or cut short, a staged image lost) is repaired by the resume, which says
what it found; every item ends in exactly one shard and ``datasets`` loads the folder.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import _parquet
from aihubmix_async._cli import main
from aihubmix_async._journal_files import STAGED_DIR
from aihubmix_async.sandbox import DEFAULT_API_KEY
from tests.cli import conftest as cli_support
from tests.cli.conftest import ThreadSandbox, jsonl

api, cli = cli_support.api, cli_support.cli  # the CLI tests' fixtures: a sandbox, main(argv)

datasets = pytest.importorskip("datasets")
pq = pytest.importorskip("pyarrow.parquet")

PARQUET = ("--output-format", "parquet")


def shard_ids(out: Path) -> Counter[str]:
    """Every id of every shard in data/ (an item of n=1 is one row)."""
    found: Counter[str] = Counter()
    for path in sorted((out / "data").glob("*.parquet")):
        found.update(pq.read_table(path, columns=["id"])["id"].to_pylist())
    return found


def loads(out: Path) -> int:
    """The number of rows ``datasets`` loads from the folder itself (through the card)."""
    cache = out.parent / f"cache-{out.name}-{len(list(out.parent.glob('cache-*')))}"
    return int(datasets.load_dataset(str(out), cache_dir=str(cache))["train"].num_rows)


def five(tmp_path: Path) -> Path:
    return jsonl(tmp_path / "p.jsonl", [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(5)])


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_damaged_shard_is_reported_and_its_items_generated_again(
    api: ThreadSandbox, cli: Any, tmp_path: Path, damage: str
) -> None:
    """A sealed shard deleted, or cut short (a copy interrupted, a full disk elsewhere),
    between runs: the resume names it, moves a damaged file out of data/ (``datasets`` would
    choke on it; kept aside, not deleted), generates exactly its items again into a new shard
    and ends with every item once. Before, it reported "all done".
    """
    prompts, out = five(tmp_path), tmp_path / "out"
    argv = ("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET, "--parquet-shard-size",
            "2rows", "--concurrency", "1")  # fmt: skip
    assert cli(*argv).code == 0
    shard = out / "data" / "train-00001.parquet"
    lost = pq.read_table(shard, columns=["id"])["id"].to_pylist()
    if damage == "deleted":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[:100])
    billed = api.submits
    again = cli(*argv)
    assert again.code == 0, again.err
    assert "data/train-00001.parquet is " + ("missing" if damage == "deleted" else "damaged") in (
        again.err
    )
    assert not shard.exists()
    aside = list((out / ".aihubmix").rglob("train-00001.parquet.*"))
    assert len(aside) == (damage == "truncated")
    assert api.submits - billed == len(lost)
    assert shard_ids(out) == Counter({f"i{k}": 1 for k in range(5)})
    assert loads(out) == 5


def test_a_lost_staged_image_does_not_keep_every_row_out_of_the_shards(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows waiting for a shard when one staged image is gone (deleted by a cleaner, lost by
    the disk): the resume says so and generates that item again; the other rows still reach
    a shard (before: every shard gave its rows back for ever and the run said all done).
    """
    prompts, out = five(tmp_path), tmp_path / "out"
    argv = ("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET, "--concurrency", "1")

    def crash(step: str) -> None:
        if step == "claimed":  # the run's only shard, at its end
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_parquet, "test_hook", crash)
    assert cli(*argv).code == 3
    monkeypatch.setattr(_parquet, "test_hook", None)
    (out / STAGED_DIR / "i2.png").unlink()
    billed = api.submits
    again = cli(*argv)
    assert again.code == 0, again.err
    assert "'i2'" in again.err
    assert api.submits - billed == 1
    assert shard_ids(out) == Counter({f"i{k}": 1 for k in range(5)})
    assert sorted(p.name for p in (out / STAGED_DIR).iterdir()) == []
    assert loads(out) == 5


def test_the_help_shows_the_default_shard_size_as_a_user_writes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    assert "(default: 500MB)" in " ".join(capsys.readouterr().out.split())


def test_the_default_shard_size_reads_as_it_is_written() -> None:
    """``--help`` prints the default with str(): ``500MB``, not the object's repr."""
    assert str(_parquet.ShardTarget()) == "500MB"
    assert str(_parquet.parse_shard_size("10000rows")) == "10000rows"
    assert str(_parquet.parse_shard_size("2.5MB")) == "2.5MB"


def test_a_staged_image_lost_during_a_run_leaves_the_other_rows_in_the_shard(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged image deleted while the run goes on: the shard that finds it gone still takes
    every other row; the item is pending again and the rerun generates only it.
    """
    prompts, out = five(tmp_path), tmp_path / "out"
    argv = ("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET, "--concurrency", "1")

    def vanish(step: str) -> None:
        if step == "claimed" and (out / STAGED_DIR / "i3.png").exists():
            (out / STAGED_DIR / "i3.png").unlink()

    monkeypatch.setattr(_parquet, "test_hook", vanish)
    first = cli(*argv)
    monkeypatch.setattr(_parquet, "test_hook", None)
    assert "'i3'" in first.err
    assert shard_ids(out) == Counter({f"i{k}": 1 for k in (0, 1, 2, 4)})
    billed = api.submits
    again = cli(*argv)
    assert again.code == 0, again.err
    assert api.submits - billed == 1
    assert shard_ids(out) == Counter({f"i{k}": 1 for k in range(5)})
    assert loads(out) == 5


@pytest.fixture
def big_images(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadSandbox]:
    """A sandbox answering with incompressible 300 kB PNGs (like large real images)."""
    running = ThreadSandbox(image_bytes=300_000)
    monkeypatch.setenv("AIHUBMIX_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("AIHUBMIX_BASE_URL", running.base_url)
    yield running
    running.close()


def test_row_groups_are_bounded_by_image_bytes_not_only_rows(
    big_images: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard is written a row group at a time, and a row group holds at most the byte budget
    of images (here 1 MB) rather than 64 rows whatever their size: 64 images of 10 MB held
    at once took over 900 MB while a shard was written. Every row still loads.
    """
    monkeypatch.setattr(_parquet, "_BATCH_BYTES", 1_000_000)
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {k}\n" for k in range(10)))
    out = tmp_path / "out"
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET, "--no-provenance")
    assert done.code == 0, done.err
    (shard,) = sorted((out / "data").glob("*.parquet"))
    meta = pq.read_metadata(shard)
    groups = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sum(groups) == 10
    assert max(groups) <= 4  # 4 x 300 kB reach the budget: the group is written
    assert loads(out) == 10


def test_a_parquet_file_the_journal_did_not_write_is_pointed_out(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """A copy of a shard (or another dataset's file) dropped into data/: ``datasets`` would load
    its rows as well, twice or foreign; the resume names it (and leaves the user's file alone).
    """
    prompts, out = five(tmp_path), tmp_path / "out"
    argv = ("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET)
    assert cli(*argv).code == 0
    copy = out / "data" / "train-00000-copy.parquet"
    copy.write_bytes((out / "data" / "train-00000.parquet").read_bytes())
    again = cli(*argv)
    assert again.code == 0, again.err
    assert "data/train-00000-copy.parquet" in again.err
    assert copy.exists()


def test_hostile_ids_and_prompts_load_from_both_layouts(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Regression guard: ids with separators, ``..``, NUL and emoji, a 1 MB prompt and a prompt
    with YAML and Markdown: every file stays inside its folder, ``datasets`` loads every row of
    both layouts with its id and prompt unchanged; an n=4 item is never split across shards.
    """
    rows: list[dict[str, Any]] = [
        {"id": "../../escape", "prompt": "traversal"},
        {"id": "a/b\\c", "prompt": "separators"},
        {"id": "nul\u0000id", "prompt": "nul\u0000in prompt"},
        {"id": "emoji😀", "prompt": "🦊 " * 10},
        {"id": "big", "prompt": "x" * 1_000_000},
        {"id": "four", "prompt": "---\nconfigs: evil\n---\n# `code`", "n": 4},
    ]
    prompts = jsonl(tmp_path / "p.jsonl", rows)
    expected = sorted((r["id"], r["prompt"]) for r in rows for _ in range(r.get("n", 1)))
    for fmt in ("imagefolder", "parquet"):
        out = tmp_path / fmt
        shards = ("--parquet-shard-size", "1rows") if fmt == "parquet" else ()
        done = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, "--output-format", fmt,
                   *shards, "--concurrency", "1")  # fmt: skip
        assert done.code == 0, done.err
        cache = str(tmp_path / f"cache-{fmt}")
        loaded = datasets.load_dataset(str(out), cache_dir=cache)["train"]
        assert sorted(zip(loaded["id"], loaded["prompt"], strict=True)) == expected
    outs = (tmp_path / "imagefolder", tmp_path / "parquet")
    assert all(any(o in p.parents for o in outs) for p in tmp_path.rglob("*.png"))
    holding = [
        ids.count("four")
        for shard in sorted((tmp_path / "parquet" / "data").glob("*.parquet"))
        if "four" in (ids := pq.read_table(shard, columns=["id"])["id"].to_pylist())
    ]
    assert holding == [4]  # 1 row a shard was asked for: an item's rows still stay together


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_shards_and_the_card_get_the_umasks_permissions(
    api: ThreadSandbox, cli: Any, tmp_path: Path, umask: int
) -> None:
    """Regression guard: shards, the card and errors.jsonl are created like any other tool's
    output (0666 less the umask), neither world-readable regardless nor private regardless.
    """
    previous = os.umask(umask)
    try:
        out = tmp_path / "out"
        assert cli("batch", five(tmp_path), "-m", "dall-e-3", "-o", out, *PARQUET).code == 0
    finally:
        os.umask(previous)
    files = [*sorted((out / "data").glob("*.parquet")), out / "README.md", out / "errors.jsonl"]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o666 & ~umask)}
