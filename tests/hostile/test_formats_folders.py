"""Hostile pass over the output layouts (issue 13): a folder that already holds another
dataset, or a file where a layout needs its folder, is refused before anything is billed; a
user's files are never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import _journal_files
from tests.cli import conftest as cli_support
from tests.cli.conftest import ThreadSandbox, jsonl

api, cli = cli_support.api, cli_support.cli  # the CLI tests' fixtures: a sandbox, main(argv)


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("train/metadata.jsonl", "imagefolder"),  # a Hugging Face image folder
        ("data/train-00000.parquet", "parquet"),  # a Parquet dataset: our first shard's name
        ("data/train-00000.parquet", "imagefolder"),
    ],
)
def test_a_folder_holding_another_dataset_is_refused_and_left_as_it_is(
    api: ThreadSandbox, cli: Any, tmp_path: Path, path: str, fmt: str
) -> None:
    """Its metadata or shards were silently replaced by the run's (exit 0)."""
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    theirs = out / path
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b'{"file_name": "mine.png", "caption": "my own"}\n')
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    refused = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--output-format", fmt)
    assert refused.code == 2
    assert "written without a journal" in refused.err
    assert path in refused.err
    assert api.requests == 0
    assert theirs.read_bytes() == b'{"file_name": "mine.png", "caption": "my own"}\n'


@pytest.mark.parametrize(("name", "fmt"), [("data", "parquet"), ("train", "imagefolder")])
def test_a_file_where_the_layout_needs_its_folder_is_refused_before_billing(
    api: ThreadSandbox, cli: Any, tmp_path: Path, name: str, fmt: str
) -> None:
    """A file named ``data`` (or ``train``) in the output folder: every item was generated and
    paid for, then the run failed to write them (exit 3), and so did every rerun.
    """
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("not a folder")
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\nan owl\n")
    refused = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--output-format", fmt)
    assert refused.code == 2
    assert f"{name}/" in refused.err
    assert api.requests == 0
    assert (out / name).read_text() == "not a folder"


def test_an_image_deleted_from_an_image_folder_is_reported_and_generated_again(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """An image deleted between runs: the resume names it and drops its metadata row (so
    ``datasets`` can read every row it lists); the item is pending again and the next run
    generates exactly it (before: "all done", exit 0, and ``datasets`` failed on the row).
    """
    datasets = pytest.importorskip("datasets")
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\nthree\n")
    out = tmp_path / "out"
    argv = ("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert cli(*argv).code == 0
    gone = sorted((out / "train" / "00000").iterdir())[1]
    gone.unlink()
    billed = api.submits
    noticed = cli(*argv)
    assert noticed.code == 0, noticed.err
    assert f"train/00000/{gone.name}" in noticed.err
    listed = (out / "train" / "metadata.jsonl").read_text()
    assert gone.name not in listed
    assert len(listed.splitlines()) == 2
    again = cli(*argv)
    assert again.code == 0, again.err
    assert api.submits - billed == 1
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]
    assert sorted(row["prompt"] for row in loaded) == ["one", "three", "two"]
    assert all(row["image"].size == (64, 64) for row in loaded)  # every image is there


def test_an_item_of_four_images_across_a_bucket_boundary_loads_whole(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression guard: a bucket filled to exactly its size by part of an n=4 item spills the
    rest into the next bucket; every metadata row names its image and ``datasets`` loads all.
    """
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(_journal_files, "BUCKET_SIZE", 4)
    rows: list[dict[str, Any]] = [*({"id": f"s{k}", "prompt": f"single {k}"} for k in range(3)),
            {"id": "four", "prompt": "four of them", "n": 4}]  # fmt: skip
    out = tmp_path / "out"
    assert cli("batch", jsonl(tmp_path / "p.jsonl", rows), "-m", "gpt-image-1", "-o", out,
               "--concurrency", "1").code == 0  # fmt: skip
    buckets = {b.name: sorted(p.name for p in b.iterdir()) for b in (out / "train").iterdir()
               if b.is_dir()}  # fmt: skip
    assert [len(names) for _, names in sorted(buckets.items())] == [4, 3]
    meta = [json.loads(x) for x in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    assert all((out / "train" / r["file_name"]).is_file() for r in meta)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]
    assert sorted(loaded["id"]).count("four") == 4
    assert loaded.num_rows == 7


def test_an_edited_metadata_file_is_written_again_from_the_journal(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Regression guard: metadata.jsonl with a line removed and bad bytes appended between
    runs is rewritten whole from the journal by the resume; nothing is generated again.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\nthree\n")
    out = tmp_path / "out"
    argv = ("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert cli(*argv).code == 0
    meta = out / "train" / "metadata.jsonl"
    whole = meta.read_bytes()
    meta.write_bytes(b"".join(whole.splitlines(keepends=True)[1:]) + b"\xff{not json\n")
    billed = api.submits
    assert cli(*argv).code == 0
    assert meta.read_bytes() == whole
    assert api.submits == billed


def test_a_recorded_layout_is_not_switched_before_the_folder_has_items(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """A folder whose layout is recorded but holds no item yet: what a shard run sees while
    another shard of the split, started with another --output-format, is still reading its
    input. Switching it then gave one folder both train/ images and data/ shards, both runs
    exit 0; now the second is refused, nothing sent.
    """
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a fox", "size": "3x3"}\n')  # a bad line: no item recorded
    assert cli("batch", bad, "-m", "dall-e-3", "-o", out, "--output-format", "parquet").code == 1
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    refused = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--output-format", "imagefolder")
    assert refused.code == 2
    assert "pass --output-format parquet" in refused.err
    assert api.submits == 0
    assert not (out / "train").exists()
