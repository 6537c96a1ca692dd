"""A pipeline whose handlers keep the CPU busy for a few milliseconds per item (tests/test_responsive.py)."""

from __future__ import annotations

import time

import actorflow as af

flow = af.Flow("slow")


def spin(seconds: float) -> None:
    """Busy-wait: hold the CPU (and the GIL) like real parsing or hashing would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@flow.source
def numbers(n: int = 400, source_spin: float = 0.0) -> af.Stream[int]:
    for i in range(n):
        if source_spin:
            spin(source_spin)
        yield i


@flow.task
def work(numbers: int, spin_s: float = 0.002) -> int:
    spin(spin_s)
    return numbers * 3


@flow.collector(init=0)
def total(acc: int, work: int) -> int:
    return acc + work


def expected(n: int) -> int:
    return sum(i * 3 for i in range(n))
