"""Checkpoint cost: throughput with and without periodic checkpoints, and the cost of one big one.

1. N integers through source -> task (x*2+1) -> collector (sum), once with no store and once with
   a store and a checkpoint every second (``ratio_checkpointed_vs_plain``; target >= 0.9). The
   product cache is off here (``cache=False``): ``benchmarks/cache.py`` measures it.
2. A run whose collector is held back while 100,000 items queue in its mailbox: the time to write
   one checkpoint holding them (pause + encode + LMDB write), then the time to resume from it
   (open the store, decode, restore every mailbox) and the time to finish the resumed run.

Usage: ``python benchmarks/checkpoint.py [--quick]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af

QUEUED = 100_000


def throughput_flow() -> af.Flow:
    flow = af.Flow("ckpt-throughput")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def f(numbers: int) -> int:
        return numbers * 2 + 1

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
        big = measure_big_checkpoint(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"plain        {plain:14,.0f} items/s")
    print(f"checkpointed {stored:14,.0f} items/s ({written} periodic checkpoints every {every}s)")
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
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
