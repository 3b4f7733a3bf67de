"""Helpers for the journal tests: real SQLite, real files, the sandbox on loopback."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aihubmix_async import Client
from aihubmix_async._batch import ImageRequest, request_from_mapping
from aihubmix_async._journal import Committed, Journal, RunPlan, StageReport

Line = str | Mapping[str, Any]


class Staged:
    """Input lines (text prompts, or JSONL-like objects) with the run's -m/--param defaults."""

    def __init__(self, lines: Sequence[Line], model: str | None = "gpt-image-1",
                 params: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.lines = [
            (n, ImageRequest(prompt=x) if isinstance(x, str) else request_from_mapping(x))
            for n, x in enumerate(lines, start=1)
        ]
        self.model = model
        self.params = params or {}


def items(lines: Sequence[Line], model: str | None = "gpt-image-1",
          params: dict[str, Any] | None = None) -> Staged:  # fmt: skip
    return Staged(lines, model, params)


def stage(journal: Journal, staged: Staged) -> StageReport:
    stager = journal.stager(model=staged.model, params=staged.params)
    for line, request in staged.lines:
        stager.add(line, request)
    return stager.finish()


async def run(journal: Journal, client: Client, report: StageReport, *,
              concurrency: int = 4, **policy: Any) -> tuple[RunPlan, list[Committed]]:  # fmt: skip
    """start_run + the writer + a batch, as the CLI drives them; returns what was committed."""
    plan = journal.start_run(report, **policy)
    committed: list[Committed] = []
    async with journal.writer(on_durable=committed.append) as writer:
        async with client.batch(journal.pending(), concurrency=concurrency) as outcomes:
            async for outcome in outcomes:
                await writer.put(outcome)
    return plan, committed


def base(out: Path) -> Path:
    """The metadata file's folder: ``train/`` in the image-folder layout (the CLI's), else the
    folder itself (flat: the journal's default).
    """
    return out / "train" if (out / "train").is_dir() else out


def metadata(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (base(out) / "metadata.jsonl").read_text().splitlines()]


def errors(out: Path) -> list[dict[str, Any]]:
    path = out / "errors.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def images(out: Path) -> set[str]:
    """The images' paths from the metadata file's folder (bucket folders included)."""
    top = base(out)
    return {
        str(p.relative_to(top))
        for p in top.rglob("*")
        if p.suffix in (".png", ".jpg", ".webp", ".bin") and ".aihubmix" not in p.parts
    }


def temps(out: Path) -> list[str]:
    return [str(p) for p in (out / ".aihubmix").rglob("*.part")]


def assert_consistent(out: Path) -> list[dict[str, Any]]:
    """Files and rows agree: every image has exactly one metadata row and vice versa, no
    temporary file is left, and no id appears twice.
    """
    rows = metadata(out)
    names = [r["file_name"] for r in rows]
    assert len(names) == len(set(names))
    assert set(names) == images(out)
    assert temps(out) == []
    by_id: dict[str, set[int]] = {}
    for r in rows:
        indexes = by_id.setdefault(r["id"], set())
        assert r["image_index"] not in indexes
        indexes.add(r["image_index"])
    for r in rows:
        assert (base(out) / r["file_name"]).stat().st_size > 0
    return rows
