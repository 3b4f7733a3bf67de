"""The gallery page in headless Chromium (Debian's ``chromium``) under attack: every text a
prompt, model, parameter, error, id or folder name can carry is script that would set
``document.body.dataset.pwned`` if the page ever ran it; names of raw bytes; a bad URL query.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from aihubmix_async._gallery import build_gallery

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, nothing reachable beyond the machine."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=10000", "--dump-dom", url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True).stdout


def payloads(tag: str) -> list[str]:
    """Texts that run script wherever a page puts them into HTML or JS unescaped."""
    run = f"document.body.dataset.pwned='{tag}'"
    return [
        f"</script><script>{run}</script>",
        f'<img src=x onerror="{run}">',
        f"\"'`\u2028\u2029--><!-- <svg onload={run}>",
        f"javascript:{run}",
        f"${{{run}}}",
    ]


@pytest.mark.slow
def test_no_text_in_the_metadata_runs_as_script(tmp_path: Path) -> None:
    folder = tmp_path / "run<img src=x onerror=document.body.dataset.pwned=1>"
    folder.mkdir()
    Image.new("RGB", (8, 8), (1, 200, 1)).save(folder / "a.png")
    # A name of raw bytes, and characters that mean something in a URL.
    Image.new("RGB", (8, 8), (1, 2, 200)).save(os.fsencode(folder) + b"/\xff #?&.png")
    ok = [
        {"file_name": "a.png", "id": p, "prompt": p, "model": p, "params": {p: p}, "cost": p,
         "request_id": p}
        for p in payloads("ok")
    ]  # fmt: skip
    ok.append({"file_name": "\udcff #?&.png", "prompt": "raw bytes", "model": "m"})
    failed = [{"id": p, "prompt": p, "model": p, "error": p, "message": p} for p in payloads("e")]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ok))
    (folder / "errors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in failed))
    report = build_gallery(folder)
    assert (report.images, report.failures, report.thumbnails_made) == (6, 5, 2)

    url = (folder / "gallery.html").resolve().as_uri()
    page = dom(url, tmp_path / "p1")
    assert "data-pwned" not in page
    assert 'data-rendered="11"' in page  # every card drawn: no script error on the way
    assert "11 of 11 items, 5 failed" in page
    # The raw-bytes file is linked and thumbnailed by its percent-encoded name.
    assert 'href="%FF%20%23%3F%26.png"' in page
    assert 'src=".gallery/thumbs/%FF%20%23%3F%26.png.jpg"' in page
    assert "&lt;/script&gt;&lt;script&gt;" in page  # shown as text

    hostile_query = "?model=%3Cimg%20src%3Dx%20onerror%3Ddocument.body.dataset.pwned%3D1%3E"
    page = dom(url + hostile_query + "&page=abc", tmp_path / "p2")
    assert "data-pwned" not in page
    assert "page 1 of 1" in page


@pytest.mark.slow
def test_a_page_number_that_is_no_number_shows_the_first_page(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (200, 1, 1)).save(tmp_path / "a.png")
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # undecodable
    build_gallery(tmp_path)
    url = (tmp_path / "gallery.html").resolve().as_uri()
    for query in ("?page=abc", "?page=-3", "?page="):
        page = dom(url + query, tmp_path / f"p{len(query)}")
        assert 'data-rendered="2"' in page, query
        assert "page 1 of 1" in page, query
    assert re.search(r'class="thumb none"[^>]*>no preview<', page)
