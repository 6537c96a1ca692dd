"""Executor-backed tasks: whole batches run in worker processes or on Dask, in place of the local loop.

The worker calls the task with the same calling convention as inline (``_calls``); a worker's
failure on one item comes back with its index and goes through the actor's item loop
(:meth:`ItemLoop.recover`), exactly as inline: retry it (the rest of the batch is sent again from
that item), go on without it (dead letter), or fail the run naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final

import trio

from ._calls import target_of
from ._errors import ItemFailure
from ._executors import BatchCall, Session
from ._loop import child_seq
from ._typing import SKIP

if TYPE_CHECKING:
    from ._actor import Actor
    from ._loop import ItemLoop


@final
class RemoteBatches:
    """Runs a task's batches in an opened executor :class:`Session`."""

    def __init__(self, actor: Actor, loop: ItemLoop, session: Session, call: BatchCall) -> None:
        self.actor = actor
        self.loop = loop
        self.session = session
        self.call = call
        #: The index in its batch of the item that raised KeyboardInterrupt or SystemExit in a worker.
        self.exit_at = 0

    async def process(self, seqs: list[Any], items: list[Any]) -> tuple[list[Any], list[Any]]:
        """Run one batch in the executor; returns the checked output batch."""
        out: list[Any] = []
        pos, attempt, failed = 0, 1, -1
        while pos < len(items):
            try:
                done, index, error = await self.session.run(self.call, items[pos:] if pos else items)
            except (trio.Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # the batch could not run (a worker died, a value could not be sent)
                raise ItemFailure(seqs[pos] if len(seqs) - pos == 1 else None, exc) from exc
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


@asynccontextmanager
async def open_remote(actor: Actor, loop: ItemLoop, consts: dict[str, Any]) -> AsyncIterator[RemoteBatches | None]:
    """The actor's executor opened for the length of its run (None when the task runs inline)."""
    spec = actor.spec
    if spec.executor is None:
        yield None
        return
    names = tuple(i.name for i in spec.streaming_inputs)
    # a task class travels by reference; workers make instances
    call = BatchCall(fn=target_of(spec.fn), consts=dict(consts), names=names, positional=spec.positional,
                     generator=spec.is_generator, timeout=spec.timeout)
    async with spec.executor.session() as session:
        yield RemoteBatches(actor, loop, session, call)
