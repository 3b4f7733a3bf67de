"""``aihubmix-async gallery DIR``: a contact sheet of a real run, looked at in headless Chromium.

Chromium (Debian's ``chromium``; ``.ci/run`` installs it) opens the page from ``file://`` with
host resolution mapped to nothing, takes a screenshot, and the test finds the sandbox's
colours (one pair per prompt and seed) among its pixels.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aihubmix_async._gallery import build_gallery
from aihubmix_async.sandbox._images import colours

from .conftest import ThreadSandbox, jsonl, metadata, metadata_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium(tmp_path: Path) -> Any:
    """``chromium(url, *flags)``: run headless Chromium on a page; returns its stdout."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")

    def run(url: str, *flags: str) -> str:
        profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}",
            # Nothing may leave the machine: every host name resolves to nothing.
            "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,1000",
            "--virtual-time-budget=10000", *flags, url,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)
        return done.stdout

    return run


def run_folder(api: ThreadSandbox, cli: Any, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A real batch: five images and one moderated failure."""
    rows = [{"id": f"fox-{i}", "prompt": f"a fox, take {i}", "seed": i} for i in range(5)]
    rows.append({"id": "kite", "prompt": "a kite", "model": "gpt-image-1"})
    api.fail("moderated", model="gpt-image")
    out = tmp_path / "run"
    ran = cli("batch", jsonl(tmp_path / "in.jsonl", rows), "-m", "ideogram/V3", "-o", out)
    assert ran.code == 1
    assert f"contact sheet: aihubmix-async gallery {out}" in ran.out
    return out, rows


def colour_counts(png: bytes) -> Counter[tuple[int, int, int]]:
    with Image.open(io.BytesIO(png)) as shot:
        raw = shot.convert("RGB").tobytes()
    return Counter(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))


def seen(counts: Counter[tuple[int, int, int]], colour: tuple[int, int, int]) -> int:
    """Pixels within a JPEG thumbnail's error of ``colour``."""
    return sum(
        n for c, n in counts.items() if all(abs(a - b) <= 6 for a, b in zip(c, colour, strict=True))
    )


@pytest.mark.slow
def test_the_gallery_shows_thumbnails_and_failures_in_chromium(
    api: ThreadSandbox, cli: Any, tmp_path: Path, chromium: Any
) -> None:
    out, rows = run_folder(api, cli, tmp_path)
    ran = cli("gallery", out)
    assert ran.code == 0, ran.err
    page = out / "gallery.html"
    assert ran.out.startswith(page.resolve().as_uri())
    assert "5 images, 1 failed" in ran.out
    thumbs_dir = out / ".gallery" / "thumbs"
    thumbs = sorted(p.relative_to(thumbs_dir).as_posix() for p in thumbs_dir.rglob("*.jpg"))
    assert thumbs == sorted(f"train/{m['file_name']}.jpg" for m in metadata(out))

    html = page.read_text()
    assert "http://" not in html
    assert "https://" not in html  # nothing to fetch: the page and its data are local files
    shot = tmp_path / "shot.png"
    chromium(page.resolve().as_uri(), f"--screenshot={shot}")
    counts = colour_counts(shot.read_bytes())
    for row in rows[:5]:
        top, bottom = colours(row["prompt"], row["seed"])
        assert seen(counts, top) > 2000, (row, top)
        assert seen(counts, bottom) > 2000, (row, bottom)

    dom = chromium(page.resolve().as_uri(), "--dump-dom")
    assert 'data-rendered="6"' in dom
    assert "ContentPolicyError" in dom  # the failure's error type, on its card
    assert "6 of 6 items, 1 failed" in dom
    failed_only = chromium(page.resolve().as_uri() + "?status=failed", "--dump-dom")
    assert 'data-rendered="1"' in failed_only
    assert "a kite" in failed_only
    assert "a fox, take 0" not in failed_only
    by_model = chromium(page.resolve().as_uri() + "?model=ideogram%2FV3", "--dump-dom")
    assert 'data-rendered="5"' in by_model


def test_thumbnails_are_made_once(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    out, _ = run_folder(api, cli, tmp_path)
    first = build_gallery(out)
    assert (first.images, first.failures, first.thumbnails_made) == (5, 1, 5)
    again = build_gallery(out)
    assert again.thumbnails_made == 0
    newer = metadata_path(out).parent / metadata(out)[0]["file_name"]  # in train/00000/
    os.utime(newer, ns=(2**62, 2**62))  # a newer image: only its thumbnail again
    assert build_gallery(out).thumbnails_made == 1


def test_without_thumbnails_the_page_shows_the_originals(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    out, _ = run_folder(api, cli, tmp_path)
    assert cli("gallery", out, "--no-thumbnails").code == 0
    data = load_data(out)
    files = [item[0] for item in data["items"] if item[0]]
    assert [item[1] for item in data["items"] if item[0]] == files
    assert not (out / ".gallery" / "thumbs").exists()


def test_without_pillow_the_gallery_says_so(api: ThreadSandbox, cli: Any, tmp_path: Path) -> None:
    out, _ = run_folder(api, cli, tmp_path)
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "from aihubmix_async._cli import main\n"
        f"sys.exit(main(['gallery', {str(out)!r}]))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert "Pillow is not installed" in ran.stderr
    assert "pip install pillow" in ran.stderr
    assert not (out / ".gallery" / "thumbs").exists()


def load_data(out: Path) -> dict[str, Any]:
    text = (out / ".gallery" / "data.js").read_text()
    assert text.startswith("window.GALLERY = ")
    loaded: dict[str, Any] = json.loads(text.removeprefix("window.GALLERY = ").rstrip().rstrip(";"))
    return loaded


@pytest.mark.slow
def test_a_hundred_thousand_items_render_one_page(tmp_path: Path, chromium: Any) -> None:
    out = tmp_path / "big"
    out.mkdir()
    Image.new("RGB", (8, 8), (250, 20, 20)).save(out / "only.png")
    with (out / "metadata.jsonl").open("w") as handle:
        for i in range(100_000):
            row = {"file_name": "only.png", "id": f"item-{i}", "prompt": f"prompt {i}",
                   "model": f"m-{i % 2}", "params": {"seed": i}, "cost": 0.01}  # fmt: skip
            handle.write(json.dumps(row) + "\n")
    report = build_gallery(out)
    assert (report.images, report.failures, report.thumbnails_made) == (100_000, 0, 1)
    dom = chromium((out / "gallery.html").resolve().as_uri() + "?page=1000", "--dump-dom")
    assert 'data-rendered="60"' in dom
    assert "page 1000 of 1667" in dom
    assert "prompt 59940" in dom  # the first item of page 1000
    assert "cost 0.01" in dom


def test_failures_and_odd_lines_become_items(tmp_path: Path) -> None:
    """Costs of any shape are shown, torn or foreign lines skipped, paths never followed."""
    rows = [
        {"file_name": "a.png", "prompt": "p", "model": "m", "params": "{}", "cost": {"usd": 0.04}},
        {"file_name": "../escape.png", "prompt": "outside"},
        ["not", "an", "object"],
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows) + '{"file_name": "torn'
    (tmp_path / "metadata.jsonl").write_text(text)
    jsonl(tmp_path / "errors.jsonl", [{"id": "x", "prompt": "q", "error": "RateLimitError"}])
    report = build_gallery(tmp_path, thumbnails=False)
    assert (report.images, report.failures) == (1, 1)
    items = load_data(tmp_path)["items"]
    assert items[0][5] == ""  # no parameters: nothing to show
    assert json.loads(items[0][9]) == {"usd": 0.04}
    assert items[1][6:8] == ["failed", "RateLimitError"]


def test_a_folder_of_images_alone_is_shown_too(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    report = build_gallery(tmp_path, thumbnails=False)
    assert (report.images, report.failures) == (1, 0)


def test_a_missing_folder_is_an_error(cli: Any, tmp_path: Path) -> None:
    ran = cli("gallery", tmp_path / "nowhere")
    assert ran.code == 2  # a typo, not an I/O error to resume from
    assert "nowhere" in ran.err


def test_a_parquet_folder_shows_the_images_inside_its_shards(
    api: ThreadSandbox, cli: Any, tmp_path: Path
) -> None:
    """The Parquet layout keeps images in its shards: the gallery copies each out once and
    shows it (with its thumbnail) beside the failures.
    """
    rows = [{"id": f"fox-{i}", "prompt": f"a fox, take {i}", "seed": i} for i in range(3)]
    rows.append({"id": "kite", "prompt": "a kite", "model": "gpt-image-1"})
    api.fail("moderated", model="gpt-image")
    out = tmp_path / "run"
    ran = cli("batch", jsonl(tmp_path / "in.jsonl", rows), "-m", "ideogram/V3", "-o", out,
              "--output-format", "parquet")  # fmt: skip
    assert ran.code == 1, ran.err
    report = build_gallery(out)
    assert (report.images, report.failures, report.thumbnails_made) == (3, 1, 3)
    data = load_data(out)
    shown = sorted(item[2] for item in data["items"] if item[0])
    assert shown == ["fox-0", "fox-1", "fox-2"]
    for item in data["items"]:
        if item[0]:
            assert (out / item[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (out / item[1]).exists()  # its thumbnail
    assert build_gallery(out).thumbnails_made == 0  # copied and thumbnailed once
