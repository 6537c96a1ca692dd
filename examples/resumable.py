"""A resumable pipeline: kill it at any moment, resume it, get the same answer.

    actorflow run examples/resumable.py --store /tmp/resumable.store --checkpoint-every 1s
    # press Ctrl-C (or kill -9 it), then:
    actorflow resume --store /tmp/resumable.store

``fetch`` pretends to call a flaky service: it fails now and then and is retried with backoff;
an item that keeps failing is set aside as a dead letter (``actorflow dead-letters --store ...``).
``deliver`` is a sink that receives each item's sequence number, so the system it writes to can
de-duplicate what a resumed run delivers again.
"""

from __future__ import annotations

import time

import actorflow as af

flow = af.Flow("resumable")


@flow.source
def orders(count: int = 20_000) -> af.Stream[int]:
    """Order ids; deterministic, so a resumed run can skip what was consumed."""
    yield from range(count)


@flow.task(on_error=af.Retry(attempts=3, backoff=0.01, then=af.DeadLetter()))
def fetch(orders: int, work_us: int = 50) -> int:
    """The order's amount in cents; order ids divisible by 997 always fail."""
    end = time.perf_counter() + work_us / 1e6
    while time.perf_counter() < end:
        pass
    if orders % 997 == 0 and orders:
        raise ConnectionError(f"service refused order {orders}")
    return orders % 1000


@flow.collector(init=0)
def revenue(acc: int, fetch: int) -> int:
    return acc + fetch


@flow.sink
def deliver(fetch: int, seq: af.Seq, out: str = "") -> None:
    """Append `seq amount` lines to a file (when given); de-duplicate on seq downstream."""
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(f"{seq} {fetch}\n")


if __name__ == "__main__":
    result = af.run(flow, {"orders": {"count": 2000}})
    print("revenue:", result["revenue"], "dead letters:", len(result.dead_letters))
