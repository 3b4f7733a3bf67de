"""``aihubmix-async batch --output-format parquet`` (issue 13, item 3): shards ``datasets`` loads
with an ``Image`` column, written exactly once across crashes and resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import _parquet
from aihubmix_async._journal_files import STAGED_DIR
from aihubmix_async.sandbox import DEFAULT_API_KEY

from .conftest import ThreadSandbox, jsonl

datasets = pytest.importorskip("datasets")
pq = pytest.importorskip("pyarrow.parquet")

COLUMNS = ["id", "prompt", "model", "params", "image", "mime_type", "request_id", "usage", "cost",
           "attempts", "elapsed", "error_type", "error_message"]  # fmt: skip
PARQUET = ("--output-format", "parquet")


def load(out: Path, **options: Any) -> Any:
    cache = out.parent / f"cache-{out.name}-{len(list(out.parent.glob('cache-*')))}"
    return datasets.load_dataset(**options, cache_dir=str(cache))["train"]


def shards(out: Path) -> list[Path]:
    return sorted((out / "data").glob("*.parquet"))


def shard_ids(out: Path) -> Counter[tuple[str, str]]:
    """(id, image file name) of every row of every shard: each must appear once."""
    found: Counter[tuple[str, str]] = Counter()
    for path in shards(out):
        table = pq.read_table(path, columns=["id", "image"])
        for item_id, image in zip(table["id"].to_pylist(), table["image"].to_pylist(), strict=True):
            found[item_id, image["path"]] += 1
    return found


def staged(out: Path) -> list[str]:
    folder = out / STAGED_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_parquet_shards_load_with_an_image_column_and_the_shared_columns(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Shards of the target row count (the last one smaller) in data/; ``datasets`` loads
    every image once as ``Image`` beside the shared columns; no image is left staged; the card
    points at the shards and lists the features.
    """
    rows = [{"id": f"i{k}", "prompt": f"p{k}", **({"n": 2} if k == 3 else {})} for k in range(8)]
    out = tmp_path / "out"
    done = cli("batch", jsonl(tmp_path / "p.jsonl", rows), "-m", "gpt-image-1", "-o", out,
               *PARQUET, "--parquet-shard-size", "3rows", "--concurrency", "1")  # fmt: skip
    assert done.code == 0, done.err
    counts = [pq.read_metadata(p).num_rows for p in shards(out)]
    assert sum(counts) == 9
    assert all(c >= 3 for c in counts[:-1])
    assert shard_ids(out) == Counter(
        {(f"i{k}", f"i{k}.png"): 1 for k in range(8)} | {("i3", "i3~1.png"): 1}
    )
    assert staged(out) == []
    assert not [p for p in out.rglob("*.png") if ".aihubmix" not in p.parts]
    loaded = load(out, path="parquet", data_dir=str(out / "data"))
    assert loaded.column_names == COLUMNS
    assert type(loaded.features["image"]).__name__ == "Image"
    assert loaded.num_rows == 9
    first = loaded[0]
    assert first["image"].size == (64, 64)
    assert first["error_type"] is None
    assert first["model"] == "openai/gpt-image-1"
    assert json.loads(first["usage"])["total_tokens"] > 0
    # gpt-image reports tokens: each row carries its share of the item's cost (i3's two rows
    # split it), and the rows add up to what the journal's usage records per item.
    item_costs = {r["id"]: json.loads(r["usage"])["cost"] for r in loaded}
    assert all(r["cost"] is not None and r["cost"] > 0 for r in loaded)
    assert sum(loaded["cost"]) == pytest.approx(sum(item_costs.values()))
    assert sorted(load(out, path=str(out))["id"]) == sorted(loaded["id"])  # through the card
    front = (out / "README.md").read_text().split("---\n")[1]
    assert 'path: "data/train-*.parquet"' in front


def test_a_crash_at_any_shard_step_never_duplicates_or_loses_a_row(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stopped after claiming rows, or after renaming the shard into place but before
    sealing it, leaves a folder whose rerun ends with every row in exactly one shard.
    """
    rows = [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(6)]
    prompts = jsonl(tmp_path / "p.jsonl", rows)
    for step in ("claimed", "renamed"):
        out = tmp_path / step
        calls: list[str] = []

        def crash(name: str, step: str = step, calls: list[str] = calls) -> None:
            calls.append(name)
            if name == step and calls.count(step) == 2:  # the second shard
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(_parquet, "test_hook", crash)
        broken = cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET,
                     "--parquet-shard-size", "2rows", "--concurrency", "1")  # fmt: skip
        assert broken.code == 3, broken.err
        assert "No space left on device" in broken.err
        monkeypatch.setattr(_parquet, "test_hook", None)
        billed = api.submits
        again = cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET)
        assert again.code == 0, again.err
        assert shard_ids(out) == Counter({(f"i{k}", f"i{k}.png"): 1 for k in range(6)})
        assert staged(out) == []
        assert load(out, path=str(out)).num_rows == 6
        done_before = 6 - (api.submits - billed)
        assert done_before >= 2  # the first shard's rows were not generated again


@pytest.mark.slow
def test_kill_9_during_a_parquet_run_then_resume_gives_every_row_once(tmp_path: Path) -> None:
    """SIGKILL while shards are being written, then the same command: every item in exactly
    one shard, nothing staged left, and only items not yet durable are generated again.
    """
    env = {**os.environ, "AIHUBMIX_API_KEY": DEFAULT_API_KEY}
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(300)])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-o", str(out),
               "-m", "dall-e-3", "--sandbox", *PARQUET, "--parquet-shard-size", "20rows",
               "--concurrency", "4"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(shards(out)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert len(shards(out)) >= 3
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert shard_ids(out) == Counter({(f"i{k}", f"i{k}.png"): 1 for k in range(300)})
    assert staged(out) == []
    assert list((out / ".aihubmix").rglob("*.shard")) == []


def test_missing_pyarrow_is_refused_before_anything_is_sent(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pyarrow (the parquet extra) the run is refused at once, naming the extra."""
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # `import pyarrow` fails, as uninstalled
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    refused = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "out", *PARQUET)
    assert refused.code == 2
    assert "pip install 'aihubmix-async[parquet]'" in refused.err
    assert api.requests == 0


