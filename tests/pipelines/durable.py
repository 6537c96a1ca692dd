"""A pipeline for durability tests: generators, fan-out, fan-in, concurrency, per-collectors, a sink.

``numbers`` → ``expand`` (0..3 children each) → ``weigh`` (concurrency 2) → ``total`` and
``per_number``; ``label`` zips ``expand`` with ``weigh``; ``record`` appends each item's sequence
number to the file named by its ``path`` option with an unbuffered write.
"""

from __future__ import annotations

import os
import sys
import time

import actorflow as af

flow = af.Flow("durable")


@flow.source(batch_size=32)
def numbers(n: int = 3000) -> af.Stream[int]:
    yield from range(n)


@flow.task(capacity=64, batch_size=32)
def expand(numbers: int) -> af.Stream[int]:
    for j in range(numbers % 4):
        yield numbers * 10 + j


@flow.task(concurrency=2, capacity=64)
async def weigh(expand: int, spin: float = 0.0) -> int:
    if spin:
        end = time.perf_counter() + spin
        while time.perf_counter() < end:
            pass
    return expand * 3


@flow.task(capacity=64)
def label(expand: int, weigh: int) -> str:
    return f"{expand}:{weigh}"


@flow.collector(init=0, capacity=64)
def total(acc: int, weigh: int) -> int:
    return acc + weigh


@flow.collector(init=0, per=numbers, capacity=64)
def per_number(acc: int, weigh: int) -> int:
    return acc + 1


@flow.collector(init={}, capacity=64)
def labels(acc: dict[str, int], label: str) -> dict[str, int]:
    acc[label] = acc.get(label, 0) + 1
    return acc


@flow.sink(capacity=64)
def record(label: str, seq: af.Seq, path: str = "") -> None:
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{list(seq) if isinstance(seq, tuple) else seq}\n".encode())
        finally:
            os.close(fd)


def expected(n: int) -> dict[str, object]:
    children = [(i, i * 10 + j) for i in range(n) for j in range(i % 4)]
    return {
        "total": sum(c * 3 for _, c in children),
        "per_number": [i % 4 for i in range(n)],
        "labels": {f"{c}:{c * 3}": 1 for _, c in children},
        "sink_seqs": {f"{[i, j]}" for i in range(n) for j in range(i % 4)},
    }


if __name__ == "__main__":  # python durable.py STORE N SINKFILE [resume]
    import json

    store, n, sink = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    resume = len(sys.argv) > 4 and sys.argv[4] == "resume"
    options = {"numbers": {"n": n}, "weigh": {"spin": 0.0002}, "record": {"path": sink}}
    result = af.run(flow, options, store=store, resume=resume, checkpoint_every=0.05, handle_signals=True)
    print(json.dumps({"total": result["total"], "per_number": result["per_number"], "labels": result["labels"]}))
