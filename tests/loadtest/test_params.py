from __future__ import annotations

import pytest

from bridge.errors import InputError
from bridge.loadtest.params import (
    Params,
    check_target,
    is_loopback_host,
    parse_counts,
    parse_duration,
    parse_formats,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20s", 20.0), ("500ms", 0.5), ("1.5m", 90.0), ("60", 60.0), ("1h", 3600.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1s", "5 days", "1e3s"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(InputError, match="--ramp"):
        parse_duration(text, "--ramp")


def test_counts_and_formats():
    assert parse_counts("50, 100,150") == (50, 100, 150)
    assert parse_formats("ulaw_8000,pcm_16000") == ("ulaw_8000", "pcm_16000")
    for bad in ("0", "x", "100000"):
        with pytest.raises(InputError, match="--calls"):
            parse_counts(bad)
    with pytest.raises(InputError, match="--agent-format"):
        parse_formats("mp3_44100")


def test_only_loopback_targets_unless_named_explicitly():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.3.2.1")
    assert is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("192.168.1.1")
    assert check_target("http://127.0.0.1:8080/", False) == "http://127.0.0.1:8080"
    with pytest.raises(InputError, match="allow-remote-target"):
        check_target("http://10.1.2.3:8080", False)
    # named on purpose: accepted (no traffic is sent by this check)
    assert check_target("https://10.1.2.3", True) == "https://10.1.2.3"
    with pytest.raises(InputError, match="--target"):
        check_target("ftp://127.0.0.1", False)


def _params(**kw):
    base = dict(
        target=None,
        calls=(5,),
        formats=("pcm_16000",),
        ramp_s=1.0,
        duration_s=5.0,
        scenario="loopback",
        report_dir="out",
    )
    base.update(kw)
    return Params(**base)


def test_params_bounds_and_phases():
    p = _params(calls=(10, 20), formats=("ulaw_8000", "pcm_16000"))
    assert p.phases() == [
        (10, "ulaw_8000"),
        (10, "pcm_16000"),
        (20, "ulaw_8000"),
        (20, "pcm_16000"),
    ]
    assert p.phase_deadline_s() > p.ramp_s + p.duration_s
    with pytest.raises(InputError, match="--scenario"):
        _params(scenario="storm")
    with pytest.raises(InputError, match="--duration"):
        _params(duration_s=0.5)
    with pytest.raises(InputError, match="--to"):
        _params(target="http://127.0.0.1:8080")
    with pytest.raises(InputError, match="--calls"):
        _params(calls=(2000,) * 6)
