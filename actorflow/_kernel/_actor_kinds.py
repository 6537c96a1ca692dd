"""Sources, tasks and sinks: the actor kinds that stream item by item (collectors: ``_collect``)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from itertools import count, islice
from time import perf_counter
from typing import Any

import trio

from .._base import ItemFailure
from .._define import end_of_stream_of
from .._storage import plain_batch, seq_from_plain
from ._actor import Actor
from ._cycle import NO_OUTPUT, run_cycle, run_pull
from ._inbox import watermark_of
from ._loop import EXITS, after_seq, child_seq, closing, end_items, is_failure, next_seq
from ._mailbox import Batch
from ._partition import keyed_logic
from ._remote import RemoteBatches, open_remote
from ._source_position import position_of, resume_at
from ._state import ABSENT, SourceState, TaskState

#: Seconds between two items of an async source after which the second is sent at once (the
#: generator paused: nothing would join its batch); items closer together are batched.
SPARSE_GAP = 20e-6


class SourceActor(Actor):
    """A generator function (or a task fed only final inputs that yields): starts a stream.

    ``cursor`` counts the items taken from the generator and handed to ``send``; a resumed run
    starts the generator there (through its ``af.Cursor`` parameter, or by skipping).
    """

    cursor = 0
    #: Where the source stood at the last checkpoint beyond its count (``_source_position``).
    position: Any = None
    #: A sync source's failure, raised at the next pull once the items before it are sent.
    _failure: ItemFailure | None = None

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
                if not await self.loop.recover(exc.seq, None, exc.error, attempt):
                    if self.cursor != exc.seq:  # a generator that stopped short of the item cannot go past it
                        raise
                    self.cursor = exc.seq + 1  # dead-lettered (a source with an af.Cursor): reopen past it

    def _open(self) -> tuple[Any, int]:
        assert self.handler is not None
        self._failure = None
        resume_at(self.handler, self.cursor, self.position)  # a refusal (an input changed) is no item's failure
        try:
            return self.handler.open_stream(self.cursor)
        except BaseException as exc:
            if not is_failure(exc):
                raise
            raise ItemFailure(self.cursor, exc) from exc

    async def _pump_sync(self) -> None:
        gen, skip = self._open()
        with closing(gen):
            if skip:
                # the generator's first item is item cursor - skip: an error while skipping names
                # the item that failed, counted as the zip pulls them (the count only moves on success)
                skipped = count()
                try:
                    deque(zip(islice(gen, skip), skipped, strict=False), maxlen=0)
                except BaseException as exc:
                    if not is_failure(exc):
                        raise
                    raise ItemFailure(self.cursor - skip + next(skipped), exc) from exc
            await run_pull(self, lambda size: self._pull(gen, size))

    def _pull(self, gen: Any, size: int) -> Batch | None:
        """Up to *size* items from the generator, numbered from the cursor and checked (None: it ended).

        When the generator raises after some items, those are the batch and the failure is raised
        at the next pull: the cursor then stands at the failed item (a dead letter goes on past it).
        """
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        n = self.cursor
        items: list[Any] = []
        t0 = perf_counter()
        try:
            items.extend(islice(gen, size))  # on an error, `items` keeps what came before it
        except BaseException as exc:
            if not is_failure(exc):
                raise
            failure = ItemFailure(n + len(items), exc)
            failure.__cause__ = exc
            if not items:
                raise failure from exc
            self._failure = failure
        if not items:
            return None
        took = perf_counter() - t0
        self.sizer.adjust(len(items), took)
        self.busy_time += took
        self.cursor = n + len(items)
        return self.out_check.batch(range(n, n + len(items)), items)  # type: ignore[arg-type]  # a range: no list

    async def _emit(self, n: int, items: list[Any]) -> None:
        """Send *items*, numbered from *n*: the cursor counts them from now."""
        self.cursor = n + len(items)
        seqs, items = self.out_check.batch(range(n, n + len(items)), items)  # type: ignore[arg-type]  # a range: no list per batch
        self.items_in += len(items)
        self.batch_event(0, len(items))
        await self.send(seqs, items)

    async def _pump_async(self) -> None:
        await _AsyncPump(self).run()

    state_type = SourceState

    def state(self) -> SourceState:
        self.position = position_of(self.handler, self.cursor, self.position)
        position = ABSENT if self.position is None else self.position
        return SourceState(**self.common_state(), cursor=self.cursor, position=position)

    def restore(self, st: Any) -> None:
        super().restore(st)
        self.cursor = st.cursor
        self.position = None if st.position is ABSENT else st.position


class _AsyncPump:
    """Runs an async source's generator for :class:`SourceActor`.

    The generator runs in its own task (:meth:`pump`) and appends to ``buf``; the flusher
    (:meth:`flush`) sends whatever accumulated each time the generator actually suspends, so
    batches form by themselves. An item that comes after a pause (a sparse stream: a feed, a
    socket) while the flusher is idle is sent by the pump itself, one hand-off sooner; an item fed
    to an external source while everything here is idle is sent by the feeder itself
    (:meth:`emit_now`), sooner still. Items still in ``buf`` are not counted by the cursor: a
    resumed run produces them again.
    """

    def __init__(self, actor: SourceActor) -> None:
        self.actor = actor
        self.agen, self.skip = actor._open()
        #: Items the generator gave in this attempt; its first one is item ``first``.
        self.pos = 0
        self.first = actor.cursor - self.skip
        self.buf: list[Any] = []
        self.done = False
        self.idle = False
        self.last = 0.0
        self.error: BaseException | None = None
        self.wake = trio.lowlevel.ParkingLot()
        self.space = trio.lowlevel.ParkingLot()

    async def run(self) -> None:
        actor = self.actor
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.pump)
                nursery.start_soon(self.flush)
        finally:
            feed = actor.run.feeds.get(actor.name)
            if feed is not None:
                feed.direct = None
        if self.error is not None:
            raise self.error

    async def pump(self) -> None:
        actor, buf, bs = self.actor, self.buf, self.actor.spec.batch_size
        try:
            async with _aclosing(self.agen) as items:
                async for x in items:
                    self.pos += 1
                    if self.skip:
                        self.skip -= 1
                        continue
                    buf.append(x)
                    now = perf_counter()
                    sparse, self.last = now - self.last > SPARSE_GAP, now
                    if sparse and self.idle and not actor.sup.pending and not actor.run.paused:
                        now_items = buf[:]
                        buf.clear()
                        self.idle = False  # the flusher must not send while this does
                        try:
                            await actor._emit(actor.cursor, now_items)
                        finally:
                            self.idle = True
                        continue
                    if self.wake:
                        self.wake.unpark_all()
                    while len(buf) >= bs:
                        await self.space.park()
                    await actor.breathe()  # a generator that never suspends still lets others run
        except EXITS as exc:  # what came before is sent; the cursor never counts what did not come
            self.error = exc
            actor.exit_seq = self.first + self.pos
        except BaseException as exc:
            if not is_failure(exc):
                raise
            self.error = ItemFailure(self.first + self.pos, exc)
        self.done = True
        self.wake.unpark_all()

    async def flush(self) -> None:
        actor, buf = self.actor, self.buf
        sup = actor.sup
        while True:
            if sup.pending:
                await sup.gate()
            if buf:
                items = buf[:]
                buf.clear()
                self.space.unpark_all()
                await actor._emit(actor.cursor, items)
            elif self.done:
                return
            else:
                self.idle = True
                feed = actor.run.feeds.get(actor.name)  # an external source's feed, once it exists
                if feed is not None and feed.direct is None:
                    feed.direct = self.emit_now
                await self.wake.park()
                self.idle = False

    def emit_now(self, item: Any) -> bool:
        """Send one item fed from outside in the feeder's own step, as the pump would send it: only
        while the pump waits on an empty feed and nothing is queued here. False: not sent."""
        actor = self.actor
        if not self.idle or self.buf or self.skip or self.done or actor.sup.pending:
            return False
        n = actor.cursor
        try:
            seqs, items = actor.out_check.batch([n], [item])
            if not actor.send_now(seqs, items):
                return False
        except Exception:
            return False  # the pump sends it the usual way, and fails the run if it must
        self.pos += 1
        self.last = perf_counter()
        actor.cursor = n + 1
        actor.items_in += 1
        actor.batch_event(0, len(items))
        return True


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
    #: After an exit in a generator task: how many of its batch's items had all their children sent.
    gen_done = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: The task class's ``end_of_stream`` (None: it has none, or the task reads no stream).
        self.eos = end_of_stream_of(self.spec.fn) if self.spec.streaming_inputs else None
        #: Whether ``end_of_stream`` ran (its items then are in the outbox or sent), and the last input seq.
        self.eos_done = False
        self.last_in: Any = None

    async def main(self) -> None:
        spec, handler, loop = self.spec, self.handler, self.loop
        assert handler is not None and loop is not None
        if not spec.streaming_inputs:
            made, value = await loop.once(None, lambda: handler.product())
            if made:
                self.out_check.product(value)
                self.items_out = 1
            self.product.set(value)
            return
        async with open_remote(self, loop, handler.consts) as remote:
            self.remote = remote
            await run_cycle(self, keyed_logic(self) or self, self.inbox())  # key=: key lanes (see _partition)

    # -- the task's logic in the batch cycle (see ``_cycle``) ----------------------------------------

    pooled = True

    async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> Batch:
        """Call the task on every item of the batch; returns the checked output batch."""
        if self.eos is not None and seqs:
            last = seqs[-1] if self.spec.ordered else max(seqs)
            if self.last_in is None or last > self.last_in:
                self.last_in = last
        if self.remote is not None:
            return await self.remote.process(seqs, items)
        if self.spec.is_generator:
            return await self._generate(seqs, items, flush, order)
        assert self.loop is not None
        return self.out_check.batch(seqs, await self.loop.map(seqs, items))

    def on_exit(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int) -> int:
        """User code raised an exit: a generator task put back the items whose children were not all
        sent; one map worker keeps the outputs of the items before the one that raised; otherwise the
        batch goes back whole (its outputs are computed again after a resume)."""
        if self.remote is None and self.spec.is_generator:
            return self.gen_done
        if self.remote is None and order == 0 and self.spec.concurrency == 1 and self._keep_done(seqs, items, exc):
            return self.loop.position() if self.loop is not None else 0
        at = self.remote.exit_at if self.remote is not None else self.loop.position() if self.loop else 0
        self.put_back(seqs, items, exc, order)
        self.exit_seq = seqs[min(at, len(seqs) - 1)]
        return 0

    def sent(self, in_seqs: list[Any]) -> None:
        """Readers learn that nothing numbered up to the batch's last input will come any more."""
        if self.spec.ordered and in_seqs:
            self.advance(watermark_of(in_seqs[-1], self.spec.is_generator))

    async def on_eof(self) -> None:
        if self.eos is not None and not self.eos_done:
            await self._end_of_stream(self.eos)


    async def _end_of_stream(self, eos: Any) -> None:
        """Call the task class's ``end_of_stream`` once; its items follow the last input item's outputs.

        They are numbered as the outputs of virtual input items just after the last one (see
        :func:`~actorflow._kernel._loop.after_seq`). ``eos_done`` is set in the same step that puts them in
        the outbox, so a checkpoint holds either neither or both.
        """
        assert self.handler is not None
        sup = self.sup
        if sup.pending:
            await sup.gate()
        spec = self.spec
        in_depth = spec.depth - 1 if spec.is_generator else spec.depth
        first = after_seq(self.last_in, in_depth)
        assert self.loop is not None
        handler = self.handler
        with self.working(([first], [None])):
            _, items = await self.loop.once(first, lambda: end_items(eos(handler.instance)))
            items = items or []
            if spec.is_generator:
                seqs = [child_seq(first, j) for j in range(len(items))]
            else:
                seqs = [first if j == 0 else next_seq(first, j) for j in range(len(items))]
            seqs, items = self.out_check.batch(seqs, items)
        self.batch_event(0, len(items))
        self.eos_done = True
        await self.send(seqs, items)

    def _keep_done(self, seqs: list[Any], items: list[Any], exc: BaseException) -> bool:
        """An exit on item ``position()`` of a map batch (one worker): the outputs of the items before it
        go to the outbox and only the rest is put back, so a stateful task never sees an item twice."""
        assert self.loop is not None
        at = self.loop.position()
        try:
            out_seqs, out = self.out_check.batch(seqs[:at], self.loop.current[:at])
        except Exception:
            return False  # the outputs fail their check: the whole batch goes back and runs again
        if out:
            self.resend.append([out_seqs, out, 0])
        self.put_back(seqs[at:], items[at:], exc)
        self.exit_seq = seqs[min(at, len(seqs) - 1)]
        return True


    async def _generate(self, seqs: list[Any], items: list[Any], flush: bool, order: int = 0) -> Batch:
        assert self.loop is not None
        out_seqs: list[Any] = []
        out: list[Any] = []
        bs, bt = self.spec.batch_size, self.batch_time
        t0 = perf_counter()
        sent = (0, self.skip_children.get(seqs[0], 0) if seqs and self.skip_children else 0)  # (item, children) sent
        try:
            async for idx, j, r in self.loop.generate(seqs, items):
                out_seqs.append(child_seq(seqs[idx], j))
                out.append(r)
                if flush and (len(out) >= bs or perf_counter() - t0 >= bt):  # a full batch, or a batch time
                    await self._flush_mid(seqs, items, idx, j + 1, out_seqs, out)
                    out_seqs, out = [], []
                    sent = (idx, j + 1)
                    t0 = perf_counter()
        except EXITS as exc:  # what was sent stays sent: put back from the item whose children were not all sent
            self.gen_done = sent[0]
            self.put_back(seqs[sent[0]:], items[sent[0]:], exc, order, sent[1])
            raise
        return self.out_check.batch(out_seqs, out)

    async def _flush_mid(
        self, seqs: list[Any], items: list[Any], idx: int, emitted: int, out_seqs: list[Any], out: list[Any]
    ) -> None:
        """Send part of a batch's output; a checkpoint meanwhile records the rest as in flight."""
        self.inflight = (seqs[idx:], items[idx:], emitted)
        try:
            with self.sup.parked():
                await self.send(*self.out_check.batch(out_seqs, out))
        finally:
            self.inflight = None

    state_type = TaskState

    def state(self) -> TaskState:
        st = TaskState(**self.common_state())
        if self.eos is not None:
            st.eos = self.eos_done
            st.last_in = list(self.last_in) if isinstance(self.last_in, tuple) else self.last_in
        if self.done_out and self.exited is None:
            st.outboxes += [[*plain_batch(s, i), 0] for _, (s, i) in sorted(self.done_out.items())]
        elif self.done_out:  # an earlier batch is put back: these follow it in order, so they go back too
            st.inflight = self.unfinished_state(tuple((t, *self.taken[t], 0) for t in self.done_out))
        if self.inflight is not None:
            seqs, items, emitted = self.inflight
            st.inflight = [*plain_batch(seqs, items), emitted]
        return st

    def restore(self, st: Any) -> None:
        super().restore(st)
        if self.eos is not None:
            self.eos_done = bool(st.eos) if st.eos is not ABSENT else False
            last = None if st.last_in is ABSENT else st.last_in
            self.last_in = None if last is None else seq_from_plain(last)


class SinkActor(Actor):
    """Calls the sink once per item; nothing goes downstream."""

    pooled = True

    async def main(self) -> None:
        await run_cycle(self, self, self.inbox())

    async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> Batch:
        assert self.loop is not None
        await self.loop.map(seqs, items)
        return NO_OUTPUT

    def on_exit(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int) -> int:
        """The items before the one that raised were delivered: put back the rest."""
        at = self.loop.position() if self.loop is not None else 0
        self.put_back(seqs[at:], items[at:], exc, order=seqs[at] if isinstance(seqs[at], int) else 0)
        return at

    def sent(self, in_seqs: list[Any]) -> None:
        pass

    async def on_eof(self) -> None:
        self.product.set(None)
