"""Inline base64 images: the in-place strict decoder agrees with the validating one."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aihubmix_async import ResponseFormatError
from aihubmix_async.providers._readers import decode_base64_image


def _reference(text: str) -> bytes | None:
    """What ``b64decode(validate=True)`` makes of it (None: refused, or empty)."""
    try:
        return base64.b64decode(text, validate=True) or None
    except (binascii.Error, ValueError):
        return None


@given(st.text(alphabet="ABCQRaz09+/=\n -_é", max_size=12))
def test_decoding_matches_the_validating_decoder(text: str) -> None:
    expected = _reference(text)
    if expected is None:
        with pytest.raises(ResponseFormatError):
            decode_base64_image(text, None, "an image")
    else:
        assert decode_base64_image(text, None, "an image").data == expected


@pytest.mark.parametrize(
    ("text", "decoded"),
    [("QUJD", b"ABC"), ("QUJD=", b"ABC"), ("data:image/png;base64,QQ==", b"A"), ("QR==", b"A")],
)
def test_lenient_forms_still_decode(text: str, decoded: bytes) -> None:
    assert decode_base64_image(text, None, "an image").data == decoded
