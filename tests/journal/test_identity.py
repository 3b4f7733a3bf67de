"""Item identity, change detection and collisions (issue 9, findings 1 and 2)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import Client
from aihubmix_async._journal import ChangedItemsError, InputConflictError, Journal
from aihubmix_async.sandbox import Sandbox

from .conftest import Line, assert_consistent, items, run, stage


async def test_inserted_line_keeps_every_items_identity(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """Finding 1: a line inserted at the top is generated; the others stay done, and every
    metadata row still shows its own prompt.
    """
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        await run(journal, client, stage(journal, items(["a fox", "a cat"])))
    with Journal.open(out) as journal:
        report = stage(journal, items(["a new one", "a fox", "a cat"]))
        assert (report.new, report.done, report.changed) == (1, 2, 0)
        _, committed = await run(journal, client, report)
    assert [c.outcome.request.prompt for c in committed] == ["a new one"]
    assert sandbox.stats.submits == 3
    rows = assert_consistent(out)
    assert sorted((r["line"], r["prompt"]) for r in rows) == [
        (1, "a new one"), (2, "a fox"), (3, "a cat")]  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"model": "gpt-image-1"}, {"model": "dall-e-3"}, id="other -m"),
        pytest.param({"params": {}}, {"params": {"quality": "low"}}, id="other --param"),
    ],
)
async def test_changed_defaults_are_refused_before_billing(
    tmp_path: Path, sandbox: Sandbox, client: Client, first: dict[str, Any],
    second: dict[str, Any],
) -> None:  # fmt: skip
    """Finding 1: rerunning with another -m or --param does not report the old images as
    done: the changed items are counted, refused by default (nothing billed), and the user
    picks: regenerate (new images, metadata matches) or keep (nothing happens).
    """
    out = tmp_path / "out"
    prompts = ["a fox", "a cat", "a fox"]
    with Journal.open(out) as journal:
        await run(journal, client, stage(journal, items(prompts, **first)))
    billed = sandbox.stats.submits
    with Journal.open(out) as journal:
        report = stage(journal, items(prompts, **second))
        assert (report.changed, report.done, report.new) == (3, 0, 0)
        assert [c.line for c in report.changed_examples] == [1, 2, 3]
        with pytest.raises(ChangedItemsError, match=r"3 item.*--on-change regenerate"):
            journal.start_run(report)
        plan, committed = await run(journal, client, report, on_change="keep")
        assert (plan.kept_changed, plan.to_run, committed) == (3, 0, [])
    assert sandbox.stats.submits == billed
    with Journal.open(out) as journal:
        report = stage(journal, items(prompts, **second))
        plan, committed = await run(journal, client, report, on_change="regenerate")
        assert (plan.regenerated, len(committed)) == (3, 3)
    assert sandbox.stats.submits == billed + 3
    rows = assert_consistent(out)
    model = second.get("model")
    if model == "dall-e-3":
        assert {r["model"] for r in rows} == {"openai/dall-e-3"}
    else:
        assert {r["params"] for r in rows} == {'{"quality":"low"}'}
    with Journal.open(out) as journal:  # and now everything is done, nothing changed
        report = stage(journal, items(prompts, **second))
        assert (report.done, report.changed, report.new) == (3, 0, 0)


async def test_repeated_lines_are_distinct_items(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """Identical lines are each generated once (ids -2, -3), and stay so on a rerun."""
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        _, committed = await run(journal, client, stage(journal, items(["same"] * 3)))
    ids = sorted(c.id for c in committed)
    assert ids[1:] == [f"{ids[0]}-2", f"{ids[0]}-3"]
    with Journal.open(out) as journal:
        assert stage(journal, items(["other", "same", "same", "same"])).new == 1
    assert len(assert_consistent(out)) == 3


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([{"id": "dup", "prompt": "a"}, {"prompt": "b"}, {"id": "dup", "prompt": "c"}],
                     r"id 'dup' on lines 1, 3", id="same explicit id"),
        pytest.param([{"id": "Cat", "prompt": "a"}, {"id": "cat", "prompt": "b"}],
                     r"file name 'Cat' on lines 1, 2", id="ids differing in case"),
        pytest.param([{"id": "a b", "prompt": "a"}, {"id": "a_b-7dbde935", "prompt": "b"}],
                     r"file name .* on lines 1, 2", id="sanitised id equals another id"),
    ],
)  # fmt: skip
async def test_colliding_ids_are_refused_with_line_numbers(
    tmp_path: Path, sandbox: Sandbox, lines: list[dict[str, object]], expected: str
) -> None:
    """Finding 2: ids that would share an item or a file are refused before anything is sent,
    with their line numbers, in a dry run (read-only journal) and in a run.
    """
    with Journal.open(tmp_path / "dry", read_only=True) as journal:
        report = stage(journal, items(lines))
        assert report.conflict_count == 1
        assert str(report.conflicts[0]).startswith(expected.split(" ", maxsplit=1)[0])
    assert not (tmp_path / "dry").exists()
    with Journal.open(tmp_path / "out") as journal:
        report = stage(journal, items(lines))
        with pytest.raises(InputConflictError, match=expected):
            journal.start_run(report)
    assert sandbox.stats.submits == 0


async def test_explicit_id_next_to_derived_id_is_refused(tmp_path: Path, sandbox: Sandbox) -> None:
    """Finding 2: an explicit id equal to the id another line gets by default."""
    with Journal.open(tmp_path / "dry", read_only=True) as journal:
        derived = stage(journal, items([{"prompt": "a fox"}]))
        assert derived.new == 1
        default_id = journal.db.execute("SELECT stem_key FROM staged").fetchone()[0]
        report = stage(journal, items([{"prompt": "a fox"}, {"id": default_id, "prompt": "b"}]))
    assert report.conflict_count == 1
    assert report.conflicts[0].lines == (1, 2)


async def test_x_1_and_the_second_image_of_x_never_collide(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """Finding 2: id ``x-1`` next to item ``x`` with n=2: three images, three files, each row
    pointing at its own prompt's image.
    """
    lines: list[Line] = [{"id": "x", "prompt": "two", "n": 2}, {"id": "x-1", "prompt": "one"}]
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        report = stage(journal, items(lines))
        assert report.conflict_count == 0
        await run(journal, client, report)
    rows = assert_consistent(out)
    assert sorted((r["file_name"], r["prompt"]) for r in rows) == [
        ("x-1.png", "one"), ("x.png", "two"), ("x~1.png", "two")]  # fmt: skip
    assert sandbox.stats.submits == 2


async def test_new_id_whose_files_would_overwrite_an_earlier_item_is_refused(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    """An item of an earlier run that is not in this input keeps its files: a new id whose
    file names would be the same (case folded) is refused, naming both.
    """
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        await run(journal, client, stage(journal, items([{"id": "Cat", "prompt": "a"}])))
    with Journal.open(out) as journal:
        report = stage(journal, items([{"id": "cat", "prompt": "b"}]))
        with pytest.raises(InputConflictError, match="would overwrite those of item 'Cat'"):
            journal.start_run(report)
    assert sandbox.stats.submits == 1


def test_bare_identity_is_what_staging_computes(tmp_path: Path) -> None:
    """The helper benchmarks use to build journals directly agrees with staging."""
    from aihubmix_async._journal_stage import bare_identity

    with Journal.open(tmp_path) as journal:
        journal.start_run(stage(journal, items(["a fox"], params={"quality": "low"})))
        row = journal.db.execute("SELECT id, fp, model, params FROM items").fetchone()
    assert bare_identity("a fox", "gpt-image-1", {"quality": "low"}) == row


@pytest.mark.parametrize("form", ["data URI", "local file"])
def test_an_image_input_that_changes_makes_its_item_changed(tmp_path: Path, form: str) -> None:
    """Fingerprints cover image inputs: the same line with other image bytes (inline, or a
    local file rewritten) is a changed item, the same bytes an unchanged one.
    """
    from aihubmix_async.sandbox._images import png_of_size

    image = tmp_path / "in.png"

    def line(size: int) -> dict[str, Any]:
        data = png_of_size(size)
        image.write_bytes(data)
        if form == "data URI":
            value = "data:image/png;base64," + base64.b64encode(data).decode()
        else:
            value = str(image)
        return {"id": "edit", "prompt": "make it blue", "input_image": value}

    out = tmp_path / "out"
    with Journal.open(out) as journal:
        journal.start_run(stage(journal, items([line(2000)], model="flux-kontext-max")))
    with Journal.open(out) as journal:
        same = stage(journal, items([line(2000)], model="flux-kontext-max"))
        if form == "local file":
            os.utime(image, ns=(0, 0))  # another mtime, the same bytes: not a change
            touched = stage(journal, items([{**line(2000), "input_image": str(image)}],
                                           model="flux-kontext-max"))  # fmt: skip
            assert (touched.pending, touched.changed_unfinished) == (1, 0)
        other = stage(journal, items([line(3000)], model="flux-kontext-max"))
    assert (same.pending, same.changed_unfinished) == (1, 0)
    assert (other.pending, other.changed_unfinished) == (0, 1)
