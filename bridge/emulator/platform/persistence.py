"""Optional SQLite persistence for the emulator's REST state.

One table of JSON documents keyed by (kind, id), written through on every change, so a
restarted ``bridge emulator --db FILE`` comes back with the same agents, numbers, secrets
and settings.  Conversations, signed-URL tokens and injected faults are not persisted:
they belong to a running process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bridge.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, id)
)
"""


class DocumentStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM documents").fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"emulator state {self.path}: {e}") from e
        self._seq = int(row[0])

    def load(self, kind: str) -> Iterator[tuple[str, bytes]]:
        """Documents of one kind in insertion order."""
        try:
            rows = self._db.execute(
                "SELECT id, body FROM documents WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"emulator state {self.path}: reading {kind}: {e}") from e
        for doc_id, body in rows:
            yield str(doc_id), bytes(body)

    def put(self, kind: str, doc_id: str, body: bytes) -> None:
        # An update keeps the original seq, so listing order stays creation order.
        self._seq += 1
        try:
            self._db.execute(
                "INSERT INTO documents (kind, id, seq, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                (kind, doc_id, self._seq, body),
            )
        except sqlite3.Error as e:
            raise StoreError(f"emulator state {self.path}: writing {kind} {doc_id}: {e}") from e

    def delete(self, kind: str, doc_id: str) -> None:
        try:
            self._db.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, doc_id))
        except sqlite3.Error as e:
            raise StoreError(f"emulator state {self.path}: deleting {kind} {doc_id}: {e}") from e

    def close(self) -> None:
        self._db.close()
