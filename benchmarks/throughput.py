"""Streaming throughput: actorflow against hand-written trio pipelines and a plain loop.

Every contender does the same work on N integers: source -> task (x*2+1) -> collector (sum).

- actorflow with sync handlers, and again with async handlers;
- trio *naive*: three tasks over ``trio.open_memory_channel(256)``, one ``await send`` and one
  ``async for`` step per item;
- trio *tuned*: the same channels, ``send_nowait``/``receive_nowait``, awaiting only when a
  channel is full or empty;
- a plain Python loop (the interpreter's ceiling).

A container-heavy section runs items of ``list[int]`` (14 ints each) through a task returning
``dict[str, int]`` into a collector, so that every item's elements and every output's keys and
values pass the deep type check: once with those annotations (contents checked by the default
sample: ``container_check_cost``), once with ``check="full"`` (every item's contents:
``container_full_check_cost``), once unannotated (no checks), and a tuned trio pipeline doing the
same work.

Usage: ``python benchmarks/throughput.py [--quick] [--items N]``. The last line printed is one JSON
object of figures; ratios compare contenders measured in this same process run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af

CHANNEL_SIZE = 256


def actorflow_flow(use_async: bool) -> af.Flow:
    flow = af.Flow("throughput-async" if use_async else "throughput")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    if use_async:

        @flow.task
        async def f(numbers: int) -> int:
            return numbers * 2 + 1

        @flow.collector(init=0)
        async def total(acc: int, f: int) -> int:
            return acc + f

    else:

        @flow.task
        def f(numbers: int) -> int:
            return numbers * 2 + 1

        @flow.collector(init=0)
        def total(acc: int, f: int) -> int:
            return acc + f

    return flow


def run_actorflow(n: int, use_async: bool) -> int:
    return int(af.run(actorflow_flow(use_async), options={"numbers": {"n": n}})["total"])


async def _naive(n: int) -> int:
    s1, r1 = trio.open_memory_channel[int](CHANNEL_SIZE)
    s2, r2 = trio.open_memory_channel[int](CHANNEL_SIZE)
    out = [0]

    async def source() -> None:
        async with s1:
            for x in range(n):
                await s1.send(x)

    async def task() -> None:
        async with r1, s2:
            async for x in r1:
                await s2.send(x * 2 + 1)

    async def collector() -> None:
        acc = 0
        async with r2:
            async for x in r2:
                acc += x
        out[0] = acc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(source)
        nursery.start_soon(task)
        nursery.start_soon(collector)
    return out[0]


async def _tuned(n: int) -> int:
    s1, r1 = trio.open_memory_channel[int](CHANNEL_SIZE)
    s2, r2 = trio.open_memory_channel[int](CHANNEL_SIZE)
    out = [0]

    async def source() -> None:
        async with s1:
            for x in range(n):
                try:
                    s1.send_nowait(x)
                except trio.WouldBlock:
                    await s1.send(x)

    async def task() -> None:
        async with r1, s2:
            while True:
                try:
                    x = r1.receive_nowait()
                except trio.WouldBlock:
                    try:
                        x = await r1.receive()
                    except trio.EndOfChannel:
                        return
                except trio.EndOfChannel:
                    return
                y = x * 2 + 1
                try:
                    s2.send_nowait(y)
                except trio.WouldBlock:
                    await s2.send(y)

    async def collector() -> None:
        acc = 0
        async with r2:
            while True:
                try:
                    x = r2.receive_nowait()
                except trio.WouldBlock:
                    try:
                        x = await r2.receive()
                    except trio.EndOfChannel:
                        break
                except trio.EndOfChannel:
                    break
                acc += x
        out[0] = acc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(source)
        nursery.start_soon(task)
        nursery.start_soon(collector)
    return out[0]


ROW_POOL = 1000
ROW_LEN = 14  # elements per container item
ROWS = [list(range(i, i + ROW_LEN)) for i in range(ROW_POOL)]


def container_flow(checked: bool, check: str = "sample") -> af.Flow:
    """source (list[int] rows) -> summary (dict[str, int]) -> total; *checked*: with those annotations,
    whose contents the ports check by *check* (``"sample"`` or ``"full"``)."""
    flow = af.Flow("containers" if checked else "containers-unchecked")

    def rows(n: int = 10) -> af.Stream[list[int]]:
        for i in range(n):
            yield ROWS[i % ROW_POOL]

    def summary(rows: list[int]) -> dict[str, int]:
        return {"sum": sum(rows), "n": len(rows)}

    def total(acc: int, summary: dict[str, int]) -> int:
        return acc + summary["sum"]

    if not checked:
        rows.__annotations__["return"] = af.Stream[Any]
        for fn in (summary, total):
            fn.__annotations__ = {k: Any for k in fn.__annotations__}
    flow.source(check=check)(rows)
    flow.task(check=check)(summary)
    flow.collector(init=0)(total)
    return flow


def container_expected(n: int) -> int:
    return sum(sum(ROWS[i % ROW_POOL]) for i in range(n))


def run_containers(n: int, checked: bool, check: str = "sample") -> int:
    return int(af.run(container_flow(checked, check), options={"rows": {"n": n}})["total"])


async def _tuned_containers(n: int) -> int:
    s1, r1 = trio.open_memory_channel[list[int]](CHANNEL_SIZE)
    s2, r2 = trio.open_memory_channel[dict[str, int]](CHANNEL_SIZE)
    out = [0]

    async def source() -> None:
        async with s1:
            for i in range(n):
                x = ROWS[i % ROW_POOL]
                try:
                    s1.send_nowait(x)
                except trio.WouldBlock:
                    await s1.send(x)

    async def task() -> None:
        async with r1, s2:
            while True:
                try:
                    row = r1.receive_nowait()
                except trio.WouldBlock:
                    try:
                        row = await r1.receive()
                    except trio.EndOfChannel:
                        return
                except trio.EndOfChannel:
                    return
                y = {"sum": sum(row), "n": len(row)}
                try:
                    s2.send_nowait(y)
                except trio.WouldBlock:
                    await s2.send(y)

    async def collector() -> None:
        acc = 0
        async with r2:
            while True:
                try:
                    d = r2.receive_nowait()
                except trio.WouldBlock:
                    try:
                        d = await r2.receive()
                    except trio.EndOfChannel:
                        break
                except trio.EndOfChannel:
                    break
                acc += d["sum"]
        out[0] = acc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(source)
        nursery.start_soon(task)
        nursery.start_soon(collector)
    return out[0]


def run_tuned_containers(n: int) -> int:
    return trio.run(_tuned_containers, n)


def run_naive(n: int) -> int:
    return trio.run(_naive, n)


def run_tuned(n: int) -> int:
    return trio.run(_tuned, n)


def run_plain(n: int) -> int:
    def source(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    def f(x: int) -> int:
        return x * 2 + 1

    acc = 0
    for x in source(n):
        acc += f(x)
    return acc


def measure(fn: Callable[[int], int], n: int, repeat: int, expected: int | None = None) -> float:
    """Best items/s over *repeat* runs; checks the answer every time (default: the sum of 2x+1 for x < n)."""
    expected = n * n if expected is None else expected
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = fn(n)
        dt = time.perf_counter() - t0
        if got != expected:
            raise SystemExit(f"{fn.__name__} computed {got}, expected {expected}")
        best = max(best, n / dt)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and repeats (a smoke run)")
    parser.add_argument(
        "--items", type=int, default=None, help="items per run (default 1,000,000; 100,000 with --quick)"
    )
    args = parser.parse_args(argv)
    n = args.items or (100_000 if args.quick else 1_000_000)
    repeat = 1 if args.quick else 3
    figures = {
        "actorflow_items_per_s": measure(lambda k: run_actorflow(k, False), n, repeat),
        "actorflow_async_items_per_s": measure(lambda k: run_actorflow(k, True), n, repeat),
        "trio_naive_items_per_s": measure(run_naive, n, 1),
        "trio_tuned_items_per_s": measure(run_tuned, n, repeat),
        "plain_loop_items_per_s": measure(run_plain, n, repeat),
    }
    m = max(1, n // 2)  # container items cost more each: half as many
    expected = container_expected(m)
    figures["container_items_per_s"] = measure(lambda k: run_containers(k, True), m, repeat, expected)
    figures["container_full_items_per_s"] = measure(lambda k: run_containers(k, True, "full"), m, repeat, expected)
    figures["container_unchecked_items_per_s"] = measure(lambda k: run_containers(k, False), m, repeat, expected)
    figures["container_trio_tuned_items_per_s"] = measure(run_tuned_containers, m, repeat, expected)
    for name, value in figures.items():
        print(f"{name:32s} {value:14,.0f}")
    result = {"items": n, **{k: round(v) for k, v in figures.items()}}
    result["ratio_vs_trio_tuned"] = round(figures["actorflow_items_per_s"] / figures["trio_tuned_items_per_s"], 2)
    result["ratio_vs_plain_loop"] = round(figures["actorflow_items_per_s"] / figures["plain_loop_items_per_s"], 3)
    result["container_items"] = m
    result["container_ratio_vs_trio_tuned"] = round(
        figures["container_items_per_s"] / figures["container_trio_tuned_items_per_s"], 2
    )
    #: the share of the container pipeline's time the deep checks take (1 - checked / unchecked throughput)
    result["container_check_cost"] = round(
        1 - figures["container_items_per_s"] / figures["container_unchecked_items_per_s"], 3
    )
    result["container_full_check_cost"] = round(
        1 - figures["container_full_items_per_s"] / figures["container_unchecked_items_per_s"], 3
    )
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
