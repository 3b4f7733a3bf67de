"""Output layouts of ``aihubmix-async batch`` loaded with Hugging Face ``datasets`` (issue 13,
item 3): bucketed image folders, folders written before layouts existed, the dataset card.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import __version__, _journal_files
from aihubmix_async import _journal as journal_module

from .conftest import ThreadSandbox, images, jsonl, metadata

datasets = pytest.importorskip("datasets")
yaml = pytest.importorskip("yaml")  # datasets depends on PyYAML


def load(out: Path, **options: Any) -> Any:
    """The train split as ``datasets`` loads it (no cache shared between tests)."""
    cache = out.parent / f"cache-{out.name}"
    return datasets.load_dataset(**options, cache_dir=str(cache))["train"]


def card(out: Path) -> tuple[dict[str, Any], str]:
    """The dataset card's YAML front matter (parsed) and its prose."""
    _, front, prose = (out / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(front), prose


def test_image_folder_buckets_hold_at_most_the_bucket_size_and_load(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images go to train/00000/, train/00001/ ... of at most BUCKET_SIZE files; every
    metadata row's file_name is that image's path from train/; ``datasets`` loads every row
    with its image and columns, even with ids that name a split (test-1, val.2).
    """
    monkeypatch.setattr(_journal_files, "BUCKET_SIZE", 3)
    rows: list[dict[str, Any]] = [
        {"id": "test-1", "prompt": "a fox"},
        {"id": "val.2", "prompt": "an owl", "n": 2},
        *({"id": f"i{k}", "prompt": f"p{k}"} for k in range(5)),
    ]
    out = tmp_path / "out"
    done = cli("batch", jsonl(tmp_path / "p.jsonl", rows), "-m", "gpt-image-1", "-o", out)
    assert done.code == 0, done.err
    buckets = sorted(p for p in (out / "train").iterdir() if p.is_dir())
    assert [b.name for b in buckets] == ["00000", "00001", "00002"]
    assert [len(list(b.iterdir())) for b in buckets] == [3, 3, 2]
    assert not [p for p in out.iterdir() if p.suffix == ".png"]  # nothing flat
    meta = metadata(out)
    assert sorted(r["file_name"] for r in meta) == sorted(
        str(p.relative_to(out / "train")) for b in buckets for p in b.iterdir()
    )
    loaded = load(out, path="imagefolder", data_dir=str(out))
    assert loaded.num_rows == 8
    assert sorted(loaded["id"]) == sorted(
        ["test-1", "val.2", "val.2", *(f"i{k}" for k in range(5))]
    )
    assert {"prompt", "model", "params", "request_id", "image_index"} <= set(loaded.column_names)
    first = loaded[0]
    assert first["image"].size == (64, 64)
    assert first["model"] == "openai/gpt-image-1"
    assert json.loads(first["params"]) in ({}, {"n": 2})
    # The card's configs name the same files: loading the folder itself gives the same rows.
    assert sorted(load(out, path=str(out))["id"]) == sorted(loaded["id"])


def test_resume_continues_the_bucket_it_stopped_in(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun with more lines fills the last bucket before it opens a new one and moves
    nothing that was there.
    """
    monkeypatch.setattr(_journal_files, "BUCKET_SIZE", 3)
    prompts = tmp_path / "p.txt"
    out = tmp_path / "out"
    prompts.write_text("one\ntwo\n")
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    before = {p: p.stat().st_ino for p in (out / "train").rglob("*.png")}
    prompts.write_text("one\ntwo\nthree\nfour\nfive\n")
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    after = {p: p.stat().st_ino for p in (out / "train").rglob("*.png")}
    assert {p: after[p] for p in before} == before
    assert sorted(len(list(b.iterdir())) for b in (out / "train").iterdir() if b.is_dir()) == [
        2, 3]  # fmt: skip
    assert api.submits == 5
    assert load(out, path="imagefolder", data_dir=str(out)).num_rows == 5


def test_flat_folder_of_an_earlier_version_resumes_flat(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder whose journal has items but no layout (written before layouts existed) keeps
    its files where they are; the resume adds its images flat too, every row stays valid and
    ``datasets`` loads old and new rows.
    """
    out = tmp_path / "out"
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    with monkeypatch.context() as patch:  # the version before layouts wrote everything flat
        real = _journal_files.resolve_layout
        patch.setattr(journal_module, "resolve_layout",
                      lambda db, _requested, *, write: real(db, "flat", write=write))  # fmt: skip
        assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    db = sqlite3.connect(out / ".aihubmix" / "journal.sqlite3")
    db.execute("DELETE FROM meta WHERE key LIKE 'layout%'")  # and recorded no layout
    db.commit()
    db.close()
    (out / "README.md").unlink()  # nor a card
    old = {p.name: p.stat().st_ino for p in out.glob("*.png")}
    assert len(old) == 2
    prompts.write_text("one\ntwo\nthree\n")
    resumed = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert resumed.code == 0, resumed.err
    assert "1 saved (1 images), 0 failed, 0 bad line(s), 2 already done" in resumed.out
    assert {p.name: p.stat().st_ino for p in out.glob("*.png") if p.name in old} == old
    assert not (out / "train").exists()
    rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in rows) == ["one", "three", "two"]
    assert images(out) == sorted(r["file_name"] for r in rows)
    assert load(out, path="imagefolder", data_dir=str(out)).num_rows == 3
    assert load(out, path=str(out)).num_rows == 3  # the card (flat: no configs) loads too
    assert api.submits == 3


def test_another_output_format_than_the_folders_is_refused(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Parquet into an image folder (or the reverse) is refused before anything is sent."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\n")
    out = tmp_path / "out"
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    prompts.write_text("one\ntwo\n")
    refused = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--output-format", "parquet")
    assert refused.code == 2
    assert "pass --output-format imagefolder to resume it" in refused.err
    assert api.submits == 1


def test_dataset_card_names_models_parameters_counts_and_the_tool(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """README.md: YAML front matter datasets and the Hub read (configs, features, size,
    task, tags) and prose with the models, parameters, counts, dates and the tool's version;
    rewritten by the resume.
    """
    rows = [{"id": "a", "prompt": "a fox", "model": "dall-e-3"},
            {"id": "b", "prompt": "an owl", "model": "gpt-image-1", "quality": "low"},
            {"id": "c", "prompt": "bad", "model": "gpt-image-1", "size": "3x3"}]  # fmt: skip
    out = tmp_path / "out"
    prompts = jsonl(tmp_path / "p.jsonl", rows)
    cli("batch", prompts, "-o", out)
    front, prose = card(out)
    assert front["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "train/**"}]}
    ]
    assert front["task_categories"] == ["text-to-image"]
    assert front["size_categories"] == ["n<1K"]
    assert "aihubmix-async" in front["tags"]
    features = {f["name"]: f["dtype"] for f in front["dataset_info"]["features"]}
    assert features["image"] == "image"
    assert set(features) == set(load(out, path=str(out)).column_names)
    assert "`` openai/dall-e-3 ``: 1 item(s)" in prose
    assert "`` openai/gpt-image-1 ``: 1 item(s)" in prose
    assert '`` {"quality":"low"} ``: 1 item(s)' in prose
    assert "- 2 item(s) generated, 2 image(s)" in prose
    assert f"aihubmix-async/aihubmix-async) {__version__}." in prose
    assert "Generated between 20" in prose
    jsonl(prompts, [*rows[:2], {"id": "d", "prompt": "a cat", "model": "dall-e-3"}])
    assert cli("batch", prompts, "-o", out).code == 0
    _, prose = card(out)
    assert "`` openai/dall-e-3 ``: 2 item(s)" in prose
    assert "- 3 item(s) generated, 3 image(s)" in prose
