"""The SQLite schema as ordered migrations, and how connections are opened.

``MIGRATIONS[i]`` takes the database from ``PRAGMA user_version`` *i* to *i + 1*.
Steps are append-only: a released step is never edited, a change is a new step.  Each
step runs in one ``BEGIN IMMEDIATE`` transaction together with its ``user_version``
bump, so a crash mid-migration leaves the previous version intact, and two processes
opening the same file at once cannot both apply a step.

The database holds phone numbers and call records: its files are the owner's only
(0600).  :func:`connect` creates the file so before SQLite opens it (SQLite gives the
``-wal`` and ``-shm`` files the main file's permissions), and tightens the files of a
database created by an older bridge or by hand, saying so in the log.

Connections run in autocommit mode (``isolation_level=None``): every write path opens
its own explicit transaction, so nothing is left open behind our back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from typing import Final

from bridge.errors import StoreError
from bridge.log import log_event

logger = logging.getLogger(__name__)

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
    # 3: the instance handling each call's stream (NULL for calls recorded before).
    (
        "ALTER TABLE calls ADD COLUMN instance TEXT",
        "CREATE INDEX calls_instance ON calls (instance, status)",
    ),
    # post-call webhooks: one row per (call, receiver URL), the delivery's state and retries.
    (
        """CREATE TABLE webhook_deliveries (
            id              TEXT PRIMARY KEY,
            call_sid        TEXT NOT NULL,
            url             TEXT NOT NULL,
            payload         TEXT NOT NULL,
            created_at      REAL NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            retry_until     REAL NOT NULL,
            last_status     INTEGER,
            last_error      TEXT,
            delivered_at    REAL,
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
            id          TEXT PRIMARY KEY,
            started_at  REAL NOT NULL,
            last_seen   REAL NOT NULL,
            state       TEXT NOT NULL,
            version     TEXT NOT NULL DEFAULT '',
            url         TEXT,
            live_calls  INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE bus_events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            kind        TEXT NOT NULL,
            payload     TEXT NOT NULL,
            origin      TEXT NOT NULL,
            created_at  REAL NOT NULL
        )""",
        "CREATE INDEX bus_events_created ON bus_events (created_at)",
    ),
    # deployment-wide limits (bridge/store/slots.py, claims.py, rates.py): one row per
    # call holding a concurrency slot, the stream tokens used, outbound rate limits.
    (
        """CREATE TABLE call_slots (
            call_sid    TEXT PRIMARY KEY,
            number      TEXT NOT NULL,
            instance    TEXT NOT NULL,
            live        INTEGER NOT NULL DEFAULT 0,
            expires_at  REAL NOT NULL
        )""",
        "CREATE INDEX call_slots_number ON call_slots (number)",
        "CREATE INDEX call_slots_expires ON call_slots (expires_at)",
        """CREATE TABLE stream_claims (
            token       TEXT PRIMARY KEY,
            call_sid    TEXT NOT NULL UNIQUE,
            expires_at  REAL NOT NULL
        )""",
        "CREATE INDEX stream_claims_expires ON stream_claims (expires_at)",
        """CREATE TABLE rate_limits (
            scope       TEXT PRIMARY KEY,
            free_at     REAL NOT NULL
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
    ("ALTER TABLE numbers ADD COLUMN record INTEGER NOT NULL DEFAULT 0",),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)

MEMORY: Final = ":memory:"
PRIVATE_MODE: Final = 0o600
# The files SQLite keeps beside the database (WAL mode; a rollback journal briefly).
COMPANIONS: Final = ("-wal", "-shm", "-journal")


def make_private(path: str) -> list[tuple[str, int, bool]]:
    """Create ``path`` as 0600 if it does not exist; take group and other permissions
    off it and off its companion files if they have any.  Returns ``(file, old mode,
    done)`` for each file that was not private (``done`` False: not ours to change).
    OSError if the file cannot be created."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_MODE)  # (mode unused if it exists)
    try:
        files = [(path, os.fstat(fd))]
    finally:
        os.close(fd)
    for suffix in COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            files.append((path + suffix, os.stat(path + suffix)))
    changed = []
    for name, st in files:
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            try:
                os.chmod(name, mode & 0o700)
            except OSError:  # another user's file: say so, SQLite decides if it opens
                changed.append((name, mode, False))
            else:
                changed.append((name, mode, True))
    return changed


def connect(
    path: str, *, busy_timeout_s: float, max_db_bytes: int | None = None
) -> sqlite3.Connection:
    """Open ``path`` in WAL mode (``:memory:`` stays in memory); StoreError if it cannot.

    ``max_db_bytes`` caps the database file (``PRAGMA max_page_count``): past it writes
    fail with "database or disk is full", as on a full volume, instead of filling it.
    """
    if path not in (MEMORY, ""):  # ("": SQLite's private temporary database)
        try:
            tightened = make_private(path)
        except OSError as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        for name, mode, done in tightened:
            log_event(
                logger,
                "store.permissions_tightened" if done else "store.permissions_open",
                logging.WARNING,
                file=name,
                was=f"{mode:04o}",
                now=f"{mode & 0o700 if done else mode:04o}",
            )
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
