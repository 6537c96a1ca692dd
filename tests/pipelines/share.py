"""Each item of a stream divided by that stream's own total (tests/test_spill.py)."""

from __future__ import annotations

import resource
import sys

import actorflow as af

flow = af.Flow("share")


@flow.source
def xs(n: int = 1000) -> af.Stream[int]:
    for i in range(n):
        yield i % 100 + 1


@flow.collector(init=0)
def total(acc: int, xs: int) -> int:
    return acc + xs


@flow.task
def share(xs: int, total: int) -> float:
    return xs / total


@flow.collector(init=0.0)
def check(acc: float, share: float) -> float:
    return acc + share


if __name__ == "__main__":
    n = int(sys.argv[1])
    result = af.run(flow, {"xs": {"n": n}}, cache=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{result['check']:.6f} {peak_mb:.1f}")
