"""The journal's layouts: recovery finishes a crashed commit into its bucket folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aihubmix_async import Client, _journal_files
from aihubmix_async._journal import Journal, JournalWriteError

from .conftest import Line, items, run, stage, temps
from .test_commit import crash_at


def bucketed(out: Path) -> dict[str, list[str]]:
    return {
        b.name: sorted(p.name for p in b.iterdir())
        for b in sorted((out / "train").iterdir())
        if b.is_dir()
    }


async def test_crash_after_the_commit_is_finished_into_the_bucket_folders(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows committed with bucket paths whose files were still under temporary names (a crash
    before the renames, new bucket folders not yet made) are renamed into their buckets by the
    recovery of the next open; every metadata row then names an image that is there.
    """
    monkeypatch.setattr(_journal_files, "BUCKET_SIZE", 2)
    out = tmp_path / "out"
    lines: list[Line] = [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(5)]
    with Journal.open(out, layout="imagefolder") as journal, crash_at("committed"):
        with pytest.raises(JournalWriteError):
            await run(journal, client, stage(journal, items(lines)), concurrency=5)
    assert temps(out)
    with Journal.open(out) as journal:  # the folder's own layout, recovered
        assert journal.layout.name == "imagefolder"
        report = stage(journal, items(lines))
        await run(journal, client, report)
    assert temps(out) == []
    folders = bucketed(out)
    assert all(len(names) <= 2 for names in folders.values())
    assert sorted(n for names in folders.values() for n in names) == [f"i{k}.png" for k in range(5)]
    rows = [json.loads(x) for x in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [f"i{k}" for k in range(5)]
    assert all((out / "train" / r["file_name"]).is_file() for r in rows)
