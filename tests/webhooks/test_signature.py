"""The Bridge-Signature header: pure sign/verify, and agreement with an independent verifier."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bridge.webhooks.signature import HEADER, sign, verify
from tests.webhooks.verify import receiver_verify

SECRET = "whsec-" + "k" * 40
BODY = b'{"event":"call.ended","call":{"call_sid":"CA1"}}'


def test_header_name_and_form() -> None:
    assert HEADER == "Bridge-Signature"
    t, v1 = sign(SECRET, BODY, 1_700_000_000).split(",")
    assert t == "t=1700000000"
    assert v1.startswith("v1=") and len(v1) == 3 + 64
    int(v1[3:], 16)  # hex


def test_round_trip_and_independent_verifier() -> None:
    now = int(time.time())
    header = sign(SECRET, BODY, now)
    assert verify(SECRET, BODY, header, now=now)
    assert receiver_verify(SECRET, BODY, header)


def test_known_vector() -> None:
    # Pinned: HMAC-SHA256(key "secret", message "1.{}"), so the format cannot drift.
    assert sign("secret", b"{}", 1) == (
        "t=1,v1=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
    )


def test_refuses_tampering_wrong_secret_and_stale_time() -> None:
    now = 1_700_000_000
    header = sign(SECRET, BODY, now)
    assert not verify(SECRET, BODY + b" ", header, now=now)
    assert not verify("other-" + SECRET, BODY, header, now=now)
    assert verify(SECRET, BODY, header, now=now + 299)
    assert not verify(SECRET, BODY, header, now=now + 301)
    assert not verify(SECRET, BODY, header, now=now - 301)
    # the timestamp is signed: moving it invalidates the signature
    moved = header.replace("t=1700000000", "t=1700000100")
    assert not verify(SECRET, BODY, moved, now=now + 100)


def test_malformed_headers_are_not_valid() -> None:
    now = 1_700_000_000
    good = sign(SECRET, BODY, now)
    v1 = good.split(",")[1]
    for bad in (
        None,
        "",
        v1,  # no timestamp
        "t=1700000000",  # no signature
        "t=abc," + v1,
        "t=-1700000000," + v1,
        "garbage",
        "t=1700000000,v1=" + "0" * 64,
        "t=1700000000," + v1 + "," + "x" * 2000,  # too long
        "t=1700000000,v1=\u00e9\u00e9",
    ):
        assert not verify(SECRET, BODY, bad, now=now), bad


def test_extra_schemes_and_several_v1_are_tolerated() -> None:
    now = 1_700_000_000
    good = sign(SECRET, BODY, now)
    assert verify(SECRET, BODY, good + ",v2=future", now=now)
    t, v1 = good.split(",")
    assert verify(SECRET, BODY, f"{t},v1={'0' * 64},{v1}", now=now)  # secret rotation


def _docs_snippet() -> Any:
    """The verification function of docs/webhooks.md, as a receiver would paste it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "docs/webhooks.md lost its Python snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify_bridge_signature"]


def test_the_documented_snippet_verifies_what_the_bridge_signs() -> None:
    verify_doc = _docs_snippet()
    header = sign(SECRET, BODY, int(time.time()))
    assert verify_doc(SECRET, BODY, header)
    assert not verify_doc(SECRET, BODY + b"x", header)
    assert not verify_doc("y" * 40, BODY, header)
    assert not verify_doc(SECRET, BODY, sign(SECRET, BODY, int(time.time()) - 3600))
    assert not verify_doc(SECRET, BODY, "garbage")
    assert not verify_doc(SECRET, BODY, "")
