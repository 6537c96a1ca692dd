"""Cache and concat: what unchanged work costs the second time, and what parallel parts gain.

1. ``af.concat`` of 200 parts, each a flow whose source simulates I/O (a few short sleeps), with
   ``limit=16`` versus ``limit=1`` (serial): ``concat_speedup`` (target >= 8). Both outputs are
   checked to be byte-for-byte equal.
2. A flow (source -> CPU-bound task -> collector) run cold into an empty cache, then re-run
   unchanged: ``warm_vs_cold_ratio`` (target < 0.05). Also the cost of recording the cache on a
   cold run, as the ratio of a cold cached run's time to an uncached run's
   (``recording_overhead_ratio``), and a cold run with the same work as a hand-written trio
   pipeline for reference (``cold_vs_trio_ratio``).
3. Early cutoff: the same flow run cold, then re-run with a new ``version=`` of its source that
   sends the same items: only the source runs, the CPU-bound task and the collector are cutoff
   hits. ``early_cutoff_ratio`` is that re-run's time over the cold run's (target < 0.2).

Usage: ``python benchmarks/cache.py [--quick]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af

PARTS = 200


def part_flow(sleeps: int, pause: float) -> af.Flow:
    flow = af.Flow("part")

    @flow.source
    async def fetch(i: int = 0) -> af.Stream[bytes]:
        for j in range(sleeps):
            await trio.sleep(pause)  # simulated I/O: a request, a disk read
            yield f"part {i:03d} chunk {j}\n".encode()

    @flow.task
    def frame(fetch: bytes) -> bytes:
        return b"| " + fetch

    return flow


def header(out: Any) -> None:
    out.write(b"200 parts\n")


def measure_concat(sleeps: int, pause: float, repeats: int) -> dict[str, float]:
    flow = part_flow(sleeps, pause)
    parts = [header, *(flow.bind({"fetch": {"i": i}}) for i in range(PARTS))]
    timings: dict[int, float] = {}
    outputs: dict[int, bytes] = {}
    for limit in (1, 16):
        best = float("inf")
        for _ in range(repeats):
            out = io.BytesIO()
            t0 = time.perf_counter()
            af.concat(out, parts, limit=limit)
            best = min(best, time.perf_counter() - t0)
            outputs[limit] = out.getvalue()
        timings[limit] = best
    assert outputs[1] == outputs[16], "parallel concat must equal the serial one"
    return {
        "concat_parts": PARTS,
        "concat_serial_seconds": round(timings[1], 4),
        "concat_parallel_seconds": round(timings[16], 4),
        "concat_speedup": round(timings[1] / timings[16], 2),
    }


def work_flow(version: str = "1") -> af.Flow:
    flow = af.Flow("work")

    @flow.source(version=version)
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def digest(numbers: int, rounds: int = 20) -> int:
        data = numbers.to_bytes(8, "little")
        for _ in range(rounds):
            data = hashlib.blake2b(data, digest_size=16).digest()
        return data[0]

    @flow.collector(init=0)
    def total(acc: int, digest: int) -> int:
        return acc + digest

    return flow


async def trio_baseline(n: int, rounds: int) -> int:
    """The same work as three hand-written trio tasks joined by memory channels (batched)."""
    send_a, recv_a = trio.open_memory_channel[list[int]](8)
    send_b, recv_b = trio.open_memory_channel[list[int]](8)
    result = [0]

    async def source() -> None:
        async with send_a:
            for start in range(0, n, 256):
                await send_a.send(list(range(start, min(n, start + 256))))

    async def task() -> None:
        async with recv_a, send_b:
            async for batch in recv_a:
                out = []
                for x in batch:
                    data = x.to_bytes(8, "little")
                    for _ in range(rounds):
                        data = hashlib.blake2b(data, digest_size=16).digest()
                    out.append(data[0])
                await send_b.send(out)

    async def collect() -> None:
        async with recv_b:
            async for batch in recv_b:
                result[0] += sum(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(source)
        nursery.start_soon(task)
        nursery.start_soon(collect)
    return result[0]


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def measure_warm(n: int, repeats: int, root: Path) -> dict[str, float]:
    flow = work_flow()
    options = {"numbers": {"n": n}}
    plain = cold = warm = trio_t = float("inf")
    expected = None
    for r in range(repeats):
        store = root / f"store{r}"
        t, base = timed(lambda: trio.run(trio_baseline, n, 20))
        trio_t = min(trio_t, t)
        t, res = timed(lambda: af.run(flow, options))
        plain = min(plain, t)
        expected = res["total"]
        assert expected == base
        t, res = timed(lambda store=store: af.run(flow, options, store=store))
        cold = min(cold, t)
        assert res["total"] == expected and res.summary.tasks["digest"].cache == "miss"
        t, res = timed(lambda store=store: af.run(flow, options, store=store))
        warm = min(warm, t)
        assert res["total"] == expected and res.summary.tasks["total"].cache == "hit"
        shutil.rmtree(store)
    return {
        "warm_items": n,
        "trio_seconds": round(trio_t, 4),
        "uncached_seconds": round(plain, 4),
        "cold_seconds": round(cold, 4),
        "warm_seconds": round(warm, 5),
        "warm_vs_cold_ratio": round(warm / cold, 4),
        "recording_overhead_ratio": round(cold / plain, 3),
        "cold_vs_trio_ratio": round(cold / trio_t, 3),
    }


def measure_cutoff(n: int, repeats: int, root: Path) -> dict[str, float]:
    options = {"numbers": {"n": n}}
    cold = rerun = float("inf")
    for r in range(repeats):
        store = root / f"cutoff{r}"
        t, res = timed(lambda store=store: af.run(work_flow("1"), options, store=store))
        cold = min(cold, t)
        expected = res["total"]
        t, res = timed(lambda store=store, r=r: af.run(work_flow(f"2.{r}"), options, store=store))
        rerun = min(rerun, t)
        tasks = res.summary.tasks
        assert res["total"] == expected and tasks["numbers"].cache == "miss", tasks
        assert tasks["digest"].cache == "cutoff" and tasks["total"].cache == "cutoff", tasks
        shutil.rmtree(store)
    return {
        "cutoff_cold_seconds": round(cold, 4),
        "cutoff_rerun_seconds": round(rerun, 4),
        "early_cutoff_ratio": round(rerun / cold, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and repeats (for CI smoke runs)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    n = 50_000 if args.quick else 200_000
    figures: dict[str, Any] = {"quick": args.quick}
    figures.update(measure_concat(sleeps=4, pause=0.005, repeats=repeats))
    print(f"concat: serial {figures['concat_serial_seconds']}s, limit 16 {figures['concat_parallel_seconds']}s "
          f"-> speedup {figures['concat_speedup']}x", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="actorflow-bench-cache-"))
    try:
        figures.update(measure_warm(n, repeats, root))
        figures.update(measure_cutoff(n, repeats, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"cache: cold {figures['cold_seconds']}s, warm {figures['warm_seconds']}s "
          f"-> ratio {figures['warm_vs_cold_ratio']}", file=sys.stderr)
    print(f"early cutoff: cold {figures['cutoff_cold_seconds']}s, re-run with a changed source "
          f"{figures['cutoff_rerun_seconds']}s -> ratio {figures['early_cutoff_ratio']}", file=sys.stderr)
    figures["targets_met"] = (
        figures["concat_speedup"] >= 8 and figures["warm_vs_cold_ratio"] < 0.05 and figures["early_cutoff_ratio"] < 0.2
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