def test_regenerating_changed_items_in_shards_is_refused(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Shards are never rewritten: --on-change regenerate is refused (nothing sent), keep
    works.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    out = tmp_path / "out"
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET).code == 0
    refused = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, *PARQUET,
                  "--on-change", "regenerate")  # fmt: skip
    assert refused.code == 2
    assert "Parquet shards" in refused.err
    assert api.submits == 1
    kept = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, *PARQUET, "--on-change", "keep")
    assert kept.code == 0, kept.err
    assert sum(shard_ids(out).values()) == 1
    assert api.submits == 1


def test_shard_sizes_parse_in_megabytes_or_rows() -> None:
    assert _parquet.parse_shard_size("500MB") == _parquet.ShardTarget(megabytes=500.0)
    assert _parquet.parse_shard_size(" 2.5 mb ") == _parquet.ShardTarget(megabytes=2.5)
    assert _parquet.parse_shard_size("10000rows") == _parquet.ShardTarget(None, 10000)
    for bad in ("", "12", "0MB", "1.5rows", "-3rows", "3 GB"):
        with pytest.raises(ValueError, match="500MB or 10000rows"):
            _parquet.parse_shard_size(bad)
    megabyte = _parquet.ShardTarget(megabytes=1.0)
    assert not megabyte.reached(999_999, 10**6)
    assert megabyte.reached(1_000_000, 1)


def test_bad_shard_size_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli("batch", "p.txt", "-o", tmp_path, *PARQUET, "--parquet-shard-size", "lots")
    assert stopped.value.code == 2


def test_staged_images_a_sealed_shard_holds_are_removed_on_open(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """A crash between sealing a shard and deleting its staged images leaves them behind: the
    next open deletes them (and keeps the staged images no shard holds yet).
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n")
    out = tmp_path / "out"
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET).code == 0
    ((_, name),) = shard_ids(out)
    (out / STAGED_DIR / name).write_bytes(b"left behind")
    (out / STAGED_DIR / "other.png").write_bytes(b"not in a shard")
    again = cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET)
    assert again.code == 0, again.err
    assert staged(out) == ["other.png"]
    assert sum(shard_ids(out).values()) == 1


def test_a_row_whose_image_is_not_staged_yet_waits_for_a_later_shard(
    api: ThreadSandbox, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard that claims a row another writer has committed but not yet renamed into the
    staging area (its image still a temporary file of that writer) gives its rows back instead
    of failing; the last shard of the run takes them. Nothing is generated again.
    """
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(4)])
    out = tmp_path / "out"
    late: list[Path] = []

    def lag(name: str) -> None:
        if name != "claimed" or len(late) > 1:
            return
        if not late:  # the first shard: one of its images is "late", still a temporary file
            late.append(next((out / STAGED_DIR).iterdir()))
            hidden = out / ".aihubmix" / "tmp-2-1" / f"{late[0].name}.part"
            hidden.parent.mkdir()
            late[0].rename(hidden)
        else:  # and has arrived by the next one
            hidden = out / ".aihubmix" / "tmp-2-1" / f"{late[0].name}.part"
            hidden.rename(late[0])
            late.append(hidden)

    monkeypatch.setattr(_parquet, "test_hook", lag)
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", out, *PARQUET,
               "--parquet-shard-size", "1rows", "--concurrency", "1")  # fmt: skip
    assert done.code == 0, done.err
    assert shard_ids(out) == Counter({(f"i{k}", f"i{k}.png"): 1 for k in range(4)})
    assert staged(out) == []
    assert api.submits == 4


def test_a_shard_size_for_an_image_folder_is_refused(cli: Any, tmp_path: Path) -> None:
    """An image folder has no shards: the flag would be silently ignored, so it is refused
    before anything is staged or sent.
    """
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\n")
    ran = cli("batch", prompts, "-o", tmp_path / "out", "--parquet-shard-size", "5rows")
    assert ran.code == 2
    assert "--parquet-shard-size needs --output-format parquet" in ran.err
    assert not (tmp_path / "out").exists()
