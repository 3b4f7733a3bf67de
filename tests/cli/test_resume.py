"""Reruns into a folder: changed items, collisions, failures, status (issue 9: 1, 2, 12)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .conftest import ThreadSandbox, errors, images, jsonl, metadata


def test_changed_model_is_refused_then_the_user_picks(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Finding 1: a rerun with another -m is refused (exit 2, nothing sent) and reported in a
    dry run; --on-change keep keeps the images, --on-change regenerate pays for new ones.
    """
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "a fox"},
                                           {"id": "b", "prompt": "a cat"}])  # fmt: skip
    out = tmp_path / "out"
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    refused = cli("batch", prompts, "-m", "gpt-image-1", "-o", out)
    assert refused.code == 2
    assert "2 item(s) already done in this folder have changed inputs" in refused.err
    assert "--on-change regenerate" in refused.err
    assert api.submits == 2
    checked = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, "--dry-run")
    assert checked.code == 1
    assert "2 changed; nothing was sent" in checked.out
    kept = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, "--on-change", "keep")
    assert kept.code == 0, kept.err
    assert "2 changed, kept as they are" in kept.err
    assert api.submits == 2
    assert {r["model"] for r in metadata(out)} == {"openai/dall-e-3"}
    again = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, "--on-change", "regenerate")
    assert again.code == 0, again.err
    assert "2 changed, regenerated" in again.err
    assert api.submits == 4
    assert {r["model"] for r in metadata(out)} == {"openai/gpt-image-1"}
    assert images(out) == ["a.png", "b.png"]


def test_inserted_line_generates_only_the_new_prompt(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Finding 1: a line inserted at the top of a text file is the only item generated."""
    prompts = tmp_path / "p.txt"
    out = tmp_path / "out"
    prompts.write_text("a fox\na cat\n")
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out).code == 0
    prompts.write_text("a new one\na fox\na cat\n")
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert done.code == 0, done.err
    assert "1 saved (1 images), 0 failed, 0 bad line(s), 2 already done" in done.out
    assert api.submits == 3
    assert sorted((r["line"], r["prompt"]) for r in metadata(out)) == [
        (1, "a new one"), (2, "a fox"), (3, "a cat")]  # fmt: skip


def test_colliding_ids_are_refused_up_front(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """Finding 2: the same id on two lines, or ids whose files would collide on a
    case-insensitive disk, are reported with line numbers in a dry run and refused by a run
    before anything is sent.
    """
    prompts = jsonl(tmp_path / "p.jsonl", [
        {"id": "x", "prompt": "one"}, {"id": "y", "prompt": "two"},
        {"id": "x", "prompt": "three"}, {"id": "Y", "prompt": "four"},
    ])  # fmt: skip
    out = tmp_path / "out"
    checked = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--dry-run")
    assert checked.code == 1
    assert "collision: id 'x' on lines 1, 3" in checked.err
    assert re.search(r"collision: file name '[yY]' on lines 2, 4", checked.err)
    refused = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert refused.code == 2
    assert "give those lines distinct ids" in refused.err
    assert api.requests == 0
    assert images(out) == []


def test_failed_items_are_retried_unless_told_otherwise(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Finding 12: --no-retry-failed leaves a failure alone; a plain rerun retries it and the
    fixed failure leaves errors.jsonl; status shows the states and the first failures.
    """
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "a fox"},
                                           {"id": "b", "prompt": "a cat"}])  # fmt: skip
    out = tmp_path / "out"
    api.fail("status", status=400, message="no foxes today")
    first = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--concurrency", "1")
    assert first.code == 1
    assert "1 item(s) failed (see errors.jsonl); a rerun of the same command retries" in first.err
    assert [e["message"] for e in errors(out)] == ["no foxes today"]
    status = cli("status", out)
    assert status.code == 0
    assert "0 pending, 0 submitted, 1 done, 1 failed" in status.out
    assert "line 1 (id 'a'): BadRequestError: no foxes today" in status.out
    left = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--no-retry-failed")
    assert "1 failed before, left alone (--no-retry-failed)" in left.err
    assert api.submits == 2
    retried = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert retried.code == 0, retried.err
    assert errors(out) == []
    assert "2 done, 0 failed" in cli("status", out).out


def test_status_of_a_folder_without_a_journal(cli: Any, tmp_path: Path) -> None:
    """`status` on a folder no run wrote says so (exit 2)."""
    done = cli("status", tmp_path)
    assert done.code == 2
    assert "has no run journal" in done.err


def test_unchanged_input_is_not_read_again(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """Rerunning the same command on the same file resumes from the journal without reading
    the file again (its failures retried); any change to the file or a setting reads it.
    """
    prompts = jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "a fox"},
                                           {"id": "b", "prompt": "a cat"}])  # fmt: skip
    out = tmp_path / "out"
    api.fail("status", status=400, message="no foxes today")
    assert cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--concurrency", "1").code == 1
    again = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert again.code == 0, again.err
    assert "unchanged since the last run: not re-read" in again.err
    assert "1 to generate: 0 new, 1 failed before, retried; 1 already done" in again.err
    assert sorted(r["id"] for r in metadata(out)) == ["a", "b"]
    with prompts.open("a") as handle:
        handle.write('{"id": "c", "prompt": "an owl"}\n')
    grown = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert "not re-read" not in grown.err
    assert "1 to generate: 1 new; 2 already done" in grown.err
    other = cli("batch", prompts, "-m", "gpt-image-1", "-o", out, "--on-change", "keep")
    assert "not re-read" not in other.err
    assert api.submits == 4
