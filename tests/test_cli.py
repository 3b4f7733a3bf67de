"""The command line, run as a subprocess against a sandbox in its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async.sandbox import DEFAULT_API_KEY

from .conftest import decode_image


class SandboxProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aihubmix_async.sandbox", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        match = re.search(r"on (http://\S+)", self.proc.stdout.readline())
        assert match, "sandbox did not start"
        self.base_url = match.group(1)

    def stats(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(f"{self.base_url}/_sandbox/stats") as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)


@pytest.fixture
def server() -> Iterator[SandboxProcess]:
    running = SandboxProcess()
    yield running
    running.close()


@pytest.fixture
def slow_server() -> Iterator[SandboxProcess]:
    running = SandboxProcess("--latency", "0.01")
    yield running
    running.close()


def cli_env(server: SandboxProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIHUBMIX_")}
    env.update(AIHUBMIX_API_KEY=DEFAULT_API_KEY, AIHUBMIX_BASE_URL=server.base_url)
    return env


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "aihubmix_async", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
    )


def write_jsonl(path: Path, n: int, model: str = "gpt-image-1") -> Path:
    rows = (
        json.dumps({"id": f"item-{i}", "prompt": f"prompt {i}", "model": model}) for i in range(n)
    )
    path.write_text("\n".join(rows) + "\n")
    return path


def metadata(out: Path) -> list[dict[str, Any]]:
    text = (out / "train" / "metadata.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def image_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "train").rglob("*") if p.suffix in (".png", ".jpg", ".webp"))


def test_500_line_jsonl_gives_500_images(server: SandboxProcess, tmp_path: Path) -> None:
    """A 500-line JSONL run writes 500 images and 500 metadata lines, and exits 0."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", 500)
    out = tmp_path / "out"
    done = cli("batch", str(prompts), "-o", str(out), "--concurrency", "16", env=cli_env(server))
    assert done.returncode == 0, done.stderr
    rows = metadata(out)
    assert len(rows) == 500
    assert {r["id"] for r in rows} == {f"item-{i}" for i in range(500)}
    files = image_files(out)
    assert len(files) == 500
    assert {r["file_name"] for r in rows} == {f"00000/{p.name}" for p in files}
    assert decode_image(files[0].read_bytes())[0] == "PNG"
    assert all(r["request_id"] for r in rows)
    assert "500 saved (500 images), 0 failed" in done.stdout
    assert "[aihubmix]" in done.stderr  # plain progress lines when not a terminal


