from __future__ import annotations

import pytest

from bridge.audio.formats import FORMATS, ULAW_8000, AudioFormat, parse_format
from bridge.errors import AudioFormatError


def test_every_platform_format_parses_with_its_rate_and_encoding() -> None:
    assert FORMATS == (
        "ulaw_8000",
        "pcm_8000",
        "pcm_16000",
        "pcm_22050",
        "pcm_24000",
        "pcm_44100",
        "pcm_48000",
    )
    for name in FORMATS:
        fmt = parse_format(name)
        assert fmt.name == name == str(fmt)
        assert fmt.sample_rate == int(name.split("_")[1])
        assert fmt.encoding == name.split("_")[0]
        assert fmt.sample_width == (1 if fmt.encoding == "ulaw" else 2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ulaw_8000", 160),
        ("pcm_8000", 320),
        ("pcm_16000", 640),
        ("pcm_22050", 882),
        ("pcm_24000", 960),
        ("pcm_44100", 1764),
        ("pcm_48000", 1920),
    ],
)
def test_bytes_per_20ms(name: str, expected: int) -> None:
    assert parse_format(name).bytes_per_20ms == expected


def test_ulaw_constant_and_value_semantics() -> None:
    assert parse_format("ulaw_8000") is ULAW_8000
    assert AudioFormat("ulaw_8000", "ulaw", 8000, 1) == ULAW_8000
    with pytest.raises(AttributeError):
        ULAW_8000.sample_rate = 16000  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["pcm_16k", "PCM_16000", "pcm_16000 ", "mp3_44100", "", "ulaw"])
def test_unknown_name_is_an_error_naming_it_and_the_valid_ones(bad: str) -> None:
    with pytest.raises(AudioFormatError) as info:
        parse_format(bad)
    msg = str(info.value)
    assert repr(bad) in msg
    assert all(name in msg for name in FORMATS)


@pytest.mark.parametrize("bad", [None, 16000, b"pcm_16000"])
def test_non_string_is_an_error_not_a_crash(bad: object) -> None:
    with pytest.raises(AudioFormatError, match="unknown audio format"):
        parse_format(bad)  # type: ignore[arg-type]
