"""Post-call webhook deliveries as the store keeps them (table ``webhook_deliveries``).

One row per (call, receiver URL), written when the call ends and then only by the
delivery worker (:mod:`bridge.webhooks.delivery`) and the admin API.  The row *is* the
delivery's state, so retries survive a restart and every instance sharing a PostgreSQL
database sees the same queue.

Claiming is optimistic and atomic on both backends: an attempt first bumps
``attempts`` and pushes ``next_attempt_at`` past a lease, in one ``UPDATE`` that only
matches the row as it was read (same ``attempts``, still due).  Of several instances
reading the same due row, exactly one updates it; the others see zero rows changed and
leave it.  An instance that dies mid-attempt leaves the row pending with its lease:
after the lease it is due again.  The result of an attempt is written under the same
``attempts`` it claimed, so a stale result cannot overwrite a newer attempt's.

Deliveries are therefore at least once: receivers deduplicate by delivery id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec

from bridge.errors import InputError
from bridge.store.backend import Backend

DeliveryState = Literal["pending", "delivered", "failed"]
DELIVERY_STATES: Final = ("pending", "delivered", "failed")


class DeliveryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook delivery: where it goes, how it went.  (The payload is not listed.)"""

    id: str
    call_sid: str
    url: str
    state: DeliveryState
    created_at: float
    attempts: int
    # When the next attempt is due (state pending; while an attempt runs, its lease end).
    next_attempt_at: float
    # Failed attempts after this are final (state failed).
    retry_until: float
    # The receiver's HTTP status of the last attempt (None: no answer, see last_error).
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DeliveryRecord]
    next_cursor: str | None = None


class NewDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    call_sid: str
    url: str
    payload: str  # the JSON document, exactly the bytes that are signed and sent
    created_at: float
    retry_until: float


class DueDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery whose attempt is due, as the worker needs it."""

    id: str
    url: str
    payload: str
    attempts: int
    retry_until: float


_COLUMNS: Final = (
    "id, call_sid, url, state, created_at, attempts, next_attempt_at, retry_until, "
    "last_status, last_error, delivered_at"
)
_INSERT: Final = (
    "INSERT INTO webhook_deliveries "
    "(id, call_sid, url, payload, created_at, attempts, next_attempt_at, retry_until, state) "
    "VALUES (?, ?, ?, ?, ?, 0, ?, ?, 'pending') ON CONFLICT (call_sid, url) DO NOTHING"
)
_DUE: Final = (
    "SELECT id, url, payload, attempts, retry_until FROM webhook_deliveries "
    "WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
)
_CLAIM: Final = (
    "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ? "
    "WHERE id = ? AND state = 'pending' AND attempts = ? AND next_attempt_at <= ?"
)
_FINISH: Final = (
    "UPDATE webhook_deliveries SET state = ?, next_attempt_at = ?, last_status = ?, "
    "last_error = ?, delivered_at = ? WHERE id = ? AND state = 'pending' AND attempts = ?"
)
# A retry: due now, whatever the state; a delivery past its retry period gets one attempt.
_RETRY: Final = (
    "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, "
    "retry_until = CASE WHEN retry_until < ? THEN ? ELSE retry_until END WHERE id = ?"
)
_cursor_decode = msgspec.json.Decoder(tuple[float, str]).decode


def _row(r: Sequence[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        id=r[0],
        call_sid=r[1],
        url=r[2],
        state=r[3],
        created_at=float(r[4]),
        attempts=int(r[5]),
        next_attempt_at=float(r[6]),
        retry_until=float(r[7]),
        last_status=None if r[8] is None else int(r[8]),
        last_error=r[9],
        delivered_at=None if r[10] is None else float(r[10]),
    )


def enqueue(db: Backend, items: Sequence[NewDelivery]) -> int:
    """Insert new deliveries (due at once); one already queued for the same call and
    URL is kept.  Returns how many were inserted."""
    statements = [
        (_INSERT, (d.id, d.call_sid, d.url, d.payload, d.created_at, d.created_at, d.retry_until))
        for d in items
    ]
    return sum(db.write(statements)) if statements else 0


def due(db: Backend, now: float, limit: int) -> list[DueDelivery]:
    return [
        DueDelivery(id=r[0], url=r[1], payload=r[2], attempts=int(r[3]), retry_until=float(r[4]))
        for r in db.query(_DUE, (now, limit))
    ]


def claim(db: Backend, d: DueDelivery, now: float, lease_until: float) -> bool:
    """Take ``d`` for one attempt (``attempts`` + 1, not due before ``lease_until``);
    False if another worker took it or it changed since it was read."""
    return db.write([(_CLAIM, (lease_until, d.id, d.attempts, now))])[0] == 1


def finish(
    db: Backend,
    d: DueDelivery,
    *,
    state: DeliveryState,
    next_attempt_at: float,
    status: int | None,
    error: str | None,
    delivered_at: float | None,
) -> bool:
    """Record the attempt claimed from ``d``; False if the row moved on meanwhile."""
    params = (state, next_attempt_at, status, error, delivered_at, d.id, d.attempts + 1)
    return db.write([(_FINISH, params)])[0] == 1


def get(db: Backend, delivery_id: str) -> DeliveryRecord | None:
    rs = db.query(f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    return _row(rs[0]) if rs else None


def payload(db: Backend, delivery_id: str) -> str | None:
    rs = db.query("SELECT payload FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    return str(rs[0][0]) if rs else None


def retry(db: Backend, delivery_id: str, now: float) -> DeliveryRecord | None:
    """Make the delivery due now (pending again if it had failed or was delivered)."""
    if db.write([(_RETRY, (now, now, now, delivery_id))])[0] == 0:
        return None
    return get(db, delivery_id)


def list_page(
    db: Backend,
    *,
    state: DeliveryState | None,
    call_sid: str | None,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    """Newest first; ``cursor`` is the ``next_cursor`` of the previous page."""
    clauses: list[str] = []
    params: list[Any] = []
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    if call_sid is not None:
        clauses.append("call_sid = ?")
        params.append(call_sid)
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [at, at, last_id]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = (
        f"SELECT {_COLUMNS} FROM webhook_deliveries{where} "
        "ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    items = [_row(r) for r in db.query(sql, (*params, limit + 1))]
    page = items[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(items) > limit else None
    return DeliveryPage(items=page, next_cursor=next_cursor)


def _encode_cursor(d: DeliveryRecord) -> str:
    raw = msgspec.json.encode((d.created_at, d.id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _cursor_decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InputError("cursor", "is not a cursor returned by this listing", status=400) from None
