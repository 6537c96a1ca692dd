"""Sources, tasks and sinks: the actor kinds that stream item by item (collectors: ``_collect``)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from itertools import islice
from typing import Any

import trio

from ._actor import Actor
from ._codec import plain_batch, seq_from_plain
from ._errors import ItemFailure
from ._inbox import ZipInbox
from ._loop import child_seq, closing
from ._mailbox import Batch, Mailbox
from ._remote import RemoteBatches, open_remote


class SourceActor(Actor):
    """A generator function (or a task fed only final inputs that yields): starts a stream.

    ``cursor`` counts the items taken from the generator and handed to ``send``; a resumed run
    starts the generator there (through its ``af.Cursor`` parameter, or by skipping).
    """

    required_state = ("cursor",)
    cursor = 0

    async def main(self) -> None:
        assert self.loop is not None
        attempt, failed_at = 1, -1
        while True:
            try:
                if self.spec.is_async:
                    await self._pump_async()
                else:
                    await self._pump_sync()
                return
            except ItemFailure as exc:
                attempt = attempt + 1 if exc.seq == failed_at else 1
                failed_at = exc.seq
                error = exc.error if isinstance(exc.error, Exception) else exc
                if not await self.loop.recover(exc.seq, None, error, attempt):
                    raise

    def _open(self) -> tuple[Any, int]:
        assert self.handler is not None
        try:
            return self.handler.open_stream(self.cursor)
        except Exception as exc:
            raise ItemFailure(self.cursor, exc) from exc

    async def _pump_sync(self) -> None:
        gen, skip = self._open()
        bs = self.spec.batch_size
        sup = self.sup
        with closing(gen):
            try:
                if skip:
                    deque(islice(gen, skip), maxlen=0)
            except Exception as exc:
                raise ItemFailure(self.cursor, exc) from exc
            while True:
                if sup.pending:
                    await sup.gate()
                n = self.cursor
                items: list[Any] = []
                try:
                    items.extend(islice(gen, bs))  # on an error, `items` keeps what came before it
                except Exception as exc:
                    raise ItemFailure(n + len(items), exc) from exc
                if not items:
                    return
                await self._emit(n, items)

    async def _emit(self, n: int, items: list[Any]) -> None:
        self.cursor = n + len(items)
        seqs, items = self.check(list(range(n, n + len(items))), items)
        self.items_in += len(items)
        self.batch_event(0, len(items))
        await self.send(seqs, items)

    async def _pump_async(self) -> None:
        # The generator runs in its own task and appends to `buf`; the flusher sends whatever
        # accumulated each time the generator actually suspends, so batches form by themselves.
        # Items still in `buf` are not counted by the cursor: a resumed run produces them again.
        agen, skip = self._open()
        buf: list[Any] = []
        state: dict[str, Any] = {"done": False, "error": None, "skip": skip}
        wake = trio.lowlevel.ParkingLot()
        space = trio.lowlevel.ParkingLot()
        bs = self.spec.batch_size

        async def pump() -> None:
            try:
                async with _aclosing(agen) as items:
                    async for x in items:
                        if state["skip"]:
                            state["skip"] -= 1
                            continue
                        buf.append(x)
                        if wake:
                            wake.unpark_all()
                        while len(buf) >= bs:
                            await space.park()
            except Exception as exc:
                state["error"] = ItemFailure(self.cursor + len(buf), exc)
            state["done"] = True
            wake.unpark_all()

        async def flush() -> None:
            sup = self.sup
            while True:
                if sup.pending:
                    await sup.gate()
                if buf:
                    items = buf[:]
                    buf.clear()
                    space.unpark_all()
                    await self._emit(self.cursor, items)
                elif state["done"]:
                    return
                else:
                    await wake.park()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            nursery.start_soon(flush)
        if state["error"] is not None:
            raise state["error"]

    def state(self) -> dict[str, Any]:
        return {**super().state(), "cursor": self.cursor}

    def restore(self, st: dict[str, Any]) -> None:
        super().restore(st)
        self.cursor = st["cursor"]


class _aclosing:
    """``contextlib.aclosing`` for an object that may be any async iterable."""

    def __init__(self, agen: Any) -> None:
        self.agen = agen

    async def __aenter__(self) -> AsyncIterator[Any]:
        return self.agen  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        close = getattr(self.agen, "aclose", None)
        if close is not None:
            await close()


class TaskActor(Actor):
    """Runs once per item (or once, when fed only final inputs)."""

    #: With an executor: runs whole batches remotely in place of the per-item loop.
    remote: RemoteBatches | None = None
    #: Generator task stopped mid-batch (set while it waits to send): remaining seqs, items, and
    #: how many children of the first remaining item were already emitted.
    inflight: tuple[list[Any], list[Any], int] | None = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: Finished output batches of concurrent workers waiting for their turn (ticket -> batch).
        self.done_out: dict[int, Batch] = {}

    async def main(self) -> None:
        spec, handler, loop = self.spec, self.handler, self.loop
        assert handler is not None and loop is not None
        if not spec.streaming_inputs:
            try:
                value = await handler.product()
            except Exception as exc:
                raise ItemFailure(None, exc) from exc
            self.check_product(value)
            self.items_out = 1
            self.product.set(value)
            return
        inbox = self.inbox()
        async with open_remote(self, loop, handler.consts) as remote:
            self.remote = remote
            if spec.concurrency == 1:
                while (batch := await self.take(inbox)) is not None:
                    with self.sup.working():
                        seqs, out = await self.process(batch, flush=True)
                    self.batch_event(len(batch[1]), len(out))
                    await self.send(seqs, out)
                    self._advance(batch)
            else:
                await self._workers(inbox)

    def _advance(self, batch: Batch) -> None:
        if self.spec.ordered and batch[0]:
            self.advance(batch[0][-1])

    async def _workers(self, inbox: Mailbox | ZipInbox) -> None:
        n = self.spec.concurrency
        ordered = self.spec.ordered
        done = self.done_out
        counters = {"take": 0, "emit": 0}
        lock = trio.Lock()
        sup = self.sup

        async def worker(slot: int) -> None:
            while True:
                chunk = max(1, min(self.spec.batch_size, len(inbox) // n)) if isinstance(inbox, Mailbox) else 0
                batch = await self.take(inbox, chunk)
                if batch is None:
                    return
                ticket = counters["take"]
                counters["take"] += 1
                try:
                    with sup.working():
                        seqs, out = await self.process(batch, flush=False)
                except ItemFailure as exc:
                    self.failed(exc.seq, exc.error)
                    return
                except Exception as exc:
                    self.failed(getattr(exc, "seq", None), exc)
                    return
                self.batch_event(len(batch[1]), len(out))
                if not ordered:
                    await self.send(seqs, out, slot=slot)
                    continue
                done[ticket] = (seqs, out)
                async with lock:
                    while counters["emit"] in done:
                        s, o = done.pop(counters["emit"])
                        counters["emit"] += 1
                        await self.send(s, o, slot=slot)

        async with trio.open_nursery() as nursery:
            for slot in range(n):
                nursery.start_soon(worker, slot)

    async def process(self, batch: Batch, flush: bool) -> Batch:
        """Call the task on every item of *batch*; returns the output batch."""
        seqs, items = batch
        self.items_in += len(items)
        if self.remote is not None:
            return await self.remote.process(seqs, items)
        if self.spec.is_generator:
            return await self._generate(seqs, items, flush)
        assert self.loop is not None
        return self.check(seqs, await self.loop.map(seqs, items))

    async def _generate(self, seqs: list[Any], items: list[Any], flush: bool) -> Batch:
        assert self.loop is not None
        out_seqs: list[Any] = []
        out: list[Any] = []
        bs = self.spec.batch_size
        async for idx, j, r in self.loop.generate(seqs, items):
            out_seqs.append(child_seq(seqs[idx], j))
            out.append(r)
            if flush and len(out) >= bs:
                await self._flush_mid(seqs, items, idx, j + 1, out_seqs, out)
                out_seqs, out = [], []
        return self.check(out_seqs, out)

    async def _flush_mid(
        self, seqs: list[Any], items: list[Any], idx: int, emitted: int, out_seqs: list[Any], out: list[Any]
    ) -> None:
        """Send part of a batch's output; a checkpoint meanwhile records the rest as in flight."""
        self.inflight = (seqs[idx:], items[idx:], emitted)
        try:
            with self.sup.parked():
                await self.send(*self.check(out_seqs, out))
        finally:
            self.inflight = None

    def state(self) -> dict[str, Any]:
        st = super().state()
        if self.done_out:
            st["outboxes"] += [[*plain_batch(s, i), 0] for _, (s, i) in sorted(self.done_out.items())]
        if self.inflight is not None:
            seqs, items, emitted = self.inflight
            st["inflight"] = [*plain_batch(seqs, items), emitted]
        return st

    def restore(self, st: dict[str, Any]) -> None:
        super().restore(st)
        if "inflight" in st:  # the unfinished input batch goes back to the front of the inbox
            seqs, items, emitted = st["inflight"]
            seqs = [seq_from_plain(s) for s in seqs]
            self.skip_first = {seqs[0]: emitted} if emitted else {}
            boxes = self.inboxes
            if len(boxes) == 1:
                boxes[0].put_front(seqs, items)
            else:
                for k, box in enumerate(boxes):
                    box.put_front(seqs, [t[k] for t in items])

    #: After a resume: children of the first re-queued item already emitted (handed to the item loop).
    skip_first: dict[Any, int] | None = None

    async def resend_restored(self) -> None:
        if self.skip_first and self.loop is not None:
            self.loop.skip_children.update(self.skip_first)
            self.skip_first = None
        await super().resend_restored()


class SinkActor(Actor):
    """Calls the sink once per item; nothing goes downstream."""

    async def main(self) -> None:
        inbox = self.inbox()
        sup = self.sup
        loop = self.loop
        assert loop is not None

        async def consume() -> None:
            while True:
                chunk = max(1, len(inbox) // self.spec.concurrency) if isinstance(inbox, Mailbox) else 0
                batch = await self.take(inbox, chunk)
                if batch is None:
                    return
                seqs, items = batch
                with sup.working():
                    await loop.map(seqs, items)
                self.items_in += len(items)
                self.batch_event(len(items), 0)

        if self.spec.concurrency == 1:
            await consume()
        else:

            async def guarded() -> None:
                try:
                    await consume()
                except ItemFailure as exc:
                    self.failed(exc.seq, exc.error)

            async with trio.open_nursery() as nursery:
                for _ in range(self.spec.concurrency):
                    nursery.start_soon(guarded)
        self.product.set(None)
