"""``af.SqliteSink``: rows into an SQLite table, exactly once, the token in the rows' transaction.

Each transaction's rows go to a staging table ``<table>__actorflow_staged`` under the
transaction's token, and ``prepare`` records the token as *prepared* in ``actorflow_commits``, in
the same SQLite transaction as the last of its rows. ``commit(token)`` then moves the token's rows
into the table, deletes them from staging and marks the token *committed*: one SQLite transaction,
so a crash leaves either all of it or none, and a second commit of the token finds it marked and
does nothing. Before the first write (after a resume committed the restored tokens) whatever is
still staged belongs to transactions no checkpoint holds: it is deleted.

``prepare`` only closes the transaction (every actor is parked then); ``finish_prepare`` stages
its last rows and records the token, in a worker thread, before the checkpoint is written.

Rows wait in memory until ``FLUSH_ROWS`` of them are staged in a short SQLite transaction of
their own; staged rows of a token never prepared are swept like the rest. Driver calls run in a
worker thread (``trio.to_thread``), one at a time, never in the trio loop, except ``abort``, which
the runtime calls as a plain function at a failed run's end.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import trio

from ._connect_rows import SQLITE_TYPES, Rows, RowSink, column_types, quote

#: Rows kept in memory before they are written to the staging table (in the open SQLite transaction).
FLUSH_ROWS = 20_000

#: Committed tokens kept per table in ``actorflow_commits`` (older ones are pruned).
KEEP_TOKENS = 100

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS actorflow_commits (n INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, "
    "token TEXT NOT NULL, state TEXT NOT NULL, UNIQUE (sink, token))"
)


class SqliteSink(RowSink):
    """Write each item as a row of the SQLite table ``table`` in the database file ``path``, exactly once.

    Wire its input ``item``: ``flow.add(af.SqliteSink, name="db", inputs={"item": "orders"})``,
    then ``--set db.path=out.db --set db.table=orders``. Items are dicts (keys are columns), attrs
    instances or dataclass instances (fields are columns); the first item fixes the columns. A
    missing table is created from a record item's fields (a column per field, typed from its
    annotation); dict rows need an existing table. Rows become visible once their checkpoint is
    durable (without a store: at the run's end). Only this sink may write to ``table`` while a run
    uses it; it also keeps ``<table>__actorflow_staged`` and the table ``actorflow_commits``.
    """

    path: str
    table: str

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._rows: Rows | None = None
        self._buffer: list[tuple[Any, ...]] = []
        self._token = ""
        self._swept = False
        self._ready = False
        #: Transactions ``prepare`` closed whose rows are not staged and recorded yet, in order.
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] = []
        #: One thread call at a time on the connection (a commit may come while ``run`` flushes).
        self._lock = trio.Lock()

    async def _call(self, fn: Any = None, *args: Any, writes: bool = True) -> None:
        """In a worker thread, one at a time: finish pending prepares (in order), then ``fn(*args)``.

        The first call that *writes* sweeps what no checkpoint holds (commits of restored tokens come first).
        """
        async with self._lock:
            await trio.to_thread.run_sync(self._work, fn, args, writes)

    # -- the transaction -----------------------------------------------------------------------------

    def begin(self) -> None:
        """Open a transaction: a new token, an empty buffer."""
        self._buffer = []
        self._token = uuid.uuid4().hex

    async def run(self, item: Any) -> None:
        """Add one item's row to the open transaction (staged every ``FLUSH_ROWS`` rows)."""
        rows = self._rows
        if rows is None:
            rows = self._rows = Rows(item, f"SqliteSink {self.table!r}")
        self._buffer.append(rows.row(item))
        if len(self._buffer) >= FLUSH_ROWS:
            buffer, self._buffer = self._buffer, []
            await self._call(self._stage, self._token, buffer)


    async def commit(self, token: Any) -> None:
        """Move the token's rows into the table and mark it committed (once: idempotent)."""
        await self._call(self._commit, str(token), writes=False)

    def abort(self, token: Any) -> None:
        """Drop the open transaction (*token* None) or a prepared one's staged rows."""
        self._pending = [p for p in self._pending if p[0] != token]
        db = self._db
        if token is None:
            self._buffer = []  # rows staged already are swept at the next run's first begin
            return
        if db is None:
            return
        with _transaction(db):
            if self._staged_exists(db):
                db.execute(f"DELETE FROM {quote(self._staging())} WHERE af_token = ?", (str(token),))
            db.execute("DELETE FROM actorflow_commits WHERE sink = ? AND token = ? AND state = 'prepared'",
                       (self.table, str(token)))

    def close(self) -> None:
        """Close the connection (the run ended)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- in the worker thread ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def _staging(self) -> str:
        return f"{self.table}__actorflow_staged"

    def _staged_exists(self, db: sqlite3.Connection) -> bool:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (self._staging(),)).fetchone() is not None

    def _sweep(self) -> None:
        db = self._connect()
        with _transaction(db):
            if self._staged_exists(db):
                db.execute(f"DELETE FROM {quote(self._staging())}")
            db.execute("DELETE FROM actorflow_commits WHERE sink = ? AND state = 'prepared'", (self.table,))

    def _columns(self, db: sqlite3.Connection, name: str) -> list[str]:
        return [r[1] for r in db.execute(f"PRAGMA table_info({quote(name)})")]

    def _ensure_tables(self, db: sqlite3.Connection, rows: Rows) -> None:
        """Create the table from a record's fields if it is missing, and the staging table beside it."""
        have = self._columns(db, self.table)
        if not have:
            if rows.record is None:
                raise LookupError(f"SqliteSink: table {self.table!r} does not exist in {self.path}; create it, or "
                                  "send attrs or dataclass items (a table is made from their fields)")
            cols = ", ".join(f"{quote(n)} {t}" for n, t in column_types(rows, SQLITE_TYPES, ""))
            db.execute(f"CREATE TABLE {quote(self.table)} ({cols})")
            have = rows.columns
        missing = [c for c in rows.columns if c not in have]
        if missing:
            raise LookupError(f"SqliteSink: table {self.table!r} in {self.path} has no column {missing}")
        if not self._staged_exists(db):
            cols = ", ".join(quote(c) for c in rows.columns)
            db.execute(f"CREATE TABLE {quote(self._staging())} AS SELECT '' AS af_token, {cols} "
                       f"FROM {quote(self.table)} WHERE 0")

    def _work(self, fn: Any, args: tuple[Any, ...], writes: bool) -> None:
        db = self._connect()
        if writes and not self._swept:  # after the restored commits, before any new row
            self._sweep()
            self._swept = True
        while self._pending:
            token, rows = self._pending[0]
            with _transaction(db):
                self._stage_rows(db, token, rows)
                db.execute("INSERT INTO actorflow_commits (sink, token, state) VALUES (?, ?, 'prepared')",
                           (self.table, token))
            self._pending.pop(0)
        if fn is not None:
            fn(*args)

    def _stage(self, token: str, rows: list[tuple[Any, ...]]) -> None:
        """Stage rows in a short SQLite transaction of their own (swept if their token is never prepared)."""
        db = self._connect()
        with _transaction(db):
            self._stage_rows(db, token, rows)

    def _stage_rows(self, db: sqlite3.Connection, token: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        assert self._rows is not None
        if not self._ready:
            self._ensure_tables(db, self._rows)
            self._ready = True
        cols = self._rows.columns
        names = ", ".join(["af_token", *map(quote, cols)])
        marks = ", ".join("?" * (len(cols) + 1))
        db.executemany(f"INSERT INTO {quote(self._staging())} ({names}) VALUES ({marks})", [(token, *r) for r in rows])

    def _commit(self, token: str) -> None:
        db = self._connect()
        with _transaction(db):
            found = db.execute("SELECT state FROM actorflow_commits WHERE sink = ? AND token = ?",
                               (self.table, token)).fetchone()
            if found is None:
                raise LookupError(f"SqliteSink: transaction {token!r} of table {self.table!r} in {self.path} was "
                                  "neither committed nor kept (the database was replaced or edited)")
            if found[0] != "prepared":
                return
            if self._staged_exists(db):
                cols = ", ".join(quote(c) for c in self._columns(db, self._staging()) if c != "af_token")
                db.execute(f"INSERT INTO {quote(self.table)} ({cols}) SELECT {cols} FROM "
                           f"{quote(self._staging())} WHERE af_token = ?", (token,))
                db.execute(f"DELETE FROM {quote(self._staging())} WHERE af_token = ?", (token,))
            db.execute("UPDATE actorflow_commits SET state = 'committed' WHERE sink = ? AND token = ?",
                       (self.table, token))
            db.execute("DELETE FROM actorflow_commits WHERE sink = ? AND state = 'committed' AND n <= "
                       "(SELECT max(n) FROM actorflow_commits WHERE sink = ?) - ?",
                       (self.table, self.table, KEEP_TOKENS))


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (``BEGIN IMMEDIATE``), committed, or rolled back on an error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
