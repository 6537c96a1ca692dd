"""A pipeline whose task blocks for a long time per item (tests/test_signals.py).

From item ``slow_from`` on, ``work`` says on stdout which item it starts (a ready line the test
waits for), then blocks for ``delay`` seconds. ``scaled`` streams ``numbers`` while it waits for
their whole count, so its mailbox spills to a temporary directory in TMPDIR while ``work`` is busy.
"""

from __future__ import annotations

import time

import actorflow as af

flow = af.Flow("blocking")


@flow.source
def numbers(n: int = 200) -> af.Stream[int]:
    yield from range(n)


@flow.task
def work(numbers: int, delay: float = 2.0, slow_from: int = 10) -> int:
    if numbers >= slow_from:
        print(f"working {numbers}", flush=True)
        time.sleep(delay)
    return numbers


@flow.task
def count(numbers: list[int]) -> int:
    return len(numbers)


@flow.task(capacity=2)
def scaled(numbers: int, count: int) -> int:
    return numbers * count


@flow.collector(init=0)
def total(acc: int, work: int) -> int:
    return acc + work


@flow.collector(init=0)
def scaled_total(acc: int, scaled: int) -> int:
    return acc + scaled
