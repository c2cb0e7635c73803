"""Records ↔ database rows: column lists, SQL text and the two JSON columns.

Column names equal field names, so the SQL is generated from the record types and
cannot drift from them.  Only validated field names ever reach an SQL string.  The
text is written with ``?`` marks and is the same for both backends (the PostgreSQL
backend turns the marks into ``%s``); the JSON columns are text in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from bridge.store.records import CALL_FIELDS, NUMBER_FIELDS, CallRecord, NumberRecord
from bridge.store.transcripts import LatencySummary, TranscriptEntry

_json_encode = msgspec.json.Encoder().encode
_decode_events = msgspec.json.Decoder(tuple[dict[str, Any], ...]).decode
_decode_vars = msgspec.json.Decoder(dict[str, str]).decode
_decode_transcript = msgspec.json.Decoder(tuple[TranscriptEntry, ...]).decode
_decode_latency = msgspec.json.Decoder(LatencySummary | None).decode
# Call fields kept as JSON text (the rest are plain columns).
_JSON_CALL_FIELDS: Final = frozenset({"events", "transcript", "latency"})

NUMBER_COLUMNS: Final = ", ".join(NUMBER_FIELDS)
CALL_COLUMNS: Final = ", ".join(CALL_FIELDS)
# Listings leave the transcript out (up to hundreds of entries per call, read one call at
# a time through GET /admin/calls/{sid}/transcript); its place holds an empty list.
LIST_CALL_COLUMNS: Final = ", ".join("'[]'" if f == "transcript" else f for f in CALL_FIELDS)

UPSERT_NUMBER: Final = (
    f"INSERT INTO numbers ({NUMBER_COLUMNS}) VALUES ({', '.join('?' * len(NUMBER_FIELDS))}) "
    "ON CONFLICT(number) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in NUMBER_FIELDS if f != "number")
)
# A call record written whole replaces the row (its pending updates are folded into it).
UPSERT_CALL: Final = (
    f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ({', '.join('?' * len(CALL_FIELDS))}) "
    "ON CONFLICT(call_sid) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in CALL_FIELDS if f != "call_sid")
)


DELETE_NUMBER: Final = "DELETE FROM numbers WHERE number = ? OR phone_number_id = ?"
PRUNE_CALLS: Final = "DELETE FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?"


def number_to_row(rec: NumberRecord) -> tuple[Any, ...]:
    return tuple(
        _json_encode(v).decode() if f == "dynamic_variables" else v
        for f, v in zip(NUMBER_FIELDS, msgspec.structs.astuple(rec), strict=True)
    )


def row_to_number(row: Sequence[Any]) -> NumberRecord:
    values = dict(zip(NUMBER_FIELDS, row, strict=True))
    values["dynamic_variables"] = _decode_vars(values["dynamic_variables"])
    values["record"] = bool(values["record"])  # SQLite keeps booleans as 0 / 1
    return NumberRecord(**values)


def call_value(field: str, value: Any) -> Any:
    """A field value as stored in its column."""
    if field not in _JSON_CALL_FIELDS or (field == "latency" and value is None):
        return value
    return _json_encode(value).decode()


def call_to_row(rec: CallRecord) -> tuple[Any, ...]:
    return tuple(
        call_value(f, v) for f, v in zip(CALL_FIELDS, msgspec.structs.astuple(rec), strict=True)
    )


def row_to_call(row: Sequence[Any]) -> CallRecord:
    values = dict(zip(CALL_FIELDS, row, strict=True))
    values["events"] = _decode_events(values["events"])
    values["transcript"] = _decode_transcript(values["transcript"])
    if values["latency"] is not None:
        values["latency"] = _decode_latency(values["latency"])
    return CallRecord(**values)


def update_call_sql(fields: Sequence[str]) -> str:
    return f"UPDATE calls SET {', '.join(f'{f} = ?' for f in fields)} WHERE call_sid = ?"
