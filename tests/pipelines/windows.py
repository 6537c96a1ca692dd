"""A pipeline for the windows' exactly-once test: events slightly out of order, per-key tumbling
windows (some items late), a keyed fold, and the closed windows written by a transactional sink.

``numbers`` → ``event`` (a slowish task) → ``counts`` (``af.Tumbling(0.5)`` per user, lateness
0.03 s) → ``out`` (``af.JsonLinesSink``, option ``path``); ``event`` → ``totals`` (a keyed fold).
"""

from __future__ import annotations

import time

import actorflow as af

flow = af.Flow("windows")

Event = tuple[str, float]


@flow.source(batch_size=32)
def numbers(n: int = 2000) -> af.Stream[int]:
    yield from range(n)


@flow.task(capacity=64, batch_size=32)
def event(numbers: int, spin: float = 0.0) -> Event:
    if spin:
        end = time.perf_counter() + spin
        while time.perf_counter() < end:
            pass
    jitter = ((numbers * 13) % 7) * 0.01  # up to 0.06 s behind: some items are late
    return (f"u{(numbers * 7) % 5}", round(numbers * 0.01 - jitter, 2))


def user(e: Event) -> str:
    return e[0]


def stamp(e: Event) -> float:
    return e[1]


@flow.window(af.Tumbling(0.5), key=user, time=stamp, lateness=0.03, init=0)
def counts(acc: int, event: Event) -> int:
    return acc + 1


@flow.collector(init=0, key=user)
def totals(acc: int, event: Event) -> int:
    return acc + 1


flow.add(af.JsonLinesSink, name="out", inputs={"item": "counts"})
