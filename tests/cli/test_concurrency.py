"""``batch --concurrency auto``: the CLI's way to the adaptive limit (issue 11, item 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aihubmix_async.sandbox import DEFAULT_API_KEY

from .conftest import ThreadSandbox, jsonl, metadata


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A sandbox that lets the key have 4 requests in flight and answers 429 beyond that."""
    running = ThreadSandbox(key_concurrency=4, latency=0.02)
    monkeypatch.setenv("AIHUBMIX_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("AIHUBMIX_BASE_URL", running.base_url)
    yield running
    running.close()


def test_auto_concurrency_saves_every_item_and_stays_near_the_limit(
    limited: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Every item is saved once; the server saw far fewer refusals than a fixed width of the
    same ceiling provokes (measured in the same test, on the same server).
    """
    rows = [{"id": f"i{k}", "prompt": f"p{k}"} for k in range(60)]
    prompts = jsonl(tmp_path / "p.jsonl", rows)
    auto = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "auto",
               "--concurrency", "auto", "--max-concurrency", "32")  # fmt: skip
    assert auto.code == 0, auto.err
    assert sorted(r["id"] for r in metadata(tmp_path / "auto")) == sorted(r["id"] for r in rows)
    assert limited.sandbox is not None
    refused_auto = limited.sandbox.stats.limited
    fixed = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "fixed",
                "--concurrency", "32")  # fmt: skip
    refused_fixed = limited.sandbox.stats.limited - refused_auto
    assert fixed.code in (0, 1)  # a fixed flood may exhaust some items' retries
    # "Far fewer", with a margin for a busy machine: measured 4-10x on an idle one, 3.8x at
    # a load average of 40 (a slow client sends its fixed flood less at once).
    assert refused_fixed >= 2 * max(refused_auto, 1), (refused_fixed, refused_auto)


def test_concurrency_that_is_not_a_number_or_auto_is_refused(
    limited: ThreadSandbox, cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}])
    with pytest.raises(SystemExit) as stopped:
        cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "o", "--concurrency", "fast")
    assert stopped.value.code == 2
    assert "a whole number or 'auto'" in capsys.readouterr().err
    for value in ("0", "-1"):
        done = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "o",
                   "--concurrency", value)  # fmt: skip
        assert done.code == 2
        assert "--concurrency must be >= 1" in done.err
    assert limited.requests == 0
