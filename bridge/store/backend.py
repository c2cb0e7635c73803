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

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from bridge.store.records import NumberRecord
from bridge.store.writer import BatchConn

T = TypeVar("T")


class Tx(Protocol):
    """One transaction of :meth:`Backend.atomic` (``?``-marked SQL, as everywhere)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""
        ...


class Backend(Protocol):
    @property
    def label(self) -> str:
        """The database as logs may name it: a path, or a DSN without its password."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement."""
        ...

    def write_numbers(
        self,
        upserts: Sequence[NumberRecord],
        deletes: Sequence[str],
        also: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> int:
        """Upsert and delete (by number or ``phone_number_id``) in one transaction, with
        the statements ``also`` (e.g. the bus event announcing the change); returns how
        many rows were deleted."""
        ...

    def prune_calls(self, ended_before: float) -> int: ...

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run write statements in one transaction (all or nothing); their row counts.

        Synchronous, like number writes: for tables other than ``calls`` (webhook
        deliveries), written off the audio path."""
        ...

    def atomic(self, fn: Callable[[Tx], T], *, lock: int, timeout_s: float) -> T:
        """``fn`` in one write transaction, serialised with every other ``atomic`` of the
        same ``lock`` key in every process on the database (SQLite: ``BEGIN IMMEDIATE``
        serialises all writers; PostgreSQL: ``pg_advisory_xact_lock``).  Waits at most
        about ``timeout_s`` for the lock and the statements, then StoreError; ``fn``
        raising rolls everything back."""
        ...

    def open_writer(self) -> BatchConn:
        """A connection for the call-record writer thread (opened in that thread)."""
        ...

    def close(self) -> None:
        """Close every connection but the writer's; later use raises StoreError."""
        ...
