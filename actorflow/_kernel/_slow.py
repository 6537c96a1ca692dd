"""Slow-item watching as a hook on an actor's cycle.

Each actor has one :class:`SlowWatch`. The cycle tells it when a batch starts and ends
(:meth:`SlowWatch.begin`, :meth:`SlowWatch.end`); the supervisor's watch samples it while the
run goes on (:meth:`SlowWatch.sample`). An async handler is seen while it awaits: the watch
samples which item each actor is on and reports one found on the same item for ``slow_item``
seconds. A sync handler blocks the loop, so it is reported when its batch ends (batches of slow
handlers shrink to one item, so the item is named exactly). Each item is reported once.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from .._base import _events as ev


def _zero() -> int:
    return 0


class SlowWatch:
    """One actor's batch in progress, as the slow-item watch sees it.

    Attributes:
        started: when the batch in progress started (0.0: none is).
        seqs: the sequence numbers of that batch.
        position: the index in the batch of the item being processed (the item loop's).
        reported: (batch start, item index) of the last item reported, so each is reported once.
    """

    __slots__ = ("bus", "limit", "position", "reported", "run_id", "seen", "seqs", "started", "sync", "task")

    def __init__(self, bus: ev.EventBus, run_id: str, task: str, limit: float, sync: bool) -> None:
        self.bus = bus
        self.run_id = run_id
        self.task = task
        self.limit = limit
        self.sync = sync
        self.started = 0.0
        self.seqs: list[Any] = []
        self.position: Callable[[], int] = _zero
        self.reported: tuple[float, int] = (0.0, 0)
        #: (batch start, item index, first seen) of the last sample.
        self.seen: tuple[float, int, float] | None = None

    def begin(self, seqs: list[Any]) -> float:
        """A batch starts; returns its start time."""
        self.seqs = seqs
        self.started = t0 = perf_counter()
        return t0

    def end(self, t0: float, elapsed: float) -> None:
        """The batch started at *t0* ended after *elapsed* seconds: a sync handler's slow item is reported now."""
        self.started = 0.0
        if self.sync and elapsed >= self.limit and self.reported[0] != t0 and self.seqs:
            self.report(self.seqs[0], elapsed, (t0, 0))

    def report(self, seq: Any, seconds: float, key: tuple[float, int]) -> None:
        """Publish that the item *seq* has run (or ran) *seconds* (*key*: which item, so it is reported once)."""
        self.reported = key
        self.bus.publish(ev.ItemSlow(run_id=self.run_id, task=self.task, seq=seq, seconds=seconds))

    def sample(self, now: float) -> None:
        """The supervisor's periodic look: report an item found running for ``limit`` seconds."""
        if not self.started:
            self.seen = None
            return
        at = self.position()
        prev = self.seen
        if prev is None or prev[:2] != (self.started, at):
            self.seen = (self.started, at, now)
        elif now - prev[2] >= self.limit and self.reported != (self.started, at):
            seqs = self.seqs
            self.report(seqs[min(at, len(seqs) - 1)], now - prev[2], (self.started, at))
