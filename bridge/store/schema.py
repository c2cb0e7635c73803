"""The SQLite schema as ordered migrations, and how connections are opened.

``MIGRATIONS[i]`` takes the database from ``PRAGMA user_version`` *i* to *i + 1*.
Steps are append-only: a released step is never edited, a change is a new step.  Each
step runs in one ``BEGIN IMMEDIATE`` transaction together with its ``user_version``
bump, so a crash mid-migration leaves the previous version intact, and two processes
opening the same file at once cannot both apply a step.

Connections run in autocommit mode (``isolation_level=None``): every write path opens
its own explicit transaction, so nothing is left open behind our back.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from bridge.errors import StoreError

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: provisioned numbers (the routing table's persistent copy).
    (
        """CREATE TABLE numbers (
            number            TEXT PRIMARY KEY,
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
            updated_at        REAL NOT NULL
        )""",
    ),
    # 2: call records, indexed for the admin listing (newest first, by number/agent/state).
    (
        """CREATE TABLE calls (
            call_sid        TEXT PRIMARY KEY,
            stream_sid      TEXT,
            conversation_id TEXT,
            direction       TEXT NOT NULL,
            from_number     TEXT,
            to_number       TEXT,
            agent_id        TEXT,
            status          TEXT NOT NULL,
            started_at      REAL NOT NULL,
            answered_at     REAL,
            ended_at        REAL,
            duration_s      REAL,
            end_reason      TEXT,
            bytes_in        INTEGER NOT NULL DEFAULT 0,
            bytes_out       INTEGER NOT NULL DEFAULT 0,
            interruptions   INTEGER NOT NULL DEFAULT 0,
            first_audio_ms  REAL,
            transfer_target TEXT,
            events          TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX calls_started ON calls (started_at, call_sid)",
        "CREATE INDEX calls_status ON calls (status, started_at)",
        "CREATE INDEX calls_to ON calls (to_number, started_at)",
        "CREATE INDEX calls_from ON calls (from_number, started_at)",
        "CREATE INDEX calls_agent ON calls (agent_id, started_at)",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)

MEMORY: Final = ":memory:"


def connect(
    path: str, *, busy_timeout_s: float, max_db_bytes: int | None = None
) -> sqlite3.Connection:
    """Open ``path`` in WAL mode (``:memory:`` stays in memory); StoreError if it cannot.

    ``max_db_bytes`` caps the database file (``PRAGMA max_page_count``): past it writes
    fail with "database or disk is full", as on a full volume, instead of filling it.
    """
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise StoreError(f"cannot open database {path}: {e}") from None
    try:
        if path != MEMORY:
            # WAL: readers never wait for the writer thread, and commits are cheap.
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"database {path}: cannot switch to WAL mode (got {mode})")
            # NORMAL is durable across process crashes in WAL mode; only power loss can
            # lose the last commits, which is acceptable for call records.
            conn.execute("PRAGMA synchronous=NORMAL")
        if max_db_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={max(1, max_db_bytes // page_size)}")
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(f"cannot open database {path}: {e}") from None
    except StoreError:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str = "") -> int:
    """Apply the missing steps; return how many were applied.

    A database from a newer bridge (higher ``user_version``) is refused rather than
    written with an older schema.
    """
    applied = 0
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {path} has schema version {version}; this bridge knows "
                        f"up to {SCHEMA_VERSION} (downgrade refused)"
                    )
                if version == SCHEMA_VERSION:
                    conn.execute("COMMIT")
                    return applied
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version + 1}")
                conn.execute("COMMIT")
                applied += 1
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as e:
        raise StoreError(f"cannot migrate database {path}: {e}") from None
