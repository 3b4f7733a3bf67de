"""Ray Data against the sandbox in its own process, on a real local Ray (``num_cpus=2``).

One Ray session for the module (starting one takes seconds); every test reads what the server
saw and what a user reads back from the rows.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from aihubmix_async import InvalidRequestError

from ..support import decode_image
from .conftest import SandboxProcess, require

require("ray")

import ray  # noqa: E402
import ray.data  # noqa: E402

from aihubmix_async.ray import SCHEMA, ImageGenerator, generate_images  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),  # the first test starts Ray and its actors: slow on a busy machine
    # Ray's own modules warn about their own deprecated settings; ours stay errors.
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\b"),
]

PROMPTS = [{"id": f"p{i:02d}", "prompt": f"a lighthouse, study {i}"} for i in range(20)]


@pytest.fixture(scope="module")
def ray_session(sandbox_process: SandboxProcess) -> Iterator[Path]:
    """Ray with the key and endpoint in its workers' environment (set before it starts)."""
    saved = {k: os.environ.get(k) for k in ("AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL")}
    os.environ["AIHUBMIX_API_KEY"] = sandbox_process.api_key
    os.environ["AIHUBMIX_BASE_URL"] = sandbox_process.base_url
    try:
        context = ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
        )
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield Path(cast("Any", context).address_info["session_dir"])
    finally:
        ray.shutdown()


def rows_of(ds: ray.data.Dataset) -> list[dict[str, Any]]:
    return ds.take_all()


@pytest.fixture(scope="module")
def first_run(
    ray_session: Path, sandbox_process: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]], int]:
    """16 of the 20 prompts, three of them refused by the server, written once as Parquet."""
    before = sandbox_process.stats()["submits"]
    sandbox_process.fail(kind="status", status=400, message="scripted refusal", times=3)
    out = tmp_path_factory.mktemp("ray") / "run-1"
    ds = ray.data.from_items(PROMPTS[:16])
    generate_images(
        ds, model="gpt-image-1", actors=2, concurrency_per_actor=4, rpm=480, size="1024x1024"
    ).write_parquet(str(out))
    rows = ray.data.read_parquet(str(out)).take_all()
    return out, rows, sandbox_process.stats()["submits"] - before


def test_every_prompt_is_one_row_and_errors_are_rows(
    first_run: tuple[Path, list[dict[str, Any]], int],
) -> None:
    """A refused prompt is a row with its error; the job goes on; nothing is paid twice."""
    _, rows, submits = first_run
    assert submits == 16
    assert sorted(row["id"] for row in rows) == [f"p{i:02d}" for i in range(16)]
    failed = [row for row in rows if row["error_type"] is not None]
    assert len(failed) == 3
    for row in failed:
        assert row["error_type"] == "BadRequestError"
        assert "scripted refusal" in row["error_message"]
        assert row["request_id"]
        assert row["image"] is None
    for row in rows:
        if row["error_type"] is None:
            assert decode_image(row["image"]) == ("PNG", (1024, 1024))  # the size asked for
            assert row["mime_type"] == "image/png"
            assert row["request_id"]
            assert row["attempts"] == 1
            assert row["elapsed"] > 0
            assert row["error_message"] is None
        assert json.loads(row["params"]) == {"size": "1024x1024"}
        assert row["model"] == "gpt-image-1"
        assert row["prompt"] == next(p["prompt"] for p in PROMPTS if p["id"] == row["id"])


def test_the_key_wide_rpm_is_split_across_actors(
    first_run: tuple[Path, list[dict[str, Any]], int], sandbox_process: SandboxProcess
) -> None:
    """rpm=480 for the key holds across two actors (each runs at 240)."""
    times = sorted(sandbox_process.stats()["submit_times"])[-16:]
    # Each actor spaces its submits 0.25 s apart: 16 submits over 2 actors take >= 1.75 s. Two
    # actors at the full 480 each would finish in about half that. Slack for a loaded machine.
    assert times[-1] - times[0] >= 0.8 * (16 - 2) * 60 / 480


def test_skip_done_generates_exactly_the_missing_and_failed_ids(
    first_run: tuple[Path, list[dict[str, Any]], int], sandbox_process: SandboxProcess
) -> None:
    """The rerun over all 20 prompts submits the 4 never run and the 3 that failed, only."""
    out, rows, _ = first_run
    failed = {row["id"] for row in rows if row["error_type"] is not None}
    before = sandbox_process.stats()["submits"]
    again = rows_of(
        generate_images(
            ray.data.from_items(PROMPTS), model="gpt-image-1", actors=2,
            concurrency_per_actor=4, skip_done=out.parent, size="1024x1024",
        )
    )  # fmt: skip
    assert sandbox_process.stats()["submits"] - before == 7
    assert {row["id"] for row in again} == failed | {"p16", "p17", "p18", "p19"}
    assert all(row["error_type"] is None for row in again)


def test_bad_parameters_fail_before_any_actor_starts(
    ray_session: Path, sandbox_process: SandboxProcess
) -> None:
    """A typo in a parameter is a typed error on the driver; nothing is sent."""
    before = sandbox_process.stats()["submits"]
    with pytest.raises(InvalidRequestError, match="sise"):
        generate_images(ray.data.from_items(PROMPTS), model="gpt-image-1", sise="1024x1024")
    with pytest.raises(InvalidRequestError, match="actors"):
        generate_images(ray.data.from_items(PROMPTS), model="gpt-image-1", actors=0)
    assert sandbox_process.stats()["submits"] == before


