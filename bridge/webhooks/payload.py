"""The ``call.ended`` document a receiver gets: typed, built from what the bridge has.

The call record is the one ``GET /admin/calls/{sid}`` returns.  Transcript, per-turn
latency and the recording's URL come from :data:`ExtrasProvider`, a function the app
wires to whatever features record them; each is left out (``null``) until then, so a
receiver can rely on the keys and test them for null.  Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec

from bridge.store.records import CallRecord

EVENT_CALL_ENDED: Final = "call.ended"
SCHEMA_VERSION: Final = 1


class CallExtras(msgspec.Struct, frozen=True, kw_only=True):
    """What other features know about a call, beyond its record.

    ``transcript`` and ``latency`` are whatever those features store for the admin API
    (Structs, lists or dicts msgspec can encode); ``recording_url`` the public admin URL
    of the call's recording (``{public_url}/admin/calls/{sid}/recording``) if one exists.
    """

    transcript: Any = None
    latency: Any = None
    recording_url: str | None = None


NO_EXTRAS: Final = CallExtras()

# The call's extras by call SID; blocking reads are fine (called in a worker thread).
ExtrasProvider = Callable[[str], CallExtras]


class CallEnded(msgspec.Struct, frozen=True, kw_only=True):
    """The body of every delivery (JSON)."""

    event: Literal["call.ended"] = "call.ended"
    version: int = SCHEMA_VERSION
    # Unique per (call, receiver): receivers deduplicate on it (delivery is at least once).
    delivery_id: str
    created_at: float  # Unix seconds when the delivery was queued
    call: CallRecord
    transcript: Any = None
    latency: Any = None
    recording_url: str | None = None


_encoder = msgspec.json.Encoder()


def build(delivery_id: str, created_at: float, call: CallRecord, extras: CallExtras) -> bytes:
    """The JSON body for one delivery: exactly the bytes signed and sent."""
    doc = CallEnded(
        delivery_id=delivery_id,
        created_at=created_at,
        call=call,
        transcript=extras.transcript,
        latency=extras.latency,
        recording_url=extras.recording_url,
    )
    return _encoder.encode(doc)
