"""What the store asks of a database: the contract the SQLite and PostgreSQL backends keep.

:class:`~bridge.store.Store` holds everything that does not depend on the database —
validation, the pending-write overlay, paging — and talks to a backend through this
protocol.  SQL reaching a backend is written with ``?`` marks and only our own text
(field names are validated, values are always parameters); a backend translates the
marks to its driver's style.

Errors: a backend raises :class:`~bridge.errors.StoreError` (its message names the
database by ``label``, which never carries a password) and
:class:`~bridge.errors.InputError` (409) for a ``phone_number_id`` that belongs to
another number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bridge.store.records import NumberRecord
from bridge.store.writer import BatchConn


class Backend(Protocol):
    @property
    def label(self) -> str:
        """The database as logs may name it: a path, or a DSN without its password."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement."""
        ...

    def write_numbers(self, upserts: Sequence[NumberRecord], deletes: Sequence[str]) -> int:
        """Upsert and delete (by number or ``phone_number_id``) in one transaction;
        returns how many rows were deleted."""
        ...

    def prune_calls(self, ended_before: float) -> int: ...

    def open_writer(self) -> BatchConn:
        """A connection for the call-record writer thread (opened in that thread)."""
        ...

    def close(self) -> None:
        """Close every connection but the writer's; later use raises StoreError."""
        ...
