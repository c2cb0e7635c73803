"""The PostgreSQL schema: the same ordered migrations as :mod:`bridge.store.schema`.

``MIGRATIONS[i]`` takes the database from version *i* to *i + 1* and means exactly what
the SQLite step *i* means (same tables, columns, defaults and indexes; only the type
names differ).  The version lives in a one-row table, ``bridge_schema``.  Each step runs
in one transaction together with its version bump (PostgreSQL's DDL is transactional),
under an advisory lock, so a crash mid-migration leaves the previous version intact and
two instances starting at once cannot both apply a step.  A database from a newer
bridge is refused rather than written with an older schema.

Text columns that order listings (``calls.call_sid``, ``numbers.number``) use the
``"C"`` collation: byte order, as SQLite and Python compare, so the cursor of
:meth:`~bridge.store.Store.list_calls` means the same on both backends.  Tables are
created unqualified, in the first schema of the connection's ``search_path``.
"""

from __future__ import annotations

from typing import Final

import psycopg

from bridge.errors import StoreError
from bridge.store import schema

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: provisioned numbers (the routing table's persistent copy).
    (
        """CREATE TABLE numbers (
            number            TEXT COLLATE "C" PRIMARY KEY,
            phone_number_id   TEXT UNIQUE,
            label             TEXT NOT NULL DEFAULT '',
            provider          TEXT NOT NULL,
            agent_id          TEXT,
            agent_name        TEXT,
            first_message     TEXT,
            language          TEXT,
            dynamic_variables TEXT NOT NULL DEFAULT '{}',
            fallback_number   TEXT,
            twilio_number_sid TEXT,
            updated_at        DOUBLE PRECISION NOT NULL
        )""",
    ),
    # 2: call records, indexed for the admin listing (newest first, by number/agent/state).
    (
        """CREATE TABLE calls (
            call_sid        TEXT COLLATE "C" PRIMARY KEY,
            stream_sid      TEXT,
            conversation_id TEXT,
            direction       TEXT NOT NULL,
            from_number     TEXT,
            to_number       TEXT,
            agent_id        TEXT,
            status          TEXT NOT NULL,
            started_at      DOUBLE PRECISION NOT NULL,
            answered_at     DOUBLE PRECISION,
            ended_at        DOUBLE PRECISION,
            duration_s      DOUBLE PRECISION,
            end_reason      TEXT,
            bytes_in        BIGINT NOT NULL DEFAULT 0,
            bytes_out       BIGINT NOT NULL DEFAULT 0,
            interruptions   BIGINT NOT NULL DEFAULT 0,
            first_audio_ms  DOUBLE PRECISION,
            transfer_target TEXT,
            events          TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX calls_started ON calls (started_at, call_sid)",
        "CREATE INDEX calls_status ON calls (status, started_at)",
        "CREATE INDEX calls_to ON calls (to_number, started_at)",
        "CREATE INDEX calls_from ON calls (from_number, started_at)",
        "CREATE INDEX calls_agent ON calls (agent_id, started_at)",
    ),
    # 3: the instance handling each call's stream (NULL for calls recorded before).
    (
        "ALTER TABLE calls ADD COLUMN instance TEXT",
        "CREATE INDEX calls_instance ON calls (instance, status)",
    ),
    # post-call webhooks: one row per (call, receiver URL), the delivery's state and retries.
    (
        """CREATE TABLE webhook_deliveries (
            id              TEXT COLLATE "C" PRIMARY KEY,
            call_sid        TEXT NOT NULL,
            url             TEXT NOT NULL,
            payload         TEXT NOT NULL,
            created_at      DOUBLE PRECISION NOT NULL,
            attempts        BIGINT NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE PRECISION NOT NULL,
            retry_until     DOUBLE PRECISION NOT NULL,
            last_status     BIGINT,
            last_error      TEXT,
            delivered_at    DOUBLE PRECISION,
            state           TEXT NOT NULL DEFAULT 'pending',
            UNIQUE (call_sid, url)
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at)",
        "CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at, id)",
    ),
    # instances and the event bus (bridge/store/bus.py, bridge/store/instances.py): the
    # instances that share this store, and an append-only log of events between them.
    (
        """CREATE TABLE instances (
            id          TEXT COLLATE "C" PRIMARY KEY,
            started_at  DOUBLE PRECISION NOT NULL,
            last_seen   DOUBLE PRECISION NOT NULL,
            state       TEXT NOT NULL,
            version     TEXT NOT NULL DEFAULT '',
            url         TEXT,
            live_calls  BIGINT NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE bus_events (
            id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind        TEXT NOT NULL,
            payload     TEXT NOT NULL,
            origin      TEXT NOT NULL,
            created_at  DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX bus_events_created ON bus_events (created_at)",
    ),
    # deployment-wide limits (bridge/store/slots.py, claims.py, rates.py): one row per
    # call holding a concurrency slot, the stream tokens used, outbound rate limits.
    (
        """CREATE TABLE call_slots (
            call_sid    TEXT COLLATE "C" PRIMARY KEY,
            number      TEXT NOT NULL,
            instance    TEXT NOT NULL,
            live        INTEGER NOT NULL DEFAULT 0,
            expires_at  DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX call_slots_number ON call_slots (number)",
        "CREATE INDEX call_slots_expires ON call_slots (expires_at)",
        """CREATE TABLE stream_claims (
            token       TEXT COLLATE "C" PRIMARY KEY,
            call_sid    TEXT NOT NULL UNIQUE,
            expires_at  DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX stream_claims_expires ON stream_claims (expires_at)",
        """CREATE TABLE rate_limits (
            scope       TEXT COLLATE "C" PRIMARY KEY,
            free_at     DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX rate_limits_free ON rate_limits (free_at)",
    ),
    # call insight: the transcript and per-turn latency summary of each call (JSON text;
    # bridge/store/transcripts.py).
    (
        "ALTER TABLE calls ADD COLUMN transcript TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE calls ADD COLUMN latency TEXT",
    ),
    # recordings: a number's own opt-in (bridge/recording; NumberRecord.record).
    ("ALTER TABLE numbers ADD COLUMN record BOOLEAN NOT NULL DEFAULT FALSE",),
)

# One schema version for both backends: a step is added to both or to neither.
assert len(MIGRATIONS) == len(schema.MIGRATIONS)
SCHEMA_VERSION: Final = schema.SCHEMA_VERSION

# pg_advisory_xact_lock key serialising migrations ("bridge" in ASCII).
MIGRATION_LOCK: Final = 0x627269646765
_VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS bridge_schema ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
)
_SET_VERSION: Final = (
    "INSERT INTO bridge_schema (id, version) VALUES (1, %s) "
    "ON CONFLICT (id) DO UPDATE SET version = excluded.version"
)


def schema_version(conn: psycopg.Connection) -> int:
    """The database's version; 0 for a database the bridge never opened."""
    exists = conn.execute("SELECT to_regclass('bridge_schema') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT version FROM bridge_schema WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection, label: str) -> int:
    """Apply the missing steps; return how many were applied.  ``conn`` autocommits."""
    applied = 0
    try:
        while True:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(_VERSION_TABLE)
                version = schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {label} has schema version {version}; this bridge knows "
                        f"up to {SCHEMA_VERSION} (downgrade refused)"
                    )
                if version == SCHEMA_VERSION:
                    return applied
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(_SET_VERSION, (version + 1,))
            applied += 1
    except psycopg.Error as e:
        raise StoreError(f"cannot migrate database {label}: {e}") from None
