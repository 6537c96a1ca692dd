"""Latency: how soon an item gets through, against bare trio memory channels in the same run.

- **feed → tap**: items are fed one at a time into an external source, pass two tasks
  (``x + 1``, ``x * 2``) and are watched on a tap of the second; each item's latency is the time
  from ``feed.send`` to its arrival on the tap. The baseline is the same path built from three
  trio memory channels and two forwarding tasks. Items are sent one after another, each once the
  previous one arrived, so this measures latency, not throughput.
- **first item**: a source of 2,000 items into a task spinning 2 ms of CPU per item into a sink;
  ``first_item_s`` is the time from the run's start to the sink's first item (with time-sized
  batches it is a few items' time, not a whole batch's).

Usage: ``python benchmarks/latency.py [--quick]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def feed_flow() -> af.Flow:
    flow = af.Flow("latency")
    flow.source(af.external_source(int, name="inbox"))

    @flow.task
    def plus(inbox: int) -> int:
        return inbox + 1

    @flow.task
    def double(plus: int) -> int:
        return plus * 2

    return flow


async def actorflow_latencies(n: int) -> list[float]:
    out: list[float] = []
    async with af.open_run(feed_flow(), cache=False) as run:
        feed = run.feed("inbox")
        watch = run.tap("double")
        for i in range(n):
            t0 = time.perf_counter()
            await feed.send(i)
            _, items = await watch.__anext__()
            out.append(time.perf_counter() - t0)
            assert items == [(i + 1) * 2]
        feed.close()
        await run.result()
    return out


async def trio_latencies(n: int) -> list[float]:
    s1, r1 = trio.open_memory_channel[int](256)
    s2, r2 = trio.open_memory_channel[int](256)
    s3, r3 = trio.open_memory_channel[int](256)
    out: list[float] = []

    async def forward(recv: trio.MemoryReceiveChannel[int], send: trio.MemorySendChannel[int], f: object) -> None:
        async with recv, send:
            async for x in recv:
                await send.send(f(x))  # type: ignore[operator]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward, r1, s2, lambda x: x + 1)
        nursery.start_soon(forward, r2, s3, lambda x: x * 2)
        async with s1, r3:
            for i in range(n):
                t0 = time.perf_counter()
                await s1.send(i)
                got = await r3.receive()
                out.append(time.perf_counter() - t0)
                assert got == (i + 1) * 2
    return out


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def first_item_seconds() -> float:
    flow = af.Flow("first_item")
    arrived: list[float] = []

    @flow.source
    def numbers(n: int = 2000) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def work(numbers: int) -> int:
        spin(0.002)
        return numbers

    @flow.sink
    def record(work: int) -> None:
        if not arrived:
            arrived.append(time.perf_counter())
        if work == 50:
            raise KeyboardInterrupt  # enough: the figure is the first item

    t0 = time.perf_counter()
    try:
        af.run(flow, cache=False)
    except KeyboardInterrupt:  # a task's KeyboardInterrupt reaches the caller as itself
        pass
    return arrived[0] - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few items (a smoke test)")
    args = parser.parse_args()
    n = 200 if args.quick else 3000
    rounds = 1 if args.quick else 3
    ours: list[float] = []
    base: list[float] = []
    for _ in range(rounds):  # interleaved, so both see the same machine
        base += trio.run(trio_latencies, n)
        ours += trio.run(actorflow_latencies, n)
    first = first_item_seconds()
    figures = {
        "items": n * rounds,
        "actorflow_p50_us": round(statistics.median(ours) * 1e6, 1),
        "actorflow_p99_us": round(_percentile(ours, 0.99) * 1e6, 1),
        "trio_p50_us": round(statistics.median(base) * 1e6, 1),
        "trio_p99_us": round(_percentile(base, 0.99) * 1e6, 1),
        "p50_ratio_vs_trio": round(statistics.median(ours) / statistics.median(base), 2),
        "p99_ratio_vs_trio": round(_percentile(ours, 0.99) / _percentile(base, 0.99), 2),
        "first_item_s": round(first, 4),
    }
    for key, value in figures.items():
        print(f"{key:<22} {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
