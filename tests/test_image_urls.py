"""Image URL checks: the fast path for plain URLs agrees with urlsplit on every URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st

from aihubmix_async._generation import _well_formed


def _by_urlsplit(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        return False


@given(st.sampled_from(["http://", "https://"]), st.text(alphabet="ab.-:0915/?#@[]\\ \t%é"))
def test_fast_path_agrees_with_urlsplit(scheme: str, rest: str) -> None:
    assert _well_formed(scheme + rest) == _by_urlsplit(scheme + rest)


def test_plain_urls() -> None:
    assert _well_formed("http://127.0.0.2:39557/img/a.png")
    assert _well_formed("https://cdn.example.com/a.png?sig=x%3Ay")
    assert not _well_formed("http://host:0/a.png")
    assert not _well_formed("http://host:70000/a.png")
