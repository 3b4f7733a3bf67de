"""``aihubmix-async gallery DIR`` on folders a hostile or careless hand put together.

Each test builds a real folder (bad bytes, symlinks, a FIFO, a decompression bomb, names the
file system barely takes) and runs the gallery as a user would: through the CLI's ``main``
or ``build_gallery``. The page itself is driven in Chromium in ``test_gallery_page.py``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aihubmix_async._cli import main
from aihubmix_async._gallery import build_gallery


def png(
    path: Path, size: tuple[int, int] = (8, 8), colour: tuple[int, int, int] = (200, 9, 9)
) -> Path:
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


def rows(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def data(folder: Path) -> dict[str, Any]:
    text = (folder / ".gallery" / "data.js").read_text(encoding="ascii")
    loaded: dict[str, Any] = json.loads(text.removeprefix("window.GALLERY = ").rstrip().rstrip(";"))
    return loaded


def column(folder: Path, name: str) -> list[Any]:
    loaded = data(folder)
    at = loaded["columns"].index(name)
    return [item[at] for item in loaded["items"]]


def thumbs(folder: Path) -> list[str]:
    root = folder / ".gallery" / "thumbs"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def gallery(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["gallery", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG file whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def gallery_process(folder: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    """``aihubmix-async gallery folder`` in a process of its own (after ``prefix``, e.g. a
    command dropping root's powers); a hang fails the test instead of blocking it.
    """
    code = (
        "from aihubmix_async._cli import main\n"
        f"raise SystemExit(main(['gallery', {str(folder)!r}]))"
    )
    try:
        return subprocess.run(
            [*prefix, sys.executable, "-c", code],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gallery on {folder} did not finish")


# --- bad bytes in the metadata ----------------------------------------------------------------


def test_a_line_of_invalid_utf8_is_skipped_not_fatal(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    (tmp_path / "metadata.jsonl").write_bytes(
        b'{"file_name": "a.png", "prompt": "first"}\n'
        b'{"file_name": "a.png", "prompt": "\xff\xfe broken"}\n'
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        + b"["
        * 100_000
        + b"\n"
        b'{"file_name": "a.png", "prompt": "last"}\n'
    )
    report = build_gallery(tmp_path)
    assert report.images == 2
    assert column(tmp_path, "prompt") == ["first", "last"]


def test_a_giant_line_is_skipped_and_long_texts_are_cut(tmp_path: Path) -> None:
    """A 40 MB line is no metadata line the SDK wrote: skipped without being held whole, and
    a 1 MB prompt reaches the page cut short (a card shows three lines of it anyway).
    """
    png(tmp_path / "a.png")
    with (tmp_path / "metadata.jsonl").open("w") as handle:
        handle.write(json.dumps({"file_name": "a.png", "prompt": "first"}) + "\n")
        handle.write('{"file_name": "a.png", "prompt": "' + "A" * 40_000_000 + '"}\n')
        handle.write(json.dumps({"file_name": "a.png", "prompt": "B" * 1_000_000}) + "\n")
        handle.write(json.dumps({"file_name": "a.png", "prompt": "last"}) + "\n")
    report = build_gallery(tmp_path)
    assert report.images == 3
    prompts = column(tmp_path, "prompt")
    assert [prompts[0], prompts[2]] == ["first", "last"]
    assert prompts[1].startswith("BBBB")
    assert len(prompts[1]) < 10_000
    assert report.note is not None
    assert "1 metadata line" in report.note
    assert (tmp_path / ".gallery" / "data.js").stat().st_size < 100_000


# --- files that are not what they claim ----------------------------------------------------------


def test_symlinks_out_of_the_folder_are_neither_shown_nor_thumbnailed(tmp_path: Path) -> None:
    secret = png(tmp_path / "secret.png", (64, 64), (1, 2, 3))
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "train" / "leak.png").symlink_to(secret)
    (run / "train" / "up").symlink_to(tmp_path)  # a folder link leading out
    png(run / "train" / "fine.png")
    (run / "train" / "alias.png").symlink_to(run / "train" / "fine.png")  # stays inside: fine
    rows(run / "train" / "metadata.jsonl", [
        {"file_name": "leak.png", "prompt": "leak"},
        {"file_name": "up/secret.png", "prompt": "through a folder link"},
        {"file_name": "fine.png", "prompt": "fine"},
        {"file_name": "alias.png", "prompt": "alias"},
    ])  # fmt: skip
    report = build_gallery(run)
    assert column(run, "prompt") == ["fine", "alias"]
    assert thumbs(run) == ["train/alias.png.jpg", "train/fine.png.jpg"]
    assert report.note is not None
    assert "2 rows skipped" in report.note

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "leak.png").symlink_to(secret)
    png(plain / "own.png")
    build_gallery(plain)
    assert column(plain, "file") == ["own.png"]
    assert thumbs(plain) == ["own.png.jpg"]


def test_a_fifo_named_like_an_image_is_never_opened(tmp_path: Path) -> None:
    """Opening a FIFO blocks until someone writes to it: the gallery used to hang forever."""
    png(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dir.png").mkdir()
    rows(tmp_path / "metadata.jsonl", [
        {"file_name": "pipe.png"}, {"file_name": "dir.png"}, {"file_name": "a.png"},
    ])  # fmt: skip
    done = gallery_process(tmp_path)
    assert done.returncode == 0, done.stderr
    assert column(tmp_path, "file") == ["a.png"]


def test_decompression_bombs_and_garbage_are_skipped_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (tmp_path / "big.png").write_bytes(png_claiming(10_000, 10_000))  # Pillow only warns
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (3, 4, 5)).save(good, "PNG")
    (tmp_path / "cut.png").write_bytes(good.getvalue()[:60])
    (tmp_path / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (tmp_path / "empty.jpg").write_bytes(b"")
    png(tmp_path / "ok.png")
    report = build_gallery(tmp_path)
    assert (report.images, report.thumbnails_made) == (6, 1)
    assert report.note is not None
    assert "5 images have no thumbnail" in report.note
    by_file = dict(zip(column(tmp_path, "file"), column(tmp_path, "thumb"), strict=True))
    assert by_file["ok.png"] == ".gallery/thumbs/ok.png.jpg"
    # The page shows no preview rather than make the browser decode the bomb.
    assert by_file["bomb.png"] == by_file["big.png"] == by_file["cut.png"] == ""


# --- names the file system barely takes -------------------------------------------------------


def test_names_that_are_not_utf8_reach_the_page_percent_encoded(tmp_path: Path) -> None:
    r"""A file name of raw bytes (``\xff``) and a metadata row naming it through a surrogate
    escape; a lone surrogate naming no possible file is skipped, not fatal.
    """
    raw = png(Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xff #?.png")))
    plain = build_gallery(tmp_path)
    assert (plain.images, plain.thumbnails_made) == (1, 1)
    assert column(tmp_path, "file") == ["%FF%20%23%3F.png"]
    assert column(tmp_path, "thumb") == [".gallery/thumbs/%FF%20%23%3F.png.jpg"]

    rows(tmp_path / "metadata.jsonl", [
        {"file_name": raw.name, "prompt": "raw bytes"}, {"file_name": "\ud800.png"},
    ])  # fmt: skip
    report = build_gallery(tmp_path)
    assert column(tmp_path, "prompt") == ["raw bytes"]
    assert report.images == 1


def test_names_too_long_or_clashing_for_a_thumbnail_still_show(tmp_path: Path) -> None:
    long_name = "x" * 251 + ".png"  # 255 bytes: its thumbnail's name would be too long
    png(tmp_path / long_name)
    png(tmp_path / "a.png")
    (tmp_path / "a.png.jpg").mkdir()  # its thumbnail folder would clash with a.png's thumbnail
    png(tmp_path / "a.png.jpg" / "b.png")
    rows(tmp_path / "metadata.jsonl", [
        {"file_name": long_name}, {"file_name": "a.png"}, {"file_name": "a.png.jpg/b.png"},
    ])  # fmt: skip
    report = build_gallery(tmp_path)
    assert report.images == 3
    assert report.thumbnails_made == 1  # a.png's or b.png's: one of the two clashing names
    assert report.note is not None
    assert "2 images have no thumbnail" in report.note
    assert column(tmp_path, "file") == [long_name, "a.png", "a.png.jpg/b.png"]


def test_a_temporary_name_held_by_another_process_does_not_stop_the_gallery(
    tmp_path: Path,
) -> None:
    """Two galleries at once on one folder used to share one temporary name per thumbnail
    (one renamed it away under the other: FileNotFoundError). A folder in the old fixed
    temporary name's place stands for the other process.
    """
    png(tmp_path / "a.png")
    (tmp_path / ".gallery" / "thumbs" / ".a.png.jpg.part").mkdir(parents=True)
    report = build_gallery(tmp_path)
    assert report.thumbnails_made == 1


@pytest.mark.slow
def test_three_galleries_at_once_on_one_folder_all_succeed(tmp_path: Path) -> None:
    for i in range(120):
        png(tmp_path / f"{i}.png", (32, 32), (i, 0, 0))
    code = (
        "from aihubmix_async._cli import main\n"
        f"raise SystemExit(main(['gallery', {str(tmp_path)!r}]))"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert len(thumbs(tmp_path)) == 120
    assert not list((tmp_path / ".gallery").rglob("*.part"))


# --- folders the gallery cannot use: exit 2 with a message -----------------------------------


def test_a_gallery_folder_that_is_a_symlink_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    png(run / "a.png")
    (run / ".gallery").symlink_to(elsewhere)
    code, _, err = gallery(capsys, run)
    assert code == 2
    assert ".gallery" in err
    assert "symlink" in err
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("case", ["missing", "file", "gallery-file", "metadata-dir"])
def test_folders_the_gallery_cannot_use_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    folder = tmp_path / "run"
    expected = {"missing": "no such folder", "file": "not a folder",
                "gallery-file": ".gallery", "metadata-dir": "metadata.jsonl"}[case]  # fmt: skip
    if case == "file":
        folder.write_text("x")
    elif case != "missing":
        folder.mkdir()
        png(folder / "a.png")
        if case == "gallery-file":
            (folder / ".gallery").write_text("x")
        else:
            (folder / "metadata.jsonl").mkdir()
    code, out, err = gallery(capsys, folder)
    assert code == 2, err
    assert out == ""
    assert expected in err
    assert "Traceback" not in err
    assert "resume" not in err  # the batch's advice, not the gallery's


def without_root_powers() -> list[str]:
    """A command prefix under which file modes bind (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a folder's mode does not bind")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_a_folder_without_permission_exits_2_with_a_message(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    png(folder / "a.png")
    folder.chmod(0)
    try:
        done = gallery_process(folder, *without_root_powers())
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert "Permission denied" in done.stderr
    assert "Traceback" not in done.stderr


def test_secrets_in_the_metadata_never_reach_the_page(tmp_path: Path) -> None:
    """The batch's metadata keeps parameters as sent, a signed image URL with credentials
    included; the page shows them scrubbed the way provenance is.
    """
    png(tmp_path / "a.png")
    signed = "https://user:hunter2@cdn.test/ref.png?X-Amz-Signature=s3cr3t"
    rows(tmp_path / "metadata.jsonl", [
        {"file_name": "a.png", "params": json.dumps({"image": signed, "quality": "low"})},
        {"file_name": "a.png", "params": {"image": [signed], "api_key": "sk-hidden"}},
    ])  # fmt: skip
    rows(tmp_path / "errors.jsonl", [{"id": "x", "params": {"mask": signed}}])
    build_gallery(tmp_path)
    page_data = (tmp_path / ".gallery" / "data.js").read_text()
    for secret in ("hunter2", "s3cr3t", "sk-hidden"):
        assert secret not in page_data
    assert [json.loads(p) for p in column(tmp_path, "params")] == [
        {"image": "https://cdn.test/ref.png", "quality": "low"},
        {"image": ["https://cdn.test/ref.png"]},
        {"mask": "https://cdn.test/ref.png"},
    ]


@pytest.mark.parametrize("case", ["metadata-to-dev-zero", "errors-fifo", "shard-fifo"])
def test_metadata_that_never_ends_is_refused_not_read_forever(tmp_path: Path, case: str) -> None:
    """``metadata.jsonl`` linked to /dev/zero (a line without end) or a FIFO (a read that
    waits for a writer) used to hang the gallery; now exit 2 naming the file.
    """
    png(tmp_path / "a.png")
    name = {"metadata-to-dev-zero": "metadata.jsonl", "errors-fifo": "errors.jsonl",
            "shard-fifo": "data/train-00000.parquet"}[case]  # fmt: skip
    (tmp_path / name).parent.mkdir(exist_ok=True)
    if case == "metadata-to-dev-zero":
        (tmp_path / name).symlink_to("/dev/zero")
    else:
        os.mkfifo(tmp_path / name)
    done = gallery_process(tmp_path)
    assert done.returncode == 2, done.stderr
    assert name.rpartition("/")[2] in done.stderr


def test_a_shard_that_is_no_parquet_is_skipped_with_a_note(tmp_path: Path) -> None:
    """A cut or foreign ``data/train-*.parquet`` raised pyarrow's ArrowInvalid as a traceback."""
    pytest.importorskip("pyarrow")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000.parquet").write_bytes(b"PAR1 cut short PAR1")
    (tmp_path / "data" / "train-00001.parquet").write_bytes(bytes(range(256)) * 20)
    rows(tmp_path / "errors.jsonl", [{"id": "x", "prompt": "q", "error": "RateLimitError"}])
    report = build_gallery(tmp_path)
    assert (report.images, report.failures) == (0, 1)
    assert report.note is not None
    assert "2 Parquet shard(s) skipped" in report.note


FULL_DISK = """
import os, sys
from PIL import Image
from aihubmix_async._cli import main
folder = sys.argv[1]
Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3)).save(folder + "/noise.png")
stat = os.statvfs(folder)
free = stat.f_bavail * stat.f_frsize
with open(folder + "/filler", "wb") as handle:  # leave room for the page, not a thumbnail
    handle.write(bytes(free - 24 * 1024))
raise SystemExit(main(["gallery", folder]))
"""


def test_a_full_disk_is_said_not_blamed_on_the_images(tmp_path: Path) -> None:
    """A thumbnail that cannot be written for want of space (or file descriptors) was counted
    as an image 'not decodable'; the gallery now stops with exit 2 and the system's reason.
    """
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        pytest.skip("needs unshare and mount for a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK)
    shell = (
        f"{mount} -t tmpfs -o size=512k tmpfs {disk} || exit 99\n"
        f'exec "{sys.executable}" {script} {disk}'
    )
    done = subprocess.run(
        [unshare, "-m", "sh", "-c", shell], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode == 99 or "unshare failed" in done.stderr:
        pytest.skip(f"no private tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "No space left on device" in done.stderr


def test_a_file_not_written_yet_is_no_undecodable_image(tmp_path: Path) -> None:
    """A run still writing names files that are not there yet: no preview, and no note
    blaming them.
    """
    png(tmp_path / "a.png")
    rows(tmp_path / "metadata.jsonl", [{"file_name": "a.png"}, {"file_name": "later.png"}])
    report = build_gallery(tmp_path)
    assert (report.images, report.thumbnails_made, report.note) == (2, 1, None)
    assert column(tmp_path, "thumb") == [".gallery/thumbs/a.png.jpg", ""]
