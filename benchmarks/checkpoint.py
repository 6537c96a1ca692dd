"""Checkpoint cost: throughput with and without periodic checkpoints, and the cost of one big one.

1. N integers through source -> task (x*2+1) -> collector (sum), once with no store and once with
   a store and a checkpoint every second (``ratio_checkpointed_vs_plain``; target >= 0.9). The
   product cache is off here (``cache=False``): ``benchmarks/cache.py`` measures it.
2. A run whose collector is held back while 100,000 items queue in its mailbox: the time to write
   one checkpoint holding them (pause + encode + LMDB write), then the time to resume from it
   (open the store, decode, restore every mailbox) and the time to finish the resumed run.
3. Slow handlers (``tests/pipelines/slow.py``: a task spinning 2 ms of CPU per item): the largest
   gap between checkpoints asked for every 0.1 s (``max_checkpoint_gap_s``), the time a checkpoint
   holding a CPU-bound run takes (``slow_checkpoint_seconds``), and the time from SIGINT to the
   exit of an ``actorflow run`` process (``interrupt_latency_s``; it exits 130 after its final
   checkpoint).
4. Sinks writing every item to SQLite, at one checkpoint per second: a transactional sink
   (``af.TransactionalSink``: rows kept in memory, written at ``prepare`` under the transaction's
   token, made visible by ``commit`` recording the token) against a plain function sink (one
   INSERT per item, an SQLite commit every 10,000 rows): ``transactional_sink_ratio`` (goal >= 0.85).

Usage: ``python benchmarks/checkpoint.py [--quick]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af

QUEUED = 100_000
ROOT = Path(__file__).resolve().parent.parent
SLOW = ROOT / "tests" / "pipelines" / "slow.py"
sys.path.insert(0, str(SLOW.parent))
import slow  # noqa: E402


def numbers_and_f(name: str) -> af.Flow:
    """A flow of a source of ints and a task ``f`` on them: what the benchmarks add their ends to."""
    flow = af.Flow(name)

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def f(numbers: int) -> int:
        return numbers * 2 + 1

    return flow


def throughput_flow() -> af.Flow:
    flow = numbers_and_f("ckpt-throughput")

    @flow.collector(init=0)
    def total(acc: int, f: int) -> int:
        return acc + f

    return flow


HOLD = {"on": True}
RELEASE: dict[str, trio.Event] = {}


def queued_flow() -> af.Flow:
    flow = af.Flow("ckpt-queued")

    @flow.source
    def numbers(n: int = QUEUED) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    async def ready() -> bool:
        if HOLD["on"]:
            RELEASE["event"] = trio.Event()
            await RELEASE["event"].wait()
        return True

    @flow.collector(init=0, capacity=QUEUED + 1024)
    def total(acc: int, numbers: int, ready: bool) -> int:
        return acc + numbers

    return flow


def measure_throughput(n: int, store: Path | None, every: float) -> tuple[float, int]:
    flow = throughput_flow()
    written = [0]

    async def main() -> None:
        kwargs = {} if store is None else {"store": store, "checkpoint_every": every, "cache": False}
        async with af.open_run(flow, {"numbers": {"n": n}}, **kwargs) as run:
            events = run.events(maxlen=16)
            result = await run.result()
        assert result["total"] == n * n
        async for e in events:
            if isinstance(e, af.events.CheckpointWritten) and not e.final:
                written[0] += 1

    t0 = time.perf_counter()
    trio.run(main)
    return n / (time.perf_counter() - t0), written[0]


class SqliteSink(af.TransactionalSink):
    """Exactly-once rows: written at ``prepare`` with their token, visible once the token is committed."""

    path: str

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.rows: list[tuple[str, int]] = []
        self.token = ""

    def connection(self) -> sqlite3.Connection:
        if self.db is None:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("CREATE TABLE IF NOT EXISTS rows (token TEXT, value INTEGER)")
            self.db.execute("CREATE TABLE IF NOT EXISTS committed (token TEXT PRIMARY KEY)")
        return self.db

    def begin(self) -> None:
        self.rows = []
        self.token = f"{time.time_ns()}-{id(self)}"

    def run(self, f: int) -> None:
        self.rows.append((self.token, f))

    def prepare(self) -> str:
        with self.connection() as db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO rows VALUES (?, ?)", self.rows)
        return self.token

    def commit(self, token: object) -> None:
        self.connection().execute("INSERT OR IGNORE INTO committed VALUES (?)", (token,))

    def abort(self, token: object) -> None:
        self.connection().execute("DELETE FROM rows WHERE token = ?", (token if token is not None else self.token,))


def sink_flow(transactional: bool, db: sqlite3.Connection | None) -> af.Flow:
    flow = numbers_and_f("ckpt-sink")
    if transactional:
        flow.add(SqliteSink, name="rows")
    else:
        assert db is not None
        count = [0]
        insert = db.execute

        @flow.sink
        def rows(f: int) -> None:
            insert("INSERT INTO rows VALUES ('', ?)", (f,))
            count[0] += 1
            if count[0] % 10_000 == 0:
                db.commit()

    return flow


def measure_sinks(root: Path, n: int, every: float) -> tuple[float, float]:
    """Items/s of the transactional SQLite sink and of the plain function sink, both checkpointed."""
    rates = []
    for transactional in (True, False):
        path = root / f"sink-{transactional}-{time.time_ns()}.db"
        db = None if transactional else sqlite3.connect(path)
        if db is not None:
            db.execute("CREATE TABLE rows (token TEXT, value INTEGER)")
        flow = sink_flow(transactional, db)
        options = {"numbers": {"n": n}, **({"rows": {"path": str(path)}} if transactional else {})}
        t0 = time.perf_counter()
        af.run(flow, options, store=root / f"sink-store-{time.time_ns()}", checkpoint_every=every, cache=False)
        if db is not None:
            db.commit()
        rates.append(n / (time.perf_counter() - t0))
        with sqlite3.connect(path) as check:
            assert check.execute("SELECT count(*) FROM rows").fetchone()[0] == n
        if db is not None:
            db.close()
    return rates[0], rates[1]


def measure_big_checkpoint(root: Path) -> dict[str, float]:
    store = root / "queued"
    figures: dict[str, float] = {}

    async def cut() -> None:
        HOLD["on"] = True
        flow = queued_flow()
        with trio.CancelScope() as scope:
            async with af.open_run(flow, store=store, checkpoint_every=None, cache=False) as run:
                events = run.events()
                while len(run.runtime.mailboxes["total.numbers"][0]) < QUEUED:
                    await trio.sleep(0.01)
                t0 = time.perf_counter()
                await run.checkpoint_now()
                figures["checkpoint_100k_seconds"] = time.perf_counter() - t0
                info = None
                async for event in events:
                    if isinstance(event, af.events.CheckpointWritten):
                        info = event
                        break
                assert info is not None
                figures["checkpoint_100k_bytes"] = info.size_bytes
                figures["checkpoint_100k_pause_seconds"] = info.pause_seconds
                assert info.queued_items >= QUEUED
                scope.cancel()  # a crash right after the checkpoint

    async def resume() -> None:
        HOLD["on"] = False
        flow = queued_flow()
        t0 = time.perf_counter()
        async with af.open_run(flow, store=store, resume=True) as run:
            figures["resume_100k_seconds"] = time.perf_counter() - t0
            assert sum(len(b) for b, _, _ in run.runtime.mailboxes.values()) >= QUEUED
            result = await run.result()
        figures["resume_and_finish_seconds"] = time.perf_counter() - t0
        assert result["total"] == sum(range(QUEUED))

    trio.run(cut)
    trio.run(resume)
    return figures


def measure_slow_handler(root: Path, n: int) -> dict[str, float]:
    """Checkpoint cadence and cost while a 2 ms CPU-bound handler keeps the loop busy."""
    times: list[float] = []
    costs: list[float] = []

    async def go() -> None:
        async with af.open_run(slow.flow, {"numbers": {"n": n}}, store=root / "slow", checkpoint_every=0.1,
                               cache=False) as run:
            async for event in run.events():
                if isinstance(event, af.events.CheckpointWritten) and not event.final:
                    times.append(time.perf_counter())
                    costs.append(event.pause_seconds + event.write_seconds)
            await run.result()

    start = time.perf_counter()
    trio.run(go)
    marks = [start, *times]
    return {
        "max_checkpoint_gap_s": max(b - a for a, b in itertools.pairwise(marks)),
        "slow_checkpoint_seconds": max(costs),
        "slow_checkpoints": float(len(times)),
    }


def measure_interrupt(root: Path) -> float:
    """Seconds from SIGINT to the exit of a CLI run whose handler spins 2 ms per item."""
    store = root / "interrupt"
    cmd = [
        sys.executable, "-m", "actorflow", "run", f"{SLOW}:flow", "--store", str(store), "--checkpoint-every",
        "0.2s", "--set", "numbers.n=5000", "--json", "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:  # wait until it has a checkpoint: it is running the slow task
        try:
            with af.store.open_store(store, create=False) as st:
                if st.read_checkpoint() is not None:
                    break
        except af.StoreError:
            pass
        time.sleep(0.05)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 130:
        raise SystemExit(f"the interrupted run exited {proc.returncode}, not 130: {err[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    args = parser.parse_args(argv)
    n = 1_000_000 if args.quick else 6_000_000
    every = 0.2 if args.quick else 1.0
    root = Path(tempfile.mkdtemp(prefix="af-ckpt-"))
    try:
        # Interleaved rounds, best of each, so drift and noise hit both contenders alike.
        plain = stored = 0.0
        written = 0
        for r in range(1 if args.quick else 3):
            plain = max(plain, measure_throughput(n, None, every)[0])
            rate, count = measure_throughput(n, root / f"tp{r}", every)
            if rate > stored:
                stored, written = rate, count
        txn_rate = plain_sink = 0.0
        sink_n = 200_000 if args.quick else 2_000_000
        for _ in range(1 if args.quick else 3):
            t_rate, p_rate = measure_sinks(root, sink_n, every)
            txn_rate, plain_sink = max(txn_rate, t_rate), max(plain_sink, p_rate)
        big = measure_big_checkpoint(root)
        slow_figures = measure_slow_handler(root, 300 if args.quick else 1500)
        interrupt = measure_interrupt(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"plain        {plain:14,.0f} items/s")
    print(f"checkpointed {stored:14,.0f} items/s ({written} periodic checkpoints every {every}s)")
    print(f"sqlite sinks: transactional {txn_rate:,.0f} items/s, plain {plain_sink:,.0f} items/s")
    for k, v in big.items():
        print(f"{k:30s} {v:.4f}")
    result = {
        "items": n,
        "checkpoint_every_s": every,
        "plain_items_per_s": round(plain),
        "checkpointed_items_per_s": round(stored),
        "periodic_checkpoints": written,
        "ratio_checkpointed_vs_plain": round(stored / plain, 3),
        "queued_items": QUEUED,
        "checkpoint_100k_seconds": round(big["checkpoint_100k_seconds"], 4),
        "checkpoint_100k_pause_seconds": round(big["checkpoint_100k_pause_seconds"], 4),
        "checkpoint_100k_bytes": int(big["checkpoint_100k_bytes"]),
        "resume_100k_seconds": round(big["resume_100k_seconds"], 4),
        "resume_and_finish_seconds": round(big["resume_and_finish_seconds"], 4),
        "max_checkpoint_gap_s": round(slow_figures["max_checkpoint_gap_s"], 4),
        "slow_checkpoint_seconds": round(slow_figures["slow_checkpoint_seconds"], 4),
        "slow_checkpoints": int(slow_figures["slow_checkpoints"]),
        "interrupt_latency_s": round(interrupt, 4),
        "sink_items": sink_n,
        "transactional_sink_items_per_s": round(txn_rate),
        "plain_sink_items_per_s": round(plain_sink),
        "transactional_sink_ratio": round(txn_rate / plain_sink, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