def test_kill_9_then_rerun_ends_with_every_item_once(
    slow_server: SandboxProcess, tmp_path: Path
) -> None:
    """SIGKILL halfway, then the same command: every item exactly once, no partial files."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", 500)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-o", str(out),
               "--concurrency", "4"]  # fmt: skip
    proc = subprocess.Popen(command, env=cli_env(slow_server), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        meta = out / "train" / "metadata.jsonl"
        if meta.exists() and meta.read_text().count("\n") >= 150:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(metadata(out))
    assert 150 <= killed_at < 500

    rerun = cli("batch", str(prompts), "-o", str(out), "--concurrency", "4",
                env=cli_env(slow_server))  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    match = re.search(r"(\d+) already done", rerun.stdout)
    assert match, rerun.stdout
    # Committed but not yet listed: one group, at most the backlog (4) plus the outcome put()
    # queues before it waits for room.
    assert killed_at <= int(match.group(1)) <= killed_at + 5
    rows = metadata(out)
    counts = Counter(r["id"] for r in rows)
    assert len(counts) == 500
    assert max(counts.values()) == 1
    assert len(image_files(out)) == 500
    assert list(out.rglob("*.part")) == []
    # What was billed but not yet durable at the kill is generated again; the bound on that
    # is the kill -9 loop's (tests/journal), which counts it per kill.
    assert slow_server.stats()["submits"] >= 500


def test_shards_share_one_folder(server: SandboxProcess, tmp_path: Path) -> None:
    """Finding 5: --shard 0/3, 1/3, 2/3 running at once into ONE folder cover every item
    exactly once, each billed once.
    """
    prompts = write_jsonl(tmp_path / "prompts.jsonl", 150)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-o", str(out)]
    env = cli_env(server)
    pipes: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    procs = [subprocess.Popen([*command, "--shard", f"{i}/3"], env=env, text=True, **pipes)
             for i in range(3)]  # fmt: skip
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    counts = Counter(r["id"] for r in metadata(out))
    assert len(counts) == 150
    assert max(counts.values()) == 1
    assert len(image_files(out)) == 150
    assert server.stats()["submits"] == 150


def test_second_writer_is_refused_at_once(tmp_path: Path) -> None:
    """Finding 5: a second run on a folder being written exits 4 at once, naming the folder
    and the holder's pid, and touches nothing: the first run, stopped later, has every item
    it paid for saved exactly once.
    """
    slow_server = SandboxProcess("--latency", "0.05")
    prompts = write_jsonl(tmp_path / "prompts.jsonl", 4000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-o", str(out),
               "--concurrency", "2"]  # fmt: skip
    first = subprocess.Popen(command, env=cli_env(slow_server), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and slow_server.stats()["submits"] < 5:
            time.sleep(0.02)
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        for source in (prompts, empty):
            second = cli("batch", str(source), "-o", str(out), env=cli_env(slow_server))
            assert second.returncode == 4, second.stderr
            assert "in use by another aihubmix-async process" in second.stderr
            assert f"pid {first.pid}" in second.stderr
        assert first.poll() is None  # the first run was writing all along
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 143, err
        counts = Counter(r["id"] for r in metadata(out))
        assert max(counts.values()) == 1
        assert sum(counts.values()) == slow_server.stats()["submits"]  # nothing lost or twice
    finally:
        first.kill()
        first.wait()
        slow_server.close()


def test_dry_run_reports_bad_lines_and_sends_nothing(
    server: SandboxProcess, tmp_path: Path
) -> None:
    """--dry-run names every bad line by number (bad JSON, model, parameter) and sends nothing."""
    lines = [
        '{"prompt": "fine", "model": "gpt-image-1"}',
        '{"prompt": "fine too", "model": "imagen-3.0-generate-002", "numberOfImages": 2}',
        '{"prompt": "broken json", ',
        "",
        '{"prompt": "who", "model": "gpt-imagine-9"}',
        '{"prompt": "bad size", "model": "gpt-image-1", "size": "3x3"}',
        '{"model": "gpt-image-1"}',
        '["not", "an", "object"]',
    ]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(lines) + "\n")
    done = cli("batch", str(prompts), "-o", str(tmp_path / "out"), "--dry-run", env=cli_env(server))
    assert done.returncode == 1
    reported = sorted(int(n) for n in re.findall(r"^line (\d+):", done.stderr, re.MULTILINE))
    assert reported == [3, 5, 6, 7, 8]
    assert "gpt-image-1" in done.stderr  # the nearest model name is suggested
    assert "2 line(s) valid, 5 invalid" in done.stdout
    assert server.stats()["requests"] == 1  # only this stats call: nothing was sent
    assert not (tmp_path / "out").exists()


def test_text_from_stdin_and_csv(server: SandboxProcess, tmp_path: Path) -> None:
    """Plain text on standard input and a CSV with a prompt column both work."""
    out = tmp_path / "out"
    done = cli("batch", "-", "-m", "dall-e-3", "-o", str(out), env=cli_env(server),
               stdin="a cat\n\na dog\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(r["prompt"] for r in metadata(out)) == ["a cat", "a dog"]
    table = tmp_path / "p.csv"
    table.write_text('id,prompt,params\nfox,a fox,"{""numberOfImages"": 2}"\nowl,an owl,\n')
    out2 = tmp_path / "out2"
    done = cli("batch", str(table), "-m", "imagen-3.0-generate-002", "-o", str(out2),
               env=cli_env(server))  # fmt: skip
    assert done.returncode == 0, done.stderr
    # fox asked for 2 images; owl gets one (numberOfImages: 1 is sent, not the server's 4).
    names = sorted(p.name for p in image_files(out2))
    assert names == ["fox.png", "fox~1.png", "owl.png"]


def script_fault(server: SandboxProcess, **fault: Any) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{server.base_url}/_sandbox/faults", data=json.dumps(fault).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["scripted"] == 1


def test_failures_are_current_and_a_rerun_retries_them(
    server: SandboxProcess, tmp_path: Path
) -> None:
    """Finding 12: a failed item is in errors.jsonl with its typed error and the summary says
    a rerun retries it; the rerun that fixes it leaves errors.jsonl empty.
    """
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "x", "prompt": "x"}\n{"id": "y", "prompt": "y"}\n')
    out = tmp_path / "out"
    script_fault(server, kind="status", status=400, message="bad prompt, says the server")
    done = cli("batch", str(prompts), "-m", "dall-e-3", "-o", str(out), "--concurrency", "1",
               env=cli_env(server))  # fmt: skip
    assert done.returncode == 1
    assert "a rerun of the same command retries them" in done.stderr
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1
    assert errors[0]["error"] == "BadRequestError"
    assert errors[0]["message"] == "bad prompt, says the server"
    assert errors[0]["status_code"] == 400
    assert len(metadata(out)) == 1
    again = cli("batch", str(prompts), "-m", "dall-e-3", "-o", str(out), env=cli_env(server))
    assert again.returncode == 0, again.stderr
    assert "1 failed before, retried" in again.stderr
    assert (out / "errors.jsonl").read_text() == ""
    assert sorted(r["id"] for r in metadata(out)) == ["x", "y"]


def test_generate_models_and_demo(tmp_path: Path) -> None:
    """`generate` writes and prints its files; `models` lists parameters; `demo` fills a dataset."""
    done = cli("generate", "-m", "flux-kontext-max", "a fox", "-o", str(tmp_path), "--sandbox",
               "--param", "seed=7")  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.strip())
    assert written.exists()
    assert decode_image(written.read_bytes())[0] == "JPEG"
    listing = cli("models")
    assert "opanai/gpt-image-1" in listing.stdout
    assert "numberOfImages: 1..4" in listing.stdout
    demo = cli("demo", "-o", str(tmp_path / "demo"), "--repeat", "1")
    assert demo.returncode == 0, demo.stderr
    assert len(metadata(tmp_path / "demo")) >= 8


def test_output_loads_as_huggingface_imagefolder(
    server: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output folder loads with datasets' imagefolder builder (skipped without datasets)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # never reach past loopback
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    datasets = pytest.importorskip("datasets")
    prompts = write_jsonl(tmp_path / "prompts.jsonl", 12)
    out = tmp_path / "out"
    assert cli("batch", str(prompts), "-o", str(out), env=cli_env(server)).returncode == 0
    dataset = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert dataset.num_rows == 12
    assert set(dataset.column_names) >= {"image", "prompt", "model", "request_id"}


def test_sandbox_command_takes_the_sandbox_options() -> None:
    """`aihubmix-async sandbox` serves the emulator with the same options as the module."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aihubmix_async", "sandbox", "--port", "0", "--latency", "0.01"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"on (http://\S+)", proc.stdout.readline())
        assert match
        import urllib.request

        with urllib.request.urlopen(f"{match.group(1)}/_sandbox/stats") as response:
            assert json.loads(response.read())["requests"] == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