def test_the_driver_refuses_what_every_actor_would(
    ray_session: Path, sandbox_process: SandboxProcess
) -> None:
    """Options every actor would refuse (each row an error, or the job aborted) and a missing
    prompt column fail on the driver, typed; nothing is sent.
    """
    before = sandbox_process.stats()["submits"]
    ds = ray.data.from_items(PROMPTS)
    with pytest.raises(InvalidRequestError, match="rpm"):
        generate_images(ds, model="gpt-image-1", rpm=float("inf"))
    with pytest.raises(InvalidRequestError, match="timeout"):
        generate_images(ds, model="gpt-image-1", client_options={"timeout": -1})
    with pytest.raises(TypeError, match="bogus"):
        generate_images(ds, model="gpt-image-1", client_options={"bogus": 1})
    with pytest.raises(InvalidRequestError, match="'prompt' column; it has id, text"):
        generate_images(ray.data.from_items([{"id": "a", "text": "a fox"}]), model="gpt-image-1")
    assert sandbox_process.stats()["submits"] == before


def test_skip_done_refuses_a_lazy_dataset_that_generates(
    first_run: tuple[Path, list[dict[str, Any]], int], sandbox_process: SandboxProcess
) -> None:
    """Reading an unwritten generate_images result runs it: every image paid for again."""
    before = sandbox_process.stats()["submits"]
    lazy = generate_images(ray.data.from_items(PROMPTS[:4]), model="gpt-image-1")
    with pytest.raises(InvalidRequestError, match="lazy dataset that generates"):
        generate_images(ray.data.from_items(PROMPTS[:4]), model="gpt-image-1", skip_done=lazy)
    assert sandbox_process.stats()["submits"] == before


def actor_pids(key: str) -> list[int]:
    """The UDF actors of this session: Ray names their processes; they carry the test's key."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:  # not a process, or gone, or not ours to read
            continue
        if b"MapBatches(ImageGenerator)" in command and key.encode() in environ:
            found.append(int(proc.name))
    return found


def test_an_actor_killed_mid_run_loses_no_row_and_repays_only_its_flight(
    ray_session: Path, sandbox_process: SandboxProcess, tmp_path: Path
) -> None:
    """An actor killed (SIGKILL) a third of the way in: Ray retries its batches on a new
    actor; every id ends as one row, and only the rows of the batches it held (up to 4 batches
    of ``concurrency_per_actor`` rows, done or in flight) are sent twice.
    """
    prompts = [{"id": f"k{i:02d}", "prompt": f"a harbour, study {i}"} for i in range(60)]
    sandbox_process.fail(kind="delay", delay=0.2, times=60)
    before = sandbox_process.stats()["submits"]
    killed: list[int] = []

    def kill_one() -> None:
        for _ in range(1200):  # bounded: gives up after about a minute
            if sandbox_process.stats()["submits"] - before >= 20:
                pids = actor_pids(sandbox_process.api_key)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                return
            threading.Event().wait(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    generate_images(
        ray.data.from_items(prompts), model="gpt-image-1", actors=2, concurrency_per_actor=4
    ).write_parquet(str(tmp_path / "run"))
    killer.join()
    rows = ray.data.read_parquet(str(tmp_path / "run")).take_all()
    assert killed  # the attack happened
    assert sorted(row["id"] for row in rows) == [p["id"] for p in prompts]
    assert all(row["error_type"] is None for row in rows)
    assert sandbox_process.stats()["submits"] - before <= 60 + 4 * 4  # one actor's batches


def test_the_key_never_travels_with_the_pipeline(
    ray_session: Path, sandbox_process: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline Ray ships to its workers holds no key: each actor reads its own env."""
    monkeypatch.setenv("AIHUBMIX_API_KEY", sandbox_process.api_key)
    ds = generate_images(ray.data.from_items(PROMPTS), model="gpt-image-1")
    shipped = ray.cloudpickle.dumps(ds)  # type: ignore[no-untyped-call]
    assert b"ImageGenerator" in shipped  # the guard: the UDF and its arguments are in there
    assert sandbox_process.api_key.encode() not in shipped
    with pytest.raises(Exception, match="AIHUBMIX_API_KEY"):
        ImageGenerator("gpt-image-1", client_options={"api_key": sandbox_process.api_key})


def test_output_schema_is_the_shared_columns() -> None:
    assert SCHEMA.names == [
        "id", "prompt", "model", "params", "image", "mime_type", "request_id", "usage",
        "cost", "attempts", "elapsed", "error_type", "error_message",
    ]  # fmt: skip


def load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = Path(__file__).parents[2] / "examples" / name
    monkeypatch.syspath_prepend(str(path.parent))  # the examples import their helper
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_runs_and_resumes_then_actors_close_their_clients(
    ray_session: Path,
    sandbox_process: SandboxProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """examples/ray_generate.py generates every image, and no actor of this session left an
    aiohttp session unclosed (last in the module: it stops Ray).
    """
    example = load_example("ray_generate.py", monkeypatch)
    assert example.run(tmp_path) == (24, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1"]
    ray.shutdown()  # actors shut down: each closes its client, or aiohttp complains in its log
    logs = [path.read_text(errors="replace") for path in ray_session.glob("logs/worker-*")]
    assert any("MapBatches(ImageGenerator)" in text for text in logs)  # the right logs
    assert not [text for text in logs if "Unclosed" in text]
    # Nothing Ray kept of this session (logs, object spill, its own records) holds the key.
    key = sandbox_process.api_key.encode()
    files = [path for path in ray_session.rglob("*") if path.is_file() and not path.is_symlink()]
    assert files
    assert not [path for path in files if key in path.read_bytes()]
