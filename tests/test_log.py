"""bridge.log: every value in a log line is bounded, whatever its source."""

from __future__ import annotations

import enum
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.log import (
    MAX_DEPTH,
    MAX_FIELD_CHARS,
    MAX_ITEMS,
    MAX_LONG_FIELD_CHARS,
    JsonFormatter,
    bound,
    log_event,
)


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.log.bounded")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


def one_line(out: io.StringIO) -> dict[str, object]:
    (line,) = out.getvalue().splitlines()
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_long_string_field_is_cut_with_a_marker(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = log
    sid = "CA" + "x" * (2 << 20)
    log_event(logger, "twilio.signature_invalid", logging.WARNING, call_sid=sid, path="/x")
    assert len(out.getvalue()) < 2 * MAX_FIELD_CHARS
    line = one_line(out)
    assert line["call_sid"] == sid[:MAX_FIELD_CHARS] + f"…[{len(sid) - MAX_FIELD_CHARS} chars cut]"
    assert line["path"] == "/x"  # short values are untouched


def test_short_values_and_numbers_are_unchanged(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = log
    exact = "y" * MAX_FIELD_CHARS
    log_event(logger, "e", a=exact, n=12, f=0.5, b=True, z=None, l=["p", 1])
    line = one_line(out)
    assert line["a"] == exact
    assert (line["n"], line["f"], line["b"], line["z"], line["l"]) == (
        12,
        0.5,
        True,
        None,
        ["p", 1],
    )


def test_other_values_are_bounded_as_their_text() -> None:
    class Big:
        def __str__(self) -> str:
            return "z" * 10_000

    class Kind(enum.Enum):
        A = "a"

    out = bound(Big())
    assert out.startswith("z" * MAX_FIELD_CHARS) and out.endswith(
        f"[{10_000 - MAX_FIELD_CHARS} chars cut]"
    )
    assert bound(Kind.A) == "Kind.A"
    assert bound(ValueError("q" * 5000)).endswith(f"[{5000 - MAX_FIELD_CHARS} chars cut]")


def test_lists_and_mappings_are_bounded_in_count_depth_and_keys() -> None:
    many = bound(list(range(10_000)))
    assert many == [*range(MAX_ITEMS), f"…[{10_000 - MAX_ITEMS} more items]"]
    params = {f"k{i}": "v" * 2000 for i in range(1000)}
    params_out = bound(params)
    assert (
        len(params_out) == MAX_ITEMS + 1 and params_out["…"] == f"[{1000 - MAX_ITEMS} more items]"
    )
    assert all(len(v) < MAX_FIELD_CHARS + 40 for v in params_out.values())
    long_key = bound({"k" * 5000: 1})
    (key,) = long_key
    assert len(key) < MAX_FIELD_CHARS + 40
    nested: object = "bottom"
    for _ in range(100):
        nested = [nested]
    cut = bound(nested)
    for _ in range(MAX_DEPTH):
        assert isinstance(cut, list)
        (cut,) = cut
    assert cut == "…[nested too deep]"


def test_the_traceback_field_is_ours_and_bounded_larger(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = log
    tb = "Traceback (most recent call last):\n" + "  frame\n" * 1000  # ~8 KB: kept whole
    log_event(logger, "call.task_crashed", logging.ERROR, traceback=tb, error="E" * 1000)
    line = one_line(out)
    assert line["traceback"] == tb
    assert str(line["error"]).endswith(f"[{1000 - MAX_FIELD_CHARS} chars cut]")
    out.seek(0)
    out.truncate()
    log_event(logger, "call.task_crashed", logging.ERROR, traceback="t" * (1 << 20))
    assert str(one_line(out)["traceback"]).endswith(
        f"[{(1 << 20) - MAX_LONG_FIELD_CHARS} chars cut]"
    )


def test_a_library_message_and_an_exception_are_bounded(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = log
    try:
        raise ValueError("v" * (1 << 20))
    except ValueError:
        logger.exception("bad request line %s", "GET /" + "a" * (1 << 20))
    assert len(out.getvalue()) < 3 * MAX_LONG_FIELD_CHARS
    line = one_line(out)
    assert str(line["event"]).endswith(" chars cut]") and str(line["exc"]).endswith(" chars cut]")
