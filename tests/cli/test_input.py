"""Reading the prompts: one pass, bad lines by number, never billed (issue 9: 4, 6, 8, 9, 13)."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from .conftest import ThreadSandbox, images, jsonl, metadata


def bad_line_numbers(err: str) -> list[int]:
    lines = err.splitlines()
    return [int(line.split()[1].rstrip(":")) for line in lines if line.startswith("line ")]


def test_undecodable_byte_is_a_bad_line_and_the_rest_is_generated(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Finding 8: one 0xFF byte in a text file is line 2's problem, not the run's."""
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(b"a fox\n\xff a broken line\na cat\n")
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "out")
    assert done.code == 1
    assert "line 2: not UTF-8: byte 0xff at column 1" in done.err
    assert "Traceback" not in done.err
    assert sorted(r["prompt"] for r in metadata(tmp_path / "out")) == ["a cat", "a fox"]
    assert api.submits == 2
    assert "2 saved (2 images), 0 failed, 1 bad line(s)" in done.out


def test_dry_run_names_bad_bytes_and_sends_nothing(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """Finding 8: --dry-run reports the undecodable line instead of crashing."""
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(b"a fox\n\n\xfe\xff\na cat\n")
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "out", "--dry-run")
    assert done.code == 1
    assert bad_line_numbers(done.err) == [3]
    assert "2 line(s) valid, 1 invalid" in done.out
    assert api.requests == 0
    assert not (tmp_path / "out").exists()


