"""A fixed-bucket histogram of durations, cheap enough to observe once per batch.

Actors keep one of batch durations (``Actor.batch_times``); the metrics read it as a Prometheus
histogram (``actorflow_task_batch_duration_seconds``), so p50/p99 batch latencies can be computed.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import final

#: Upper bounds (seconds) of the batch-duration buckets; ``+Inf`` is implied. Batches aim at
#: ``batch_time`` (10 ms by default), so the buckets are dense around it.
BATCH_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@final
class Histogram:
    """Counts of observed durations per bucket, their sum and their number."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = BATCH_BUCKETS) -> None:
        self.bounds = bounds
        #: Observations per bucket (not cumulative); the last is the ``+Inf`` bucket.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` per bucket, the last bound ``inf`` (as Prometheus wants)."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out
