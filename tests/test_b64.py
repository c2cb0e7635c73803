"""bridge.b64: strict base64 that means the same on 3.11, 3.12 and 3.13."""

from __future__ import annotations

import base64
import binascii

import pytest

from bridge.b64 import decode_strict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("AQIDBA==", b"\x01\x02\x03\x04"),
        ("AQIDBAU=", b"\x01\x02\x03\x04\x05"),
        ("AQIDBAUG", b"\x01\x02\x03\x04\x05\x06"),
        # padding after a complete quantum: 3.11 and 3.12 accept it, 3.13 would not
        ("AQIDBAUG=", b"\x01\x02\x03\x04\x05\x06"),
        ("AQIDBAUG==", b"\x01\x02\x03\x04\x05\x06"),
        ("AQIDBAUG====", b"\x01\x02\x03\x04\x05\x06"),
    ],
)
def test_what_is_accepted(text: str, expected: bytes) -> None:
    assert decode_strict(text) == expected
    assert decode_strict(text.encode()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "AQIDBA=",  # padding missing
        "AQIDBAU==",  # too much padding on an incomplete quantum
        "AQIDBA====",
        "=",  # leading padding
        "==",
        "AQIDBAUG==AQ",  # data after padding
        "AQ==AQ==",
        "AQIDBAUG=\n",  # whitespace
        "AQID BA==",
        "AQIDBA*=",  # outside the alphabet
        "AQIDBAUG==é",
    ],
)
def test_what_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_strict(text)


def test_refusals_are_binascii_errors_for_ascii_input() -> None:
    with pytest.raises(binascii.Error):
        decode_strict("AQIDBA=")


def test_round_trips_what_b64encode_writes() -> None:
    for n in range(0, 40):
        data = bytes(range(n))
        assert decode_strict(base64.b64encode(data)) == data