def test_oversized_csv_field_is_a_bad_line(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """Finding 8: a CSV field over 131,072 characters is reported with its line number."""
    table = tmp_path / "p.csv"
    table.write_text(f"id,prompt\nfox,a fox\nbig,{'x' * 140_000}\nowl,an owl\n")
    done = cli("batch", table, "-m", "dall-e-3", "-o", tmp_path / "out")
    assert done.code == 1
    assert bad_line_numbers(done.err) == [3]
    assert "field larger than field limit" in done.err
    assert images(tmp_path / "out") == ["fox.png", "owl.png"]


def test_undecodable_csv_byte_is_a_bad_line(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """Finding 8 for CSV: the byte is named, the line is skipped, the others are generated."""
    table = tmp_path / "p.csv"
    table.write_bytes(b"id,prompt\nfox,a fox\nbad,caf\xe9\nowl,an owl\n")
    done = cli("batch", table, "-m", "dall-e-3", "-o", tmp_path / "out")
    assert "line 3: not UTF-8: byte 0xe9" in done.err
    assert images(tmp_path / "out") == ["fox.png", "owl.png"]


@pytest.mark.parametrize("where", ["prompt", "id"])
def test_lone_surrogate_is_a_bad_line(
    api: ThreadSandbox, cli: Any, tmp_path: Path, where: str
) -> None:
    r"""Finding 4: ``\ud800`` in a JSONL prompt or id is a bad line, in a dry run and a run;
    the lines after it are generated and a rerun bills nothing again.
    """
    row = {"id": "x", "prompt": "a fox", where: "bad \ud800 text"}
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps(row) + "\n" + json.dumps({"id": "y", "prompt": "a cat"}) + "\n")
    out = tmp_path / "out"
    checked = cli("batch", prompts, "-m", "dall-e-3", "-o", out, "--dry-run")
    assert checked.code == 1
    assert bad_line_numbers(checked.err) == [1]
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert done.code == 1
    assert bad_line_numbers(done.err) == [1]
    assert "Traceback" not in done.err
    assert [r["id"] for r in metadata(out)] == ["y"]
    again = cli("batch", prompts, "-m", "dall-e-3", "-o", out)
    assert again.code == 1
    assert api.submits == 1


def test_prompts_from_a_pipe_are_read_once(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    r"""Finding 6: ``<(printf 'a\nb\n')`` (a pipe given as a path) is read once, not
    consumed by a counting pass.
    """
    read_end, write_end = os.pipe()
    os.write(write_end, b"a fox\na cat\n")
    os.close(write_end)
    try:
        done = cli("batch", f"/dev/fd/{read_end}", "-m", "dall-e-3", "-o", tmp_path / "out")
    finally:
        os.close(read_end)
    assert done.code == 0, done.err
    assert sorted(r["prompt"] for r in metadata(tmp_path / "out")) == ["a cat", "a fox"]


def test_prompts_from_a_named_fifo(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """Finding 6: a named FIFO does not hang: its lines are generated as they come."""
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as handle:
            handle.write('{"prompt": "a fox"}\n{"prompt": "a cat"}\n')

    writer = threading.Thread(target=feed)
    writer.start()
    done = cli("batch", fifo, "-m", "dall-e-3", "-o", tmp_path / "out", "--format", "jsonl")
    writer.join(10)
    assert done.code == 0, done.err
    assert len(metadata(tmp_path / "out")) == 2


def test_local_image_files_need_an_opt_in(
    api: ThreadSandbox, cli: Any, tmp_path: Path, png: bytes
) -> None:
    """Finding 13: a line naming a local file is refused (and the file not read) unless
    --allow-local-files; with it the file is uploaded.
    """
    picture = tmp_path / "private.png"
    picture.write_bytes(png)
    prompts = jsonl(tmp_path / "p.jsonl", [
        {"id": "edit", "prompt": "make it blue", "model": "qwen-image-edit", "image": str(picture)},
        {"id": "url", "prompt": "make it red", "model": "qwen-image-edit",
         "image": f"{api.base_url}/nowhere.png"},
    ])  # fmt: skip
    out = tmp_path / "out"
    refused = cli("batch", prompts, "-o", out, "--dry-run")
    assert refused.code == 1
    assert "line 1: 'image' names a local file" in refused.err
    assert "--allow-local-files" in refused.err
    done = cli("batch", prompts, "-o", out, "--allow-local-files", "--dry-run")
    assert done.code == 0, done.err
    ran = cli("batch", prompts, "-o", out, "--allow-local-files")
    assert [r["id"] for r in metadata(out)] == ["edit", "url"]
    assert ran.code == 0, ran.err


def test_bad_lines_are_counted_not_kept(cli: Any, tmp_path: Path) -> None:
    """Finding 9: many bad lines are counted; the first few are shown and memory stays flat."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "broken\n' * 50_000)
    tracemalloc.start()
    try:
        done = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "out", "--dry-run")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done.code == 1
    assert bad_line_numbers(done.err) == [1, 2, 3, 4, 5]
    assert "... and 49995 more bad line(s)" in done.err
    assert "0 line(s) valid, 50000 invalid" in done.out
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param("p.csv", "id,text\na,a fox\n", "needs a 'prompt' column", id="csv header"),
        pytest.param("p", "a fox\n", "a text prompts file needs a model", id="sniffed text"),
    ],
)
def test_whole_file_problems_are_refused(
    api: ThreadSandbox, cli: Any, tmp_path: Path, name: str, text: str, message: str
) -> None:
    """Problems of the whole file (a CSV without a prompt column, a text file sniffed without
    -m) refuse the run (exit 2) before anything is sent.
    """
    (tmp_path / name).write_text(text)
    done = cli("batch", tmp_path / name, "-o", tmp_path / "out")
    assert done.code == 2
    assert message in done.err
    assert api.requests == 0


def test_jsonl_lines_that_are_not_objects(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    """A JSON array, bad JSON or a task id on a line is that line's problem (the journal
    resumes tasks itself); an empty CSV is no work.
    """
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"prompt": "a fox"}\n["a", "list"]\n{"prompt": \n{"prompt": "x", "task_id": "t1"}\n'
    )
    done = cli("batch", prompts, "-m", "dall-e-3", "-o", tmp_path / "out", "--dry-run")
    assert "line 2: each JSONL line must be an object" in done.err
    assert "line 3: bad JSON: Expecting value at column 12" in done.err
    assert "line 4: 'task_id' is not a prompts-file field" in done.err
    empty = tmp_path / "e.csv"
    empty.write_text("")
    nothing = cli("batch", empty, "-m", "dall-e-3", "-o", tmp_path / "out2")
    assert nothing.code == 0, nothing.err
    assert "0 to generate" in nothing.err
