"""Local state in SQLite: provisioned numbers (the routing table) and call records.

``Store`` is the entry point; records are typed in :mod:`bridge.store.records`, the
schema and its migrations live in :mod:`bridge.store.schema`, and the non-blocking
call-record writer in :mod:`bridge.store.writer`.
"""

from __future__ import annotations

from bridge.store.records import (
    LIVE_STATUSES,
    CallPage,
    CallRecord,
    CallStatus,
    Direction,
    NumberRecord,
    Provider,
)
from bridge.store.schema import SCHEMA_VERSION
from bridge.store.store import Store

__all__ = [
    "LIVE_STATUSES",
    "SCHEMA_VERSION",
    "CallPage",
    "CallRecord",
    "CallStatus",
    "Direction",
    "NumberRecord",
    "Provider",
    "Store",
]
