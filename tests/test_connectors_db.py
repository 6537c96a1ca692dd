"""The database connectors against real SQLite files and a real PostgreSQL 15 server (tests/pg.py)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

import actorflow as af

#: Test switch: the `rows` task raises KeyboardInterrupt at item number CTL["interrupt_at"].
CTL: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _clean() -> None:
    CTL.clear()


@attrs.frozen
class Sale:
    id: int
    item: str
    price: float
    note: str | None


@dataclasses.dataclass
class Point:
    x: int
    y: int


def sink_flow(sink: type[af.Task], n: int, kind: str = "record") -> af.Flow:
    flow = af.Flow("db")

    @flow.source(batch_size=16)
    def numbers(n: int = n) -> af.Stream[int]:
        yield from range(n)

    @flow.task(batch_size=16, capacity=32)
    def rows(numbers: int, seq: af.Seq) -> Any:
        if seq == CTL.get("interrupt_at"):
            raise KeyboardInterrupt
        if kind == "dict":
            return {"id": numbers, "item": f"it%{numbers}"}
        if kind == "point":
            return Point(numbers, -numbers)
        return Sale(numbers, f"item {numbers}", numbers / 2, None if numbers % 2 else "even")

    flow.add(sink, name="out", inputs={"item": "rows"})
    return flow


# -- SQLite ------------------------------------------------------------------------------------------


def sqlite_rows(path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_sqlite_sink_creates_the_table_from_the_record_type(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    af.run(sink_flow(af.SqliteSink, 500), {"out": {"path": str(db), "table": "sales"}})
    assert sqlite_rows(db, "SELECT count(*), count(DISTINCT id), sum(price) FROM sales") == [(500, 500, 62375.0)]
    assert sqlite_rows(db, "SELECT * FROM sales WHERE id IN (2, 3)") == [
        (2, "item 2", 1.0, "even"), (3, "item 3", 1.5, None)]
    (sql,) = sqlite_rows(db, "SELECT sql FROM sqlite_master WHERE name = 'sales'")[0]
    assert sql == 'CREATE TABLE "sales" ("id" INTEGER, "item" TEXT, "price" REAL, "note" TEXT)'
    af.run(sink_flow(af.SqliteSink, 5, "point"), {"out": {"path": str(db), "table": "points"}})
    assert sqlite_rows(db, "SELECT * FROM points ORDER BY x") == [(i, -i) for i in range(5)]


def test_sqlite_sink_writes_dicts_into_an_existing_table_and_refuses_a_missing_one(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    with pytest.raises(af.TaskFailed, match="table 'kv' does not exist"):
        af.run(sink_flow(af.SqliteSink, 10, "dict"), {"out": {"path": str(db), "table": "kv"}})
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, item TEXT, extra TEXT DEFAULT 'd')")
    af.run(sink_flow(af.SqliteSink, 10, "dict"), {"out": {"path": str(db), "table": "kv"}})
    assert sqlite_rows(db, "SELECT * FROM kv WHERE id = 3") == [(3, "it%3", "d")]


async def test_sqlite_sink_after_an_interrupt_writes_every_row_once(tmp_path: Path) -> None:
    db, store = tmp_path / "o.db", tmp_path / "store"
    options = {"out": {"path": str(db), "table": "sales"}}
    CTL["interrupt_at"] = 1500
    with pytest.raises(KeyboardInterrupt):
        await af.run_async(sink_flow(af.SqliteSink, 3000), options, store=store, checkpoint_every=0.01)
    first = sqlite_rows(db, "SELECT count(*) FROM sales")[0][0]
    assert 0 < first <= 1500
    CTL.clear()
    await af.run_async(sink_flow(af.SqliteSink, 3000), options, store=store, resume=True)
    assert sqlite_rows(db, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM sales") == [
        (3000, 3000, 0, 2999)]
    assert sqlite_rows(db, "SELECT count(*) FROM sales__actorflow_staged") == [(0,)]


async def test_sqlite_commit_is_idempotent_and_an_unknown_token_is_refused(tmp_path: Path) -> None:
    sink = af.SqliteSink()
    sink.path, sink.table = str(tmp_path / "o.db"), "points"
    sink.begin()
    for i in range(3):
        await sink.run(Point(i, i))
    token = sink.prepare()  # closes the transaction (quick: every actor is parked then)
    await sink.finish_prepare(token)  # makes it durable
    assert sqlite_rows(tmp_path / "o.db", "SELECT count(*) FROM points") == [(0,)]  # prepared: not visible
    await sink.commit(token)
    await sink.commit(token)  # again, as a resume does
    assert sqlite_rows(tmp_path / "o.db", "SELECT count(*) FROM points") == [(3,)]
    with pytest.raises(LookupError, match="neither committed nor kept"):
        await sink.commit("not-a-token")
    sink.close()


def test_items_with_other_columns_are_failed_items(tmp_path: Path) -> None:
    flow = af.Flow("mixed")

    @flow.source
    def rows() -> af.Stream[dict[str, Any]]:
        yield {"id": 1, "item": "a"}
        yield {"id": 2}

    flow.add(af.SqliteSink, name="out", inputs={"item": "rows"})
    with sqlite3.connect(tmp_path / "o.db") as conn:
        conn.execute("CREATE TABLE t (id INTEGER, item TEXT)")
    with pytest.raises(af.TaskFailed, match=r"an item has the columns \['id'\], the table gets \['id', 'item'\]"):
        af.run(flow, {"out": {"path": str(tmp_path / "o.db"), "table": "t"}})


# -- PostgreSQL --------------------------------------------------------------------------------------


def pg_rows(dsn: str, sql: str) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_postgres_sink_creates_the_table_and_writes_each_row_once(pg_dsn: str) -> None:
    af.run(sink_flow(af.PostgresSink, 5000), {"out": {"dsn": pg_dsn, "table": "sales"}}, store=None)
    assert pg_rows(pg_dsn, "SELECT count(*), count(DISTINCT id), sum(price) FROM sales") == [(5000, 5000, 6248750.0)]
    assert pg_rows(pg_dsn, "SELECT * FROM sales WHERE id IN (2, 3) ORDER BY id") == [
        (2, "item 2", 1.0, "even"), (3, "item 3", 1.5, None)]
    types = pg_rows(pg_dsn, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
                            "'sales' ORDER BY ordinal_position")
    assert types == [("id", "bigint"), ("item", "text"), ("price", "double precision"), ("note", "text")]
    assert pg_rows(pg_dsn, "SELECT count(*) FROM pg_prepared_xacts") == [(0,)]


def test_postgres_sink_writes_dicts_into_an_existing_table(pg_dsn: str) -> None:
    with pytest.raises(af.TaskFailed, match="table 'kv' does not exist"):
        af.run(sink_flow(af.PostgresSink, 10, "dict"), {"out": {"dsn": pg_dsn, "table": "kv"}})
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE kv (id int PRIMARY KEY, item text, at timestamptz DEFAULT now())")
    af.run(sink_flow(af.PostgresSink, 10, "dict"), {"out": {"dsn": pg_dsn, "table": "kv"}})
    assert pg_rows(pg_dsn, "SELECT id, item FROM kv WHERE id = 3") == [(3, "it%3")]


async def test_postgres_sink_after_an_interrupt_writes_every_row_once(pg_dsn: str, tmp_path: Path) -> None:
    store, options = tmp_path / "store", {"out": {"dsn": pg_dsn, "table": "sales"}}
    CTL["interrupt_at"] = 1500
    with pytest.raises(KeyboardInterrupt):
        await af.run_async(sink_flow(af.PostgresSink, 3000), options, store=store, checkpoint_every=0.01)
    assert 0 < pg_rows(pg_dsn, "SELECT count(*) FROM sales")[0][0] <= 1500
    CTL.clear()
    await af.run_async(sink_flow(af.PostgresSink, 3000), options, store=store, resume=True)
    assert pg_rows(pg_dsn, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM sales") == [
        (3000, 3000, 0, 2999)]
    assert pg_rows(pg_dsn, "SELECT count(*) FROM pg_prepared_xacts") == [(0,)]


async def test_postgres_sink_rolls_back_prepared_transactions_no_checkpoint_holds(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # what a SIGKILL after PREPARE TRANSACTION leaves
        conn.execute("CREATE TABLE points (x bigint, y bigint)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO points VALUES (99, 99)")
        conn.execute("PREPARE TRANSACTION 'actorflow:points:abandoned'")
    sink = af.PostgresSink()
    sink.dsn, sink.table = pg_dsn, "points"
    sink.begin()
    await sink.run(Point(1, 2))
    token = sink.prepare()  # closes the transaction (quick: every actor is parked then)
    await sink.finish_prepare(token)  # makes it durable
    assert pg_rows(pg_dsn, "SELECT gid FROM pg_prepared_xacts") == [(token,)]  # the abandoned one: rolled back
    assert pg_rows(pg_dsn, "SELECT count(*) FROM points") == [(0,)]  # prepared: invisible
    await sink.commit(token)
    await sink.commit(token)  # again, as a resume does: recognised from actorflow_commits
    assert pg_rows(pg_dsn, "SELECT * FROM points") == [(1, 2)]
    with pytest.raises(LookupError, match="neither committed nor kept prepared"):
        await sink.commit("actorflow:points:unknown")
    sink.close()


def source_flow() -> af.Flow:
    flow = af.Flow("pgsrc")
    flow.add(af.PostgresSource, name="src")

    @flow.task(batch_size=16, capacity=32)
    def check(src: dict[str, Any], seq: af.Seq) -> int:
        if seq == CTL.get("interrupt_at"):
            raise KeyboardInterrupt
        return int(src["id"])

    @flow.collector(init=[])
    def ids(acc: list[int], check: int) -> list[int]:
        return [*acc, check]

    return flow


async def test_postgres_source_reads_in_key_order_and_resumes_after_the_last_key(
    pg_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE ev (id int PRIMARY KEY, tag text)")
        conn.execute("INSERT INTO ev SELECT i, CASE WHEN i % 3 = 0 THEN 'x%' ELSE 'y' END FROM "
                     "generate_series(20000, 1, -1) i")
    options = {"src": {"dsn": pg_dsn, "query": "SELECT id, tag FROM ev WHERE tag LIKE 'x%'", "key": "id"}}
    wanted = [i for i in range(1, 20001) if i % 3 == 0]
    result = await af.run_async(source_flow(), options)
    assert result["ids"] == wanted  # key order, a query with % in it
    store = tmp_path / "store"
    CTL["interrupt_at"] = 3000
    with pytest.raises(KeyboardInterrupt):
        await af.run_async(source_flow(), options, store=store)
    CTL.clear()
    with psycopg.connect(pg_dsn) as conn:  # rows with larger keys, added before the resume: read too
        conn.execute("INSERT INTO ev VALUES (30000, 'x%'), (30003, 'x%')")
    result = await af.run_async(source_flow(), options, store=store, resume=True)
    assert result["ids"] == [*wanted, 30000, 30003]


def test_postgres_source_refuses_a_key_that_repeats(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE ev (id int, tag text)")
        conn.execute("INSERT INTO ev VALUES (1, 'a'), (2, 'b'), (2, 'c')")
    with pytest.raises(af.TaskFailed, match="key 'id' repeats or goes back"):
        af.run(source_flow(), {"src": {"dsn": pg_dsn, "query": "SELECT * FROM ev", "key": "id"}})


# -- the protocol the database sinks rely on ---------------------------------------------------------


def test_an_async_prepare_is_refused_naming_finish_prepare() -> None:
    class Slow(af.TransactionalSink):
        def run(self, numbers: int) -> None:
            pass

        async def prepare(self) -> str:  # type: ignore[override]
            return "t"

    flow = af.Flow("slow")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(3)

    flow.add(Slow, name="slow")
    with pytest.raises(af.TaskFailed, match=r"prepare\(\) must be a plain method .* finish_prepare\(\)"):
        af.run(flow)


def test_on_error_given_to_flow_add_is_the_task_s_policy_and_not_for_a_nested_flow() -> None:
    flow = af.Flow("outer")
    task = flow.add(af.LinesSource, name="lines", on_error=af.Retry(attempts=2))
    assert task.settings.on_error == af.Retry(attempts=2)
    with pytest.raises(af.DefinitionError, match="on_error is for a task class, not a nested flow"):
        flow.add(af.Flow("inner"), name="inner", on_error=af.DeadLetter())
