"""A pipeline for exactly-once tests: two transactional sinks behind a slowish task.

``numbers`` → ``square`` → ``out`` (``af.JsonLinesSink``, option ``path``) and ``rows``
(:class:`SqliteRows`, the SQLite sink shown in ``docs/durability.md``, option ``path``).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

import actorflow as af

flow = af.Flow("transactional")


@flow.source(batch_size=32)
def numbers(n: int = 2000) -> af.Stream[int]:
    yield from range(n)


@flow.task(capacity=64, batch_size=32)
def square(numbers: int, spin: float = 0.0) -> int:
    if spin:
        end = time.perf_counter() + spin
        while time.perf_counter() < end:
            pass
    return numbers * numbers


class SqliteRows(af.TransactionalSink):
    """Insert each item as a row of table ``rows``, exactly once.

    A transaction's items are kept in memory; ``prepare`` writes them to table ``staged`` under the
    transaction's token (one SQLite transaction); ``commit`` moves a token's staged rows into
    ``rows`` in one SQLite transaction, so doing it again finds nothing staged and changes nothing.
    """

    path: str  # an option (annotated class attribute)

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.swept = False

    def connection(self) -> sqlite3.Connection:
        if self.db is None:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("CREATE TABLE IF NOT EXISTS rows (value INTEGER)")
            self.db.execute("CREATE TABLE IF NOT EXISTS staged (token TEXT, value INTEGER)")
        return self.db

    def begin(self) -> None:
        db = self.connection()
        if not self.swept:  # the first begin comes after the restored tokens were committed:
            self.swept = True  # what is still staged belongs to transactions no checkpoint holds
            db.execute("DELETE FROM staged")
        self.pending: list[tuple[str, int]] = []
        self.token = uuid.uuid4().hex

    def run(self, square: int) -> None:
        self.pending.append((self.token, square))

    def prepare(self) -> str:
        with self.connection() as db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO staged VALUES (?, ?)", self.pending)
        return self.token

    def commit(self, token: Any) -> None:
        db = self.connection()
        with db:  # one SQLite transaction: a second commit of the token finds nothing staged
            db.execute("BEGIN")
            db.execute("INSERT INTO rows SELECT value FROM staged WHERE token = ?", (token,))
            db.execute("DELETE FROM staged WHERE token = ?", (token,))

    def abort(self, token: Any) -> None:
        if token is None:
            self.pending = []
        else:
            self.connection().execute("DELETE FROM staged WHERE token = ?", (token,))


flow.add(af.JsonLinesSink, name="out", inputs={"item": "square"})
flow.add(SqliteRows, name="rows")
