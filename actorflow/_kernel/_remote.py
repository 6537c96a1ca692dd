"""Executor-backed tasks: whole batches run in worker processes or on Dask, in place of the local loop.

The worker calls the task with the same calling convention as inline (``_calls``); a worker's
failure on one item comes back with its index and goes through the actor's item loop
(:meth:`ItemLoop.recover`), exactly as inline: retry it (the rest of the batch is sent again from
that item), go on without it (dead letter), or fail the run naming it.

On process and Dask executors batches are sized by their round trip (:class:`RoundTrips`; a
thread executor's follow the inline time sizer): big enough that the work in the
worker outweighs the round trip's own cost many times over, no bigger than the batch time asks
when the round trip is cheap, and never above the task's ``batch_size``.

A task's ``af.Context`` reaches the worker as a detached copy (``Context.detached``); what it
reported during a batch comes back with the batch and is routed through the run's own context
(progress events, log records) before the batch's outputs are checked and sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter
from typing import TYPE_CHECKING, Any, final

import trio

from .._base import SKIP, ItemFailure, target_of
from .._define import Context, route
from ._executors import BatchCall, Session, open_session
from ._loop import child_seq

if TYPE_CHECKING:
    from ._actor import Actor
    from ._loop import BatchSizer, ItemLoop


@final
class RemoteBatches:
    """Runs a task's batches in an opened executor :class:`Session`."""

    def __init__(self, actor: Actor, loop: ItemLoop, session: Session, call: BatchCall, ctx: Context | None) -> None:
        self.actor = actor
        self.loop = loop
        self.session = session
        self.call = call
        #: The run's own context of the task, through which a worker's reports are routed (None: it has none).
        self.ctx = ctx
        #: The index in its batch of the item that raised KeyboardInterrupt or SystemExit in a worker.
        self.exit_at = 0
        #: Process and Dask executors (a *fixed* sizer: the inline one cannot see a round trip) size by round trip.
        self.sizing = RoundTrips(actor.sizer, actor.batch_time, actor.spec.concurrency) if actor.sizer.fixed else None

    async def process(self, seqs: list[Any], items: list[Any]) -> tuple[list[Any], list[Any]]:
        """Run one batch in the executor; returns the checked output batch."""
        out: list[Any] = []
        pos, attempt, failed = 0, 1, -1
        while pos < len(items):
            try:
                t0 = perf_counter()
                done, index, error, reports, worked = await self.session.run(
                    self.call, items[pos:] if pos else items, (seqs[pos:] if pos else seqs) if self.call.seq else None
                )
                if self.sizing is not None:
                    self.sizing.observe(len(done) + (error is not None), worked, perf_counter() - t0)
            except (trio.Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # the batch could not run (a worker died, a value could not be sent)
                raise ItemFailure(seqs[pos] if len(seqs) - pos == 1 else None, exc) from exc
            if reports and self.ctx is not None:
                route(self.ctx, reports)
            out.extend(done)
            if error is None:
                break
            if isinstance(error, KeyboardInterrupt | SystemExit):
                self.exit_at = pos + index
                raise error  # the run stops; the task puts the batch back
            i = pos + index
            attempt, failed = (attempt + 1 if i == failed else 1), i
            err = error if isinstance(error, Exception) else Exception(str(error))
            if not await self.loop.recover(seqs[i], items[i], err, attempt):
                out.append([] if self.call.generator else SKIP)
            pos = len(out)
        if self.call.generator:
            out_seqs = [child_seq(s, j) for s, rs in zip(seqs, out, strict=True) for j in range(len(rs))]
            out = [r for rs in out for r in rs]
            return self.actor.out_check.batch(out_seqs, out)
        return self.actor.out_check.batch(seqs, out)


#: A batch should keep its worker busy at least this many times as long as its round trip's own cost.
RTT_FACTOR = 10
#: The next batches carry at most this many times the items of the one just back.
GROWTH = 8
#: The weight of the newest round trip in the average cost.
SMOOTHING = 0.5


@final
class RoundTrips:
    """Sizes an executor task's batches by the round trip to its workers (sets the actor's *sizer*).

    Each batch tells how long the worker worked on it and how long the round trip took in all;
    the difference is the round trip's cost, averaged over recent batches (:data:`SMOOTHING`).
    It includes the time a batch waited for a busy worker: while batches queue, the workers are
    saturated and bigger batches lose nothing (trio-parallel's workers take one job at a time,
    so every batch leaves its worker idle for one round trip: fewer, bigger batches keep up with
    a pool fed from a queue). The first ``warmup`` round trips (one per batch in flight) pay for
    starting the workers and are not counted. The next batches take about
    ``max(batch_time, RTT_FACTOR * cost)`` seconds of work, between 1 item and the task's
    ``batch_size``, and at most :data:`GROWTH` times the batch just back: the first batch is one
    item, so a slow function never holds a checkpoint for a whole ``batch_size`` of items.
    """

    __slots__ = ("cost", "sizer", "target", "warmup")

    def __init__(self, sizer: BatchSizer, target: float, warmup: int = 1) -> None:
        self.sizer = sizer
        self.target = target
        self.warmup = warmup
        self.cost = 0.0
        sizer.size = 1

    def observe(self, n: int, worked: float, took: float) -> None:
        """A round trip of *n* items took *took* seconds, *worked* of them in the worker."""
        if n <= 0:
            return
        if self.warmup > 0:
            self.warmup -= 1
        else:
            self.cost += SMOOTHING * (max(0.0, took - worked) - self.cost)
        goal = max(self.target, RTT_FACTOR * self.cost)
        ideal = self.sizer.limit if worked <= 0 else int(goal * n / worked)
        self.sizer.size = max(1, min(self.sizer.limit, GROWTH * n, ideal))


@asynccontextmanager
async def open_remote(actor: Actor, loop: ItemLoop, consts: dict[str, Any]) -> AsyncIterator[RemoteBatches | None]:
    """The actor's executor opened for the length of its run (None when the task runs inline)."""
    spec = actor.spec
    if spec.executor is None:
        yield None
        return
    names = tuple(i.name for i in spec.streaming_inputs)
    consts = dict(consts)
    ctx = consts.get(spec.context_param) if spec.context_param is not None else None
    if isinstance(ctx, Context):
        consts[spec.context_param] = ctx.detached()  # type: ignore[index]  # not None: ctx was found under it
    call = BatchCall(fn=target_of(spec.fn), consts=consts, names=names, positional=spec.positional,
                     generator=spec.is_generator, seq=spec.seq_param,
                     timeout=spec.timeout)  # a task class travels by reference; workers make instances
    async with open_session(spec.executor) as session:
        yield RemoteBatches(actor, loop, session, call, ctx if isinstance(ctx, Context) else None)
