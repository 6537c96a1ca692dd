"""The batch cycle, written once: how an actor that reads a stream turns batches into output.

One pass of the cycle: take a batch at the checkpoint gate (the actor's ``take``: gate, breathe,
batch sizing, rate limit) → count it in → inside ``working`` (busy for the supervisor, timed for
the sizer and slow-item reports) the kind's :class:`Logic` handles it → count, event → send the
output downstream (may wait on backpressure) → the logic's ``sent`` (watermarks) → repeat; at the
end of input the logic's ``on_eof``. When user code raises an exit (KeyboardInterrupt,
SystemExit) the logic says how many of the batch's items are done (the rest it put back for the
checkpoint), and the cycle uncounts the others: ``items_in`` is adjusted here and nowhere else.

Concurrency is one wrapper, :class:`WorkerPool`, shared by every kind that allows it (tasks and
sinks): N workers run the same cycle on one inbox; with ordered output, finished batches wait for
their turn (ticket order) before they are sent. A worker's failure fails the actor once.

Kinds are small logics the actor kinds implement (``on_batch``, ``on_exit``, ``sent``, ``on_eof``):
map task, generator task, executor-backed task (``_remote``), sink, collector, per-collector (which
feeds ``step`` from two inboxes). Streams start in :func:`run_pull`, the same cycle without an
inbox: a sync source pulls from its generator, a cache hit from its recorded batches. An async
source's generator runs in a task of its own and hands its batches to the same send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .._base import ItemFailure, MailboxTypeError
from ._loop import EXITS, is_failure
from ._mailbox import Batch

if TYPE_CHECKING:
    from ._actor import Actor
    from ._inbox import ZipInbox
    from ._mailbox import Mailbox

NO_OUTPUT: Batch = ([], [])


class Logic(Protocol):
    """One kind's part of the cycle.

    ``on_batch`` handles one input batch and returns the checked output batch (``NO_OUTPUT`` for
    sinks and collectors); *flush* is True when the actor has one worker (a generator task may then
    send part of its output mid-batch), *order* the batch's ticket in a worker pool. ``on_exit``
    is called when user code raised an exit inside ``on_batch``: it puts back what is not done (for
    the checkpoint) and returns how many of the batch's items are done. ``sent`` runs after the
    output batch reached every downstream mailbox, ``on_eof`` once the input has ended.
    """

    #: Whether concurrent workers may share the logic (``concurrency`` > 1).
    pooled: bool

    async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> Batch: ...

    def on_exit(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int) -> int: ...

    def sent(self, in_seqs: list[Any]) -> None: ...

    async def on_eof(self) -> None: ...


async def step(actor: Actor, logic: Logic, batch: Batch, flush: bool, order: int = 0) -> Batch:
    """One batch through *logic*, counted and timed; returns its output batch."""
    seqs, items = batch
    actor.items_in += len(items)
    try:
        with actor.working(batch):
            out = await logic.on_batch(seqs, items, flush, order)
    except EXITS as exc:
        done = logic.on_exit(seqs, items, exc, order)
        actor.items_in -= len(items) - done
        raise
    actor.batch_event(len(items), len(out[1]))
    return out


async def run_cycle(actor: Actor, logic: Logic, inbox: Mailbox | ZipInbox) -> None:
    """Run *actor*'s input through *logic* until it ends, then the logic's ``on_eof``."""
    workers = actor.spec.concurrency if logic.pooled else 1
    if workers == 1:
        take = actor.take if actor.limiter is None else actor.take_throttled
        while (batch := await take(inbox)) is not None:
            out = await step(actor, logic, batch, flush=True)
            await actor.send(*out)
            logic.sent(batch[0])
    else:
        await WorkerPool(actor, logic, inbox, workers).run()
    await logic.on_eof()


async def run_pull(
    actor: Actor, pull: Callable[[int], Batch | None], deliver: Callable[[list[Any], list[Any]], Awaitable[None]]
    | None = None, count_in: bool = True,
) -> None:
    """The cycle of an actor that starts a stream rather than reads one (a sync source, a cache hit
    replaying its recorded batches): at the checkpoint gate, ``pull`` gives the next batch of at
    most the sizer's size, numbered and checked (None: the stream ended); it is counted (as items
    in, for a source: items produced), announced and delivered (sent downstream, by default)."""
    sup = actor.sup
    send = deliver if deliver is not None else actor.send
    while True:
        if sup.pending:
            await sup.gate()
        await actor.breathe()
        batch = pull(actor.sizer.size)
        if batch is None:
            return
        if count_in:
            actor.items_in += len(batch[1])
        actor.batch_event(0, len(batch[1]))
        await send(*batch)


class WorkerPool:
    """*n* workers running the cycle on one inbox (see the module docstring).

    The actor keeps what a checkpoint must see: ``done_out`` (finished output batches waiting for
    their turn, by ticket) and ``taken`` (ordered pools: each ticket's input batch until its output
    is sent, so an exit can put it back).
    """

    def __init__(self, actor: Actor, logic: Logic, inbox: Mailbox | ZipInbox, n: int) -> None:
        self.actor = actor
        self.logic = logic
        self.inbox = inbox
        self.n = n
        self.ordered = actor.spec.ordered and actor.spec.kind != "sink"
        self.next_ticket = 0
        self.next_emit = 0
        self.lock = trio.Lock()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for slot in range(self.n):
                nursery.start_soon(self.worker, slot)
        if self.actor.exited is not None:
            raise self.actor.exited

    async def worker(self, slot: int) -> None:
        actor = self.actor
        take = actor.take if actor.limiter is None else actor.take_throttled
        while actor.exited is None:
            batch = await take(self.inbox, actor.share(self.inbox, self.n))
            if batch is None:
                return
            ticket = self.next_ticket
            self.next_ticket += 1
            if self.ordered:
                actor.taken[ticket] = batch
            try:
                out = await step(actor, self.logic, batch, flush=False, order=ticket)
            except EXITS:
                return  # put back by the logic; the actor stops once every worker has
            except ItemFailure as exc:
                actor.failed(exc.seq, exc.error)
                return
            except BaseException as exc:
                if not (is_failure(exc) or isinstance(exc, MailboxTypeError)):
                    raise
                actor.failed(getattr(exc, "seq", None), exc)
                return
            if not self.ordered:
                await actor.send(*out, slot=slot)
                self.logic.sent(batch[0])
                continue
            actor.done_out[ticket] = out
            async with self.lock:
                await self._emit_in_order(slot)

    async def _emit_in_order(self, slot: int) -> None:
        """Send every finished batch whose turn has come (in ticket order)."""
        actor = self.actor
        while self.next_emit in actor.done_out:
            seqs, out = actor.done_out.pop(self.next_emit)
            in_seqs = actor.taken.pop(self.next_emit)[0]
            self.next_emit += 1
            await actor.send(seqs, out, slot=slot)
            self.logic.sent(in_seqs)  # in ticket order: everything up to here was sent
