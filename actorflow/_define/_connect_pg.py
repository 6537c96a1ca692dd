"""PostgreSQL connectors (the extra ``postgres``: psycopg 3): ``af.PostgresSink`` and ``af.PostgresSource``.

**The sink** writes each transaction with ``COPY`` on its own connection, inside a database
transaction that ``prepare`` closes with ``PREPARE TRANSACTION`` (PostgreSQL's two-phase commit, as
Flink's exactly-once JDBC sink uses XA). Why not rows and token in one ordinary transaction: its
commit would have to come either before the checkpoint is durable (a crash then leaves rows whose
items the resumed run delivers again: duplicates) or after it (a crash then loses rows whose
items are before the checkpoint), unless every row were written twice, to a staging table and
then to the table. A prepared transaction is durable on the server yet invisible, and can be
committed from any session later: exactly what the checkpoint's token must name. So:

- ``begin``: a token (the prepared transaction's name, ``actorflow:<table>:<uuid>``);
- ``run``: rows wait in memory; every ``FLUSH_ROWS`` they are copied (``COPY``) in a thread. The
  first write connects and rolls back the prepared transactions of this table's sink that no
  checkpoint holds (left by a crash), after the restored tokens were committed;
- ``prepare`` (while every actor is parked) closes the transaction; ``finish_prepare`` (after the
  snapshot, before the checkpoint is written) copies the rest, inserts the token into
  ``actorflow_commits`` in the same transaction, then ``PREPARE TRANSACTION``. Writes of the next
  transaction wait for it (one thread call at a time on the data connection);
- ``commit``: ``COMMIT PREPARED``; when the server no longer knows the name, the token in
  ``actorflow_commits`` says it was committed (idempotent); without it the rows are lost and the
  commit fails, naming the table.

The server needs ``max_prepared_transactions`` of at least 1 (PostgreSQL's default is 0): the sink
refuses to start without it, saying so.

**The source** reads ``SELECT * FROM (<query>) q WHERE q.<key> > <last key> ORDER BY q.<key>``
page by page; the last key it gave is its cursor. Keys must be unique (a repeated key is refused).

Driver calls run in worker threads (``trio.to_thread``), never in the trio loop, except the
sink's ``abort`` and ``close`` at the run's end. psycopg is imported when a connector first
connects: ``import actorflow`` never loads it.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import trio

from .._base import Cursor, load
from ._connect_files import FIRST
from ._connect_rows import PG_TYPES, Rows, RowSink, column_types, quote
from ._taskclass import Task

#: Rows kept in memory before they are copied into the open transaction.
FLUSH_ROWS = 20_000

#: Committed tokens kept per sink in ``actorflow_commits``.
KEEP_TOKENS = 100

#: Rows the source fetches per query.
PAGE_ROWS = 5_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS actorflow_commits (n bigserial PRIMARY KEY, sink text NOT NULL, "
    "token text NOT NULL, at timestamptz NOT NULL DEFAULT now(), UNIQUE (sink, token))"
)


def _psycopg(feature: str = "af.PostgresSink") -> Any:
    return load("psycopg", feature)


def _table_sql(name: str) -> str:
    """A table name as SQL: ``schema.table`` keeps its dot, each part quoted."""
    return ".".join(quote(part) for part in name.split("."))


class PostgresSink(RowSink):
    """Write each item as a row of the PostgreSQL table ``table`` (options ``dsn``, ``table``), exactly once.

    Wire its input ``item``: ``flow.add(af.PostgresSink, name="db", inputs={"item": "orders"})``.
    Items are dicts, attrs instances or dataclass instances; the first fixes the columns. A missing
    table is created from a record item's fields (``bigint``, ``text``, ``double precision``, …);
    dict rows need an existing table. Rows are copied with ``COPY`` into a transaction that each
    checkpoint prepares (``PREPARE TRANSACTION``) and commits once the checkpoint is durable, so
    they appear exactly once. Needs ``max_prepared_transactions`` ≥ 1 on the server. Only this sink
    may write to ``table`` while a run uses it (at start it rolls back the table's prepared
    transactions that no checkpoint holds). Install with ``pip install 'actorflow[postgres]'``.
    """

    dsn: str
    table: str

    def __init__(self) -> None:
        self._conn: Any = None
        self._admin: Any = None
        self._rows: Rows | None = None
        self._buffer: list[tuple[Any, ...]] = []
        self._token = ""
        self._in_txn = False
        self._ready = False
        #: Transactions ``prepare`` closed that are not prepared on the server yet, in order.
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] = []
        #: One thread call at a time on the data connection, so a transaction's rows never join the previous one.
        self._lock = trio.Lock()

    async def _call(self, fn: Any = None, *args: Any) -> None:
        """In a worker thread, one at a time: prepare closed transactions on the server (in order), then ``fn``."""
        async with self._lock:
            await trio.to_thread.run_sync(self._work, fn, args)

    # -- the transaction -----------------------------------------------------------------------------

    def begin(self) -> None:
        """Open a transaction: a token (the name it will be prepared under) and an empty buffer."""
        self._buffer = []
        self._token = f"actorflow:{self.table[:100]}:{uuid.uuid4().hex}"

    async def run(self, item: Any) -> None:
        """Add one item's row to the open transaction (copied every ``FLUSH_ROWS`` rows)."""
        rows = self._rows
        if rows is None:
            rows = self._rows = Rows(item, f"PostgresSink {self.table!r}")
        self._buffer.append(rows.row(item))
        if len(self._buffer) >= FLUSH_ROWS:
            buffer, self._buffer = self._buffer, []
            await self._call(self._copy, buffer)


    async def commit(self, token: Any) -> None:
        """``COMMIT PREPARED`` (once: a token already committed is recognised)."""
        await trio.to_thread.run_sync(self._commit, str(token))

    def abort(self, token: Any) -> None:
        """Roll back the open transaction (*token* None, or not prepared on the server yet) or a prepared one."""
        try:
            pending = any(p[0] == token for p in self._pending)
            self._pending = [p for p in self._pending if p[0] != token]
            if token is None or pending:
                self._buffer = []
                if self._conn is not None and self._in_txn:
                    self._conn.execute("ROLLBACK")
                    self._in_txn = False
            elif self._admin is not None:
                self._admin.execute(_sql().SQL("ROLLBACK PREPARED {}").format(_sql().Literal(str(token))))
        except _psycopg().Error:
            pass  # gone already: nothing to roll back

    def close(self) -> None:
        """Close both connections (the run ended)."""
        for conn in (self._conn, self._admin):
            if conn is not None:
                conn.close()
        self._conn = self._admin = None

    # -- in a worker thread --------------------------------------------------------------------------

    def _connect(self) -> None:
        psycopg = _psycopg()
        admin = self._admin if self._admin is not None else psycopg.connect(self.dsn, autocommit=True)
        try:
            allowed = int(admin.execute("SHOW max_prepared_transactions").fetchone()[0])
            if allowed < 1:
                raise RuntimeError(
                    "PostgresSink needs prepared transactions, but the server has max_prepared_transactions = 0: "
                    "set it to at least 1 (e.g. 10) in postgresql.conf and restart the server"
                )
            admin.execute(_SCHEMA)
            pattern = f"actorflow:{self.table[:100]}:%"
            stale = admin.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE %s AND database = "
                                  "current_database()", (pattern,)).fetchall()
            for (gid,) in stale:  # after the restored commits: prepared transactions no checkpoint holds
                admin.execute(_sql().SQL("ROLLBACK PREPARED {}").format(_sql().Literal(gid)))
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        except BaseException:
            admin.close()
            self._admin = None
            raise
        self._admin = admin

    def _admin_conn(self) -> Any:
        if self._admin is None:  # a commit of restored tokens comes before the first begin
            self._admin = _psycopg().connect(self.dsn, autocommit=True)
            self._admin.execute(_SCHEMA)
        return self._admin

    def _ensure_table(self, rows: Rows) -> None:
        admin = self._admin
        found = admin.execute("SELECT to_regclass(%s)", (_table_sql(self.table),)).fetchone()[0]
        if found is None:
            if rows.record is None:
                raise LookupError(f"PostgresSink: table {self.table!r} does not exist; create it, or send attrs or "
                                  "dataclass items (a table is made from their fields)")
            cols = ", ".join(f"{quote(n)} {t}" for n, t in column_types(rows, PG_TYPES, "text"))
            admin.execute(f"CREATE TABLE IF NOT EXISTS {_table_sql(self.table)} ({cols})")

    def _work(self, fn: Any, args: tuple[Any, ...]) -> None:
        if self._conn is None:
            self._connect()  # the first write: after the restored commits
        while self._pending:
            token, rows = self._pending[0]
            self._copy(rows)
            self._prepare(token)
            self._pending.pop(0)
        if fn is not None:
            fn(*args)

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        """``COPY`` rows into the open transaction (begun here when it is not yet)."""
        if not rows:
            return
        assert self._rows is not None
        if not self._ready:
            self._ensure_table(self._rows)
            self._ready = True
        conn = self._conn
        if not self._in_txn:
            conn.execute("BEGIN")
            self._in_txn = True
        cols = ", ".join(quote(c) for c in self._rows.columns)
        with conn.cursor() as cur, cur.copy(f"COPY {_table_sql(self.table)} ({cols}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write(row)

    def _prepare(self, token: str) -> None:
        conn = self._conn
        if not self._in_txn:
            conn.execute("BEGIN")
        self._in_txn = False
        try:
            conn.execute("INSERT INTO actorflow_commits (sink, token) VALUES (%s, %s)", (self.table, token))
            conn.execute(_sql().SQL("PREPARE TRANSACTION {}").format(_sql().Literal(token)))
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _commit(self, token: str) -> None:
        psycopg = _psycopg()
        admin = self._admin_conn()
        try:
            admin.execute(_sql().SQL("COMMIT PREPARED {}").format(_sql().Literal(token)))
        except psycopg.errors.UndefinedObject:
            done = admin.execute("SELECT 1 FROM actorflow_commits WHERE sink = %s AND token = %s",
                                 (self.table, token)).fetchone()
            if done is None:
                raise LookupError(f"PostgresSink: transaction {token!r} of table {self.table!r} was neither committed "
                                  "nor kept prepared (rolled back by hand, or another database?)") from None
            return
        admin.execute("DELETE FROM actorflow_commits WHERE sink = %s AND n <= (SELECT max(n) FROM actorflow_commits "
                      "WHERE sink = %s) - %s", (self.table, self.table, KEEP_TOKENS))


def _fetch(conn: Any, query: str, last: Any) -> list[Any]:
    """One page of the source's query (in a worker thread)."""
    rows: list[Any] = conn.execute(query, {"last": last, "limit": PAGE_ROWS}).fetchall()
    return rows


def _sql() -> Any:
    return load("psycopg.sql", "af.PostgresSink")


class PostgresSource(Task):
    """The rows of a query, in key order, as dicts of column → value (options ``dsn``, ``query``, ``key``).

    The query is read page by page, ``PAGE_ROWS`` rows at a time, as ``SELECT * FROM (query) q WHERE
    q.key > last ORDER BY q.key``: the last key given is the cursor, so a resumed run asks for the
    rows after it and rows inserted meanwhile with larger keys are read too. ``key`` names a
    column whose values are unique and ordered (an id, a timestamp without repeats); a repeated key
    is refused. The query may contain ``%`` (``LIKE 'a%'``): it is sent as it is.
    """

    kind: ClassVar[str] = "source"

    dsn: str
    query: str
    #: An option (the issue's contract name) that shadows the ``key`` setting, a ClassVar of af.Task.
    key: str  # type: ignore[misc,assignment]

    def __init__(self) -> None:
        #: (item number, key) of the last items given: the checkpoint's position is looked up here.
        self._keys: collections.deque[tuple[int, Any]] = collections.deque(maxlen=4096)
        self._start: tuple[int, Any, int] = (0, None, 0)
        self._restored: dict[str, Any] | None = None

    def position(self, count: int) -> dict[str, Any] | None:
        """The last key before item *count* (looked up among the items given lately)."""
        if count == 0:
            return None
        for n, key in reversed(self._keys):
            if n == count - 1:
                return {"count": count, "key": key}
        if self._restored is not None and int(self._restored["count"]) == count:
            return self._restored
        raise RuntimeError(f"PostgresSource: no key recorded for item {count - 1}; its position cannot be saved")

    def resume_from(self, count: int, restored: dict[str, Any] | None) -> None:
        """Plan the query's start for item *count*: after a key known for it, or skipping rows."""
        self._restored = restored
        known = {n: k for n, k in self._keys}
        if count == 0:
            self._start = (0, None, 0)
        elif count - 1 in known:
            self._start = (count, known[count - 1], 0)
        elif restored is not None and int(restored["count"]) <= count:
            self._start = (int(restored["count"]), restored["key"], count - int(restored["count"]))
        else:
            self._start = (0, None, count)

    async def run(self, cursor: Cursor = FIRST) -> AsyncIterator[dict[str, Any]]:
        """The rows from item *cursor* on."""
        first, last, skip = self._start
        if first + skip != cursor:
            first, last, skip = 0, None, cursor
        psycopg = _psycopg("af.PostgresSource")
        rows_mod = load("psycopg.rows", "af.PostgresSource")
        conn = await trio.to_thread.run_sync(lambda: psycopg.connect(self.dsn, autocommit=True,
                                                                     row_factory=rows_mod.dict_row))
        inner = self.query.strip().rstrip(";").replace("%", "%%")
        key = quote(self.key)
        after = f"SELECT * FROM ({inner}) AS q WHERE q.{key} > %(last)s ORDER BY q.{key} LIMIT %(limit)s"
        start = f"SELECT * FROM ({inner}) AS q ORDER BY q.{key} LIMIT %(limit)s"  # params always: %% is one %
        n = first
        try:
            while True:
                page = await trio.to_thread.run_sync(_fetch, conn, start if last is None else after, last)
                for row in page:
                    if self.key not in row:
                        raise LookupError(f"PostgresSource: the query has no column {self.key!r} (key)")
                    value = row[self.key]
                    if last is not None and not value > last:
                        raise ValueError(f"PostgresSource: key {self.key!r} repeats or goes back ({value!r} after "
                                         f"{last!r}); the key must be unique")
                    last = value
                    self._keys.append((n, value))
                    n += 1
                    if skip:
                        skip -= 1
                        continue
                    yield row
                if len(page) < PAGE_ROWS:
                    return
        finally:
            conn.close()
