"""Connector speed: rows into PostgreSQL through af.PostgresSink, a JSON-lines file through af.JsonLinesSource.

1. ``ROWS`` rows (id, name, amount) written to a PostgreSQL 15 table on a throwaway local server
   (``tests/pg.py``): through actorflow (a source of dicts → ``af.PostgresSink``, a store with a
   checkpoint every second, so every second's rows are one prepared and committed transaction),
   against a hand-written psycopg loop in the same process run (``COPY ... FROM STDIN`` with one
   ``write_row`` per row, a commit every 100,000 rows): ``postgres_sink_ratio`` (goal >= 0.8).
   Each side writes into a fresh table; the better of ``--repeat`` runs counts.
2. A JSON-lines file of ``--mb`` megabytes (objects with an int, a string and a float) read
   through actorflow (``af.JsonLinesSource`` → a collector summing a field) against a plain loop
   (``for line in file: json.loads(line)`` summing the same field): ``jsonl_source_ratio``
   (goal >= 0.7).

Usage: ``python benchmarks/connectors.py [--quick] [--rows N] [--mb N]``. The last line printed
is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

import actorflow as af
from tests import pg

TABLE_SQL = "CREATE TABLE {} (id bigint, name text, amount double precision)"
PER_TRANSACTION = 100_000


def copy_loop(dsn: str, rows: int) -> float:
    """The hand-written baseline: psycopg COPY, write_row per row, a commit every 100,000 rows."""
    with psycopg.connect(dsn) as conn:
        conn.execute(TABLE_SQL.format("plain"))
        conn.commit()
        t0 = time.perf_counter()
        done = 0
        while done < rows:
            end = min(rows, done + PER_TRANSACTION)
            with conn.cursor() as cur, cur.copy("COPY plain (id, name, amount) FROM STDIN") as copy:
                for i in range(done, end):
                    copy.write_row((i, f"name {i}", i * 0.5))
            conn.commit()
            done = end
        took = time.perf_counter() - t0
        assert conn.execute("SELECT count(*) FROM plain").fetchone() == (rows,)
    return took


def sink_flow() -> af.Flow:
    flow = af.Flow("pg_bench")

    @flow.source
    def rows(n: int = 0) -> af.Stream[dict]:  # type: ignore[type-arg]  # a plain dict: a cheap check per item
        for i in range(n):
            yield {"id": i, "name": f"name {i}", "amount": i * 0.5}

    flow.add(af.PostgresSink, name="db", inputs={"item": "rows"})
    return flow


def through_actorflow(dsn: str, rows: int, work: Path, table: str) -> float:
    with psycopg.connect(dsn) as conn:
        conn.execute(TABLE_SQL.format(table))
    store = work / f"store-{table}"
    t0 = time.perf_counter()
    af.run(sink_flow(), {"rows": {"n": rows}, "db": {"dsn": dsn, "table": table}}, store=store,
           checkpoint_every=1.0, cache=False)
    took = time.perf_counter() - t0
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()
        missing = conn.execute(f"SELECT i FROM generate_series(0, {rows - 1}) i WHERE NOT EXISTS (SELECT 1 FROM "
                               f"{table} WHERE id = i) LIMIT 5").fetchall()
        assert found == (rows, rows), f"{table}: {found} rows, {rows} written; missing {missing}"
    shutil.rmtree(store)
    return took


def postgres(rows: int, repeat: int, work: Path) -> dict[str, Any]:
    server = pg.start()
    try:
        plain, flow = [], []
        for r in range(repeat):
            dsn = server.create_database(f"bench_{r}")
            plain.append(copy_loop(dsn, rows))
            flow.append(through_actorflow(dsn, rows, work, "flowed"))
        best_plain, best_flow = min(plain), min(flow)
        return {
            "postgres_rows": rows,
            "postgres_copy_loop_rows_per_s": round(rows / best_plain),
            "postgres_sink_rows_per_s": round(rows / best_flow),
            "postgres_sink_ratio": round(best_plain / best_flow, 3),
        }
    finally:
        server.stop()


def write_jsonl(path: Path, megabytes: float) -> int:
    target = int(megabytes * 1_000_000)
    n = size = 0
    with open(path, "w") as f:
        while size < target:
            chunk = "".join(json.dumps({"id": i, "name": f"customer {i % 977}", "amount": i * 0.25}) + "\n"
                            for i in range(n, n + 10_000))
            f.write(chunk)
            size += len(chunk)
            n += 10_000
    return n


def plain_read(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    total = 0
    loads = json.loads
    with open(path, "rb") as f:
        for line in f:
            total += loads(line)["id"]
    return time.perf_counter() - t0, total


def source_flow() -> af.Flow:
    flow = af.Flow("jsonl_bench")
    flow.add(af.JsonLinesSource, name="src")

    @flow.collector(init=0)
    def total(acc: int, src: Any) -> int:
        return acc + src["id"]  # type: ignore[no-any-return]

    return flow


def flowed_read(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = af.run(source_flow(), {"src": {"path": str(path)}}, cache=False)
    return time.perf_counter() - t0, int(result["total"])


def jsonl(megabytes: float, repeat: int, work: Path) -> dict[str, Any]:
    path = work / "big.jsonl"
    n = write_jsonl(path, megabytes)
    plain, flow = [], []
    for _ in range(repeat):
        took, total = plain_read(path)
        plain.append(took)
        took2, total2 = flowed_read(path)
        flow.append(took2)
        assert total == total2 == n * (n - 1) // 2
    size = path.stat().st_size
    return {
        "jsonl_mb": round(size / 1e6, 1),
        "jsonl_lines": n,
        "jsonl_plain_mb_per_s": round(size / 1e6 / min(plain), 1),
        "jsonl_source_mb_per_s": round(size / 1e6 / min(flow), 1),
        "jsonl_source_ratio": round(min(plain) / min(flow), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows, mb, repeat = (20_000, 2.0, 1) if args.quick else (args.rows, args.mb, args.repeat)
    work = Path(tempfile.mkdtemp(prefix="actorflow-bench-"))
    try:
        figures = {**postgres(rows, repeat, work), **jsonl(mb, repeat, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
