"""Zip stalls: issue 21's 20,000-item zip with a generator side that yields nothing.

``numbers`` (20,000 items) feeds ``none`` (a generator yielding nothing) and ``some`` (0 to 3 items
per number); ``pair`` zips the two. It runs with default mailboxes and with mailboxes of 4 items,
each without a store and with a store and a checkpoint every 5 ms. ``small_vs_default_ratio`` is
the checkpointed small-mailbox time over the checkpointed default-mailbox time (best of the
repeats): the issue asks for at most 2.

Usage: ``python benchmarks/zip_stall.py [--quick] [--repeat N]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af

SMALL = (4, 4, 4, 4)
DEFAULT = (4096, 4096, 4096, 4096)


def empty_side_flow(capacities: tuple[int, int, int, int], n: int) -> af.Flow:
    flow = af.Flow("empty_side")
    cap_numbers, cap_none, cap_some, cap_pair = capacities

    @flow.source(capacity=cap_numbers, batch_size=12)
    def numbers(n: int = n) -> Iterator[int]:
        yield from range(n)

    @flow.task(capacity=cap_none, batch_size=8)
    def none(numbers: int) -> Iterator[int]:
        yield from ()

    @flow.task(capacity=cap_some, batch_size=2)
    def some(numbers: int) -> Iterator[int]:
        for j in range(numbers % 4):
            yield numbers * 10 + j

    @flow.task(capacity=cap_pair, batch_size=13)
    def pair(none: int, some: int) -> int:
        return none + some

    return flow


def timed(capacities: tuple[int, int, int, int], n: int, every: float | None) -> float:
    flow = empty_side_flow(capacities, n)
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "s") if every is not None else None
        start = time.perf_counter()
        result = af.run(flow, store=store, checkpoint_every=every)
        elapsed = time.perf_counter() - start
    assert result["pair"] == []
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 items, one repeat")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = (2_000, 1) if args.quick else (20_000, args.repeat)
    figures: dict[str, float | int] = {"items": n}
    for label, caps in (("default", DEFAULT), ("small", SMALL)):
        for mode, every in (("plain", None), ("checkpoint_5ms", 0.005)):
            best = min(timed(caps, n, every) for _ in range(repeat))
            figures[f"{label}_{mode}_s"] = round(best, 3)
            print(f"{label} mailboxes, {mode}: {best:.3f} s", flush=True)
    small, default = figures["small_checkpoint_5ms_s"], figures["default_checkpoint_5ms_s"]
    figures["small_vs_default_ratio"] = round(small / default, 2)
    figures["small_vs_default_plain_ratio"] = round(figures["small_plain_s"] / figures["default_plain_s"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
