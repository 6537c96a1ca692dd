"""Actors: the running form of each task kind.

Every actor follows the same loop: take a batch from its inbox, call the user's function on each
item in a plain loop, send the outputs downstream as one batch, repeat. It awaits only when its
inbox is empty, when a downstream mailbox is full, or when user code itself awaits.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from contextlib import aclosing
from itertools import islice
from operator import length_hint
from typing import TYPE_CHECKING, Any

import trio

from . import _events as ev
from ._cache import record, save
from ._calls import bind_consts, is_async_callable, item_call, step_call
from ._codec import restore, restore_items
from ._context import context_for, redact, scrub
from ._errors import MailboxTypeError, TaskFailed
from ._executors import open_task_session
from ._flow import TaskDef
from ._inbox import ZipInbox
from ._mailbox import Batch, Mailbox
from ._named import NamedType
from ._policy import Fail
from ._supervisor import ItemFailure
from ._typing import SKIP, _Skip, type_name

if TYPE_CHECKING:
    from ._run import Run


class Product:
    """A final product: set once, awaited by every task that reads it whole."""

    __slots__ = ("ready", "value")

    def __init__(self) -> None:
        self.ready = trio.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self.ready.set()


#: User code raised on one item and its policy gave up; carries the item's sequence number.
_ItemError = ItemFailure
_FAIL = Fail()


def child_seq(seq: Any, j: int) -> Any:
    """Sequence number of the *j*-th item a generator task yields for the item *seq*."""
    return (seq, j) if type(seq) is int else (*seq, j)


def seq_prefix(seq: Any, depth: int) -> Any:
    """The sequence number of *seq*'s ancestor at generator level *depth*."""
    if type(seq) is int:
        return seq
    return seq[0] if depth == 1 else seq[:depth]


class Actor:
    """Base actor: wiring, counters, sending, type checks, lifecycle events, supervision hooks."""

    # Cache state (see _cache): "hit", "miss" or None (not cacheable / no cache).
    cache: str | None = None
    cache_key: str | None = None
    cache_entry: dict[str, Any] | None = None
    cache_reason = ""
    #: A hit replays its stream (a consumer runs) / loads its items (the result or a consumer needs them).
    cache_replay = False
    cache_items = False
    #: Batches of a hit's stream already replayed (a checkpoint keeps it).
    replayed = 0
    #: A miss's sent batches, encoded, until it finishes and they are written.
    recording: list[bytes] | None = None
    recorded = 0
    recorded_bytes = 0

    def __init__(self, run: Run, spec: TaskDef) -> None:
        self.run = run
        self.spec = spec
        self.name = spec.name
        self.sup = run.supervisor
        self.inboxes: list[Mailbox] = []
        self.outs: list[Mailbox] = []
        self.gather: list[Any] | None = None
        self.in_result = False
        self.product = Product()
        self.items_in = 0
        self.items_out = 0
        self.started = 0.0
        self.elapsed = 0.0
        self.status = "pending"
        self.taps: list[Any] = []  # callables(seqs, items) that watch the output; see _gateway
        #: Batches being sent: slot -> [seqs, items, index of the next downstream mailbox].
        self.outboxes: dict[int, list[Any]] = {}
        #: Outboxes restored from a checkpoint, sent before anything else.
        self.resend: list[list[Any]] = []
        #: True when a checkpoint says this actor had finished: it only replays its ending.
        self.restored_finished = False
        self._consts: dict[str, Any] = {}
        classes = spec.out_classes
        self._classes = classes
        self._named = spec.out_type if isinstance(spec.out_type, NamedType) else None
        self._allowed: set[type] = set(classes) if classes is not None else set()
        self._allowed.add(_Skip)

    # -- plumbing ------------------------------------------------------------------------------

    def inbox(self) -> Mailbox | ZipInbox:
        if len(self.inboxes) == 1:
            return self.inboxes[0]
        zipped = getattr(self, "_zip", None)
        if zipped is None:
            zipped = self._zip = ZipInbox(self.inboxes, ordered=self.spec.ordered, batch_size=self.spec.batch_size)
        return zipped

    async def send(self, seqs: list[Any], items: list[Any], slot: int = 0, start: int = 0) -> None:
        """Put one output batch in every downstream mailbox (waiting while one is full).

        The batch stays in ``outboxes`` until every mailbox has it, so a checkpoint taken while
        this waits records exactly which mailboxes still need it.
        """
        if not items:
            return
        state = [seqs, items, start]
        self.outboxes[slot] = state
        if self.run._unpaused is not None:
            await self.run.gate()
        for tap in self.taps:
            tap(seqs, items)
        if self.recording is not None:
            record(self, seqs, items)
        outs = self.outs
        for i in range(start, len(outs)):
            state[2] = i
            box = outs[i]
            if box.accepts is not None:
                self.check_port(box, seqs, items)
            await box.put(seqs, items)
        del self.outboxes[slot]
        self.items_out += len(items)
        if self.gather is not None:
            self.gather.extend(items)

    def check(self, seqs: list[Any], items: list[Any]) -> tuple[list[Any], list[Any]]:
        """Type-check outputs against the output port and drop SKIPs (one C-level pass)."""
        seen = set(map(type, items))
        if seen <= self._allowed and _Skip not in seen and self._named is None:
            return seqs, items
        if _Skip in seen:
            keep = [i for i, x in enumerate(items) if x is not SKIP]
            seqs, items = [seqs[i] for i in keep], [items[i] for i in keep]
            seen.discard(_Skip)
        if self._classes is not None:
            for t in seen - self._allowed:
                if issubclass(t, self._classes):
                    self._allowed.add(t)
                else:
                    bad = next(i for i, x in enumerate(items) if type(x) is t)
                    raise self.type_error(items[bad], seqs[bad])
        if self._named is not None:
            for s, x in zip(seqs, items, strict=True):
                self.check_named(x, s)
        return seqs, items

    def check_port(self, box: Mailbox, seqs: list[Any], items: list[Any]) -> None:
        """Check items from an unannotated sender against the receiving port's type."""
        accepts = box.accepts
        assert accepts is not None
        for t in set(map(type, items)):
            if not issubclass(t, accepts):
                bad = next(i for i, x in enumerate(items) if type(x) is t)
                task, _, port = box.name.rpartition(".")
                expected = " | ".join(c.__qualname__ for c in accepts)
                raise MailboxTypeError(self.run.flow_name, task, port, expected, t.__qualname__, seqs[bad])

    def check_named(self, value: Any, seq: Any) -> None:
        """Run a named output type's checks on one value."""
        assert self._named is not None
        why = self._named.problem(value)
        if why is not None:
            raise MailboxTypeError(
                self.run.flow_name, self.name, "out", self._named.name, f"{type(value).__qualname__} {value!r:.40}",
                seq, why,
            )

    def check_product(self, value: Any) -> None:
        """Check a final product against the declared type (named types included)."""
        if self._classes is not None and not isinstance(value, self._classes):
            raise self.type_error(value, None)
        if self._named is not None:
            self.check_named(value, None)

    def type_error(self, value: Any, seq: Any, port: str = "out") -> MailboxTypeError:
        return MailboxTypeError(
            self.run.flow_name, self.name, port, type_name(self.spec.out_type), type(value).__qualname__, seq
        )

    def batch_event(self, n_in: int, n_out: int) -> None:
        bus = self.run.bus
        if bus.active:
            bus.publish(ev.BatchProcessed(run_id=self.run.run_id, task=self.name, items_in=n_in, items_out=n_out))

    # -- supervision ---------------------------------------------------------------------------

    async def take(self, inbox: Mailbox | ZipInbox, chunk: int = 0) -> Batch | None:
        """The next batch, taken at a batch boundary: waits while a checkpoint is pending, then
        marks this actor busy (the caller calls ``sup.leave()`` when the batch is processed).
        None means the stream ended."""
        sup = self.sup
        if sup.pending:
            await sup.gate()
        batch = inbox.get_nowait(chunk) or await inbox.get(chunk)
        if batch is not None:
            sup.busy += 1
        return batch

    @property
    def spec_policy(self) -> Any:
        """The task's failure policy (``Fail()`` when none was given)."""
        return self.spec.on_error if self.spec.on_error is not None else _FAIL

    async def item_error(self, seq: Any, item: Any, exc: Exception, attempt: int) -> bool:
        """User code raised on *item*: True to try it again, False to go on without it."""
        if self.spec.on_error is None or isinstance(exc, MailboxTypeError):
            raise _ItemError(seq, exc) from exc
        return await self.sup.on_item_error(self, seq, item, exc, attempt)

    def restart(self) -> None:
        """Start afresh (the Restart policy): rebuild the call adapters from the bound options."""

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the actor to completion; failures are handed to the run, never raised."""
        run = self.run
        self.status = "running"
        self.started = time.perf_counter()
        run.bus.publish(ev.TaskStarted(run_id=run.run_id, task=self.name))
        if self.cache is not None:
            self.cache_event()
        try:
            if self.restored_finished:
                pass
            elif self.cache == "hit":
                await self._resend()
                await self.replay()
            else:
                consts = dict(run.graph.options[self.name])
                for inp in self.spec.final_inputs:
                    up = run.actors[inp.upstream].product
                    await up.ready.wait()
                    consts[inp.name] = up.value
                if self.spec.context_param is not None:
                    consts[self.spec.context_param] = context_for(run, self.name, self.spec.secrets)
                self._consts = consts
                await self._resend()
                await self.main(consts)
        except _ItemError as exc:
            self._failed(exc.seq, exc.error)
            return
        except (TaskFailed, MailboxTypeError) as exc:
            self._failed(getattr(exc, "seq", None), exc)
            return
        except Exception as exc:
            self._failed(None, exc)
            return
        finally:
            self.elapsed = time.perf_counter() - self.started
        for box in self.outs:
            box.close()
        if self.gather is not None and not self.product.ready.is_set():
            self.product.set(self.gather)
        self.status = "finished"
        if self.cache == "miss":
            save(self)
        run.bus.publish(
            ev.TaskFinished(
                run_id=run.run_id, task=self.name, items_in=self.items_in, items_out=self.items_out,
                elapsed=self.elapsed,
            )
        )

    async def _resend(self) -> None:
        """Send the outboxes a checkpoint restored, before anything new."""
        resend, self.resend = self.resend, []
        for seqs, items, start in resend:
            await self.send(seqs, items, start=start)

    def cache_event(self) -> None:
        run = self.run
        if self.cache == "hit":
            items = self.cache_entry["items"] if self.cache_entry else 0
            run.bus.publish(ev.CacheHit(run_id=run.run_id, task=self.name, key=self.cache_key or "", items=items))
        else:
            run.bus.publish(
                ev.CacheMiss(run_id=run.run_id, task=self.name, key=self.cache_key or "", reason=self.cache_reason)
            )

    async def replay(self) -> None:
        """A cache hit: load the product, or replay the stream in order where it is needed."""
        cache = self.run.cache
        entry = self.cache_entry
        assert cache is not None and entry is not None and self.cache_key is not None
        form = entry["form"]
        if form == "product":
            self.product.set(restore(cache.product(self.cache_key), self.spec.out_type))
            self.items_out = 1
            return
        if form == "sink":
            self.items_in = entry["items"]
            self.product.set(None)
            return
        if not (self.cache_replay or self.cache_items):
            self.gather = None  # nobody reads these items this time
            self.product.set(None)
            self.items_out = entry["items"]
            return
        sup = self.sup
        out_type = self.spec.out_type
        for seqs, plain in cache.chunks(self.cache_key, self.replayed, expect=entry["chunks"]):
            if sup.pending:
                await sup.gate()
            self.replayed += 1
            items = restore_items(plain, out_type)
            self.batch_event(0, len(items))
            if self.cache_replay:
                await self.send(seqs, items)
            else:
                self.gather.extend(items)  # type: ignore[union-attr]
                self.items_out += len(items)

    def _failed(self, seq: Any, error: BaseException) -> None:
        self.status = "failed"
        if isinstance(error, MailboxTypeError):
            exc: BaseException = error
        else:
            exc = TaskFailed(self.run.flow_name, self.name, seq, error)
            exc.__cause__ = error
        text = f"{type(error).__name__}: {error}"
        if self.run.secrets:  # secret values never reach messages, events or chained tracebacks
            exc.args = (redact(str(exc), self.run.secrets),)
            scrub(error, self.run.secrets)
            text = redact(text, self.run.secrets)
        self.run.bus.publish(ev.TaskFailed(run_id=self.run.run_id, task=self.name, seq=seq, error=text))
        self.run.fail(exc)

    async def main(self, consts: dict[str, Any]) -> None:
        raise NotImplementedError


class SourceActor(Actor):
    """A generator function (or a task fed only final inputs that yields): starts a stream.

    ``cursor`` counts the items taken from the generator and handed to ``send``; a resumed run
    starts the generator there (through its ``af.Cursor`` parameter, or by skipping).
    """

    cursor = 0

    async def main(self, consts: dict[str, Any]) -> None:
        attempt, failed_at = 1, -1
        while True:
            try:
                if self.spec.is_async:
                    await self._pump_async(consts)
                else:
                    await self._pump_sync(consts)
                return
            except _ItemError as exc:
                attempt = attempt + 1 if exc.seq == failed_at else 1
                failed_at = exc.seq
                error = exc.error if isinstance(exc.error, Exception) else exc
                if not await self.item_error(exc.seq, None, error, attempt):
                    raise

    def _generator(self, consts: dict[str, Any]) -> tuple[Any, int]:
        """A fresh generator positioned at the cursor, and how many items it must still skip."""
        fn = bind_consts(self.spec, consts)
        if self.spec.cursor_param is not None:
            return fn(**{self.spec.cursor_param: self.cursor}), 0
        return fn(), self.cursor

    async def _pump_sync(self, consts: dict[str, Any]) -> None:
        gen, skip = self._generator(consts)
        bs = self.spec.batch_size
        sup = self.sup
        with _closing(gen):
            try:
                if skip:
                    deque(islice(gen, skip), maxlen=0)
            except Exception as exc:
                raise _ItemError(self.cursor, exc) from exc
            while True:
                if sup.pending:
                    await sup.gate()
                n = self.cursor
                try:
                    items = list(islice(gen, bs))
                except Exception as exc:
                    raise _ItemError(n, exc) from exc
                if not items:
                    return
                self.cursor = n + len(items)
                seqs, items = self.check(list(range(n, n + len(items))), items)
                self.items_in += len(items)
                self.batch_event(0, len(items))
                await self.send(seqs, items)

    async def _pump_async(self, consts: dict[str, Any]) -> None:
        # The generator runs in its own task and appends to `buf`; the flusher sends whatever
        # accumulated each time the generator actually suspends, so batches form by themselves.
        # Items still in `buf` are not counted by the cursor: a resumed run produces them again.
        agen, skip = self._generator(consts)
        buf: list[Any] = []
        state: dict[str, Any] = {"done": False, "error": None, "skip": skip}
        wake = trio.lowlevel.ParkingLot()
        space = trio.lowlevel.ParkingLot()
        bs = self.spec.batch_size
        sup = self.sup

        async def pump() -> None:
            try:
                async with aclosing(agen):
                    async for x in agen:
                        if state["skip"]:
                            state["skip"] -= 1
                            continue
                        buf.append(x)
                        if wake:
                            wake.unpark_all()
                        while len(buf) >= bs:
                            await space.park()
            except Exception as exc:
                state["error"] = _ItemError(self.cursor + len(buf), exc)
            state["done"] = True
            wake.unpark_all()

        async def flush() -> None:
            while True:
                if sup.pending:
                    await sup.gate()
                if buf:
                    items = buf[:]
                    buf.clear()
                    space.unpark_all()
                    n = self.cursor
                    self.cursor = n + len(items)
                    seqs, items = self.check(list(range(n, n + len(items))), items)
                    self.items_in += len(items)
                    self.batch_event(0, len(items))
                    await self.send(seqs, items)
                elif state["done"]:
                    return
                else:
                    await wake.park()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            nursery.start_soon(flush)
        if state["error"] is not None:
            raise state["error"]


class _closing:
    """Close a sync generator when leaving the block (also on cancellation)."""

    def __init__(self, gen: Any) -> None:
        self.gen = gen

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        close = getattr(self.gen, "close", None)
        if close is not None:
            close()


class TaskActor(Actor):
    """Runs once per item (or once, when fed only final inputs)."""

    #: With an executor: runs whole batches remotely in place of the per-item loop (see _executors).
    _session: Any = None
    #: Generator task stopped mid-batch (set while it waits to send): remaining seqs, items, and
    #: how many children of the first remaining item were already emitted.
    inflight: tuple[list[Any], list[Any], int] | None = None
    #: After a resume: item seq -> children already emitted, to skip them.
    skip_children: dict[Any, int] | None = None

    def restart(self) -> None:
        self._call = item_call(self.spec, self._consts)

    async def main(self, consts: dict[str, Any]) -> None:
        spec = self.spec
        if not spec.streaming_inputs:
            fn = bind_consts(spec, consts)
            try:
                value = await fn() if spec.is_async else fn()
            except Exception as exc:
                raise _ItemError(None, exc) from exc
            self.check_product(value)
            self.items_out = 1
            self.product.set(value)
            return
        self._call = item_call(spec, consts)
        self._bs = spec.batch_size
        inbox = self.inbox()
        async with open_task_session(self, consts):
            if spec.concurrency == 1:
                while (batch := await self.take(inbox)) is not None:
                    try:
                        seqs, out = await self.process(batch, flush=True)
                    finally:
                        self.sup.leave()
                    self.batch_event(len(batch[1]), len(out))
                    await self.send(seqs, out)
            else:
                await self._workers(inbox)

    async def _workers(self, inbox: Mailbox | ZipInbox) -> None:
        n = self.spec.concurrency
        ordered = self.spec.ordered
        #: Finished output batches waiting for their turn (ticket -> batch); part of checkpoints.
        self.done_out: dict[int, Batch] = {}
        done = self.done_out
        counters = {"take": 0, "emit": 0}
        lock = trio.Lock()
        sup = self.sup

        async def worker(slot: int) -> None:
            while True:
                chunk = max(1, min(self._bs, len(inbox) // n)) if isinstance(inbox, Mailbox) else 0
                batch = await self.take(inbox, chunk)
                if batch is None:
                    return
                ticket = counters["take"]
                counters["take"] += 1
                try:
                    seqs, out = await self.process(batch, flush=False)
                except Exception as exc:
                    self._failed(exc.seq if isinstance(exc, _ItemError) else getattr(exc, "seq", None),
                                 exc.error if isinstance(exc, _ItemError) else exc)
                    return
                finally:
                    sup.leave()
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
        if self._session is not None:
            done: Batch = await self._session.process(seqs, items)
            return done
        if self.spec.is_generator:
            return await self._generate(seqs, items, flush)
        if self.spec.seq_param is not None:
            items = list(zip(items, seqs, strict=True))
        call = self._call
        out: list[Any] = []
        append = out.append
        is_async = self.spec.is_async
        attempt, pos, failed = 1, 0, -1
        while True:
            try:
                todo = items if pos == 0 else items[pos:]
                if is_async:
                    for x in todo:
                        append(await call(x))
                else:
                    out.extend(map(call, todo))  # a C loop; on an error `out` keeps what was done
                break
            except Exception as exc:
                i = len(out)
                attempt, failed = (attempt + 1 if i == failed else 1), i
                if not await self.item_error(seqs[i], items[i], exc, attempt):
                    append(SKIP)
                pos = len(out)
        return self.check(seqs, out)

    async def _generate(self, seqs: list[Any], items: list[Any], flush: bool) -> Batch:
        call = self._call
        out_seqs: list[Any] = []
        out: list[Any] = []
        is_async = self.spec.is_async
        skips = self.skip_children
        with_seq = self.spec.seq_param is not None
        for idx, (s, x) in enumerate(zip(seqs, items, strict=True)):
            done = skips.pop(s, 0) if skips else 0  # children emitted before a resume or retry
            attempt = 1
            arg = (x, s) if with_seq else x
            while True:
                j = 0
                try:
                    if is_async:
                        async with aclosing(call(arg)) as agen:
                            async for r in agen:
                                if j >= done:
                                    out_seqs.append(child_seq(s, j))
                                    out.append(r)
                                j += 1
                    else:
                        for r in call(arg):
                            if j >= done:
                                out_seqs.append(child_seq(s, j))
                                out.append(r)
                                if flush and len(out) >= self._bs:
                                    await self._flush_mid(seqs, items, idx, j + 1, out_seqs, out)
                                    out_seqs, out = [], []
                            j += 1
                    break
                except (MailboxTypeError, trio.Cancelled):
                    raise
                except Exception as exc:
                    done = max(done, j)
                    if not await self.item_error(s, x, exc, attempt):
                        break
                    attempt += 1
            if flush and len(out) >= self._bs:
                await self._flush_mid(seqs, items, idx + 1, 0, out_seqs, out)
                out_seqs, out = [], []
        return self.check(out_seqs, out)

    async def _flush_mid(
        self, seqs: list[Any], items: list[Any], idx: int, emitted: int, out_seqs: list[Any], out: list[Any]
    ) -> None:
        """Send part of a batch's output; a checkpoint meanwhile records the rest as in flight."""
        self.inflight = (seqs[idx:], items[idx:], emitted)
        self.sup.leave()
        try:
            await self.send(*self.check(out_seqs, out))
        finally:
            self.sup.busy += 1
            self.inflight = None


class SinkActor(Actor):
    """Calls the sink once per item; nothing goes downstream."""

    def restart(self) -> None:
        self._call = item_call(self.spec, self._consts)

    async def main(self, consts: dict[str, Any]) -> None:
        self._call = item_call(self.spec, consts)
        is_async = self.spec.is_async
        with_seq = self.spec.seq_param is not None
        inbox = self.inbox()
        sup = self.sup

        async def consume() -> None:
            while True:
                chunk = max(1, len(inbox) // self.spec.concurrency) if isinstance(inbox, Mailbox) else 0
                batch = await self.take(inbox, chunk)
                if batch is None:
                    return
                seqs, items = batch
                args = list(zip(items, seqs, strict=True)) if with_seq else items
                try:
                    i, attempt = 0, 1
                    while i < len(args):
                        try:
                            if is_async:
                                await self._call(args[i])
                            else:
                                self._call(args[i])
                            i += 1
                            attempt = 1
                        except Exception as exc:
                            if await self.item_error(seqs[i], items[i], exc, attempt):
                                attempt += 1
                            else:
                                i += 1
                                attempt = 1
                finally:
                    sup.leave()
                self.items_in += len(items)
                self.batch_event(len(items), 0)

        if self.spec.concurrency == 1:
            await consume()
        else:

            async def guarded() -> None:
                try:
                    await consume()
                except _ItemError as exc:
                    self._failed(exc.seq, exc.error)

            async with trio.open_nursery() as nursery:
                for _ in range(self.spec.concurrency):
                    nursery.start_soon(guarded)
        self.product.set(None)


class CollectorActor(Actor):
    """Folds a stream: ``acc = step(acc, item)``; one product, or one per group with ``per=``.

    Its state (``acc``, or ``accs``/``known``/``mark`` with ``per=``) is what checkpoints keep.
    """

    acc: Any = None
    acc_restored = False

    def restart(self) -> None:
        self._step = step_call(self.spec, self._consts)

    async def main(self, consts: dict[str, Any]) -> None:
        spec = self.spec
        self._step = step_call(spec, consts)
        self._async = spec.is_async
        self._finish = spec.finish
        if spec.per is not None:
            await self._per_groups()
            return
        inbox = self.inbox()
        if not self.acc_restored:
            self.acc = copy.deepcopy(spec.init)
            self.acc_restored = True  # from here on `acc` is state worth checkpointing
        while (batch := await self.take(inbox)) is not None:
            try:
                self.acc = await self._fold(self.acc, batch)
            finally:
                self.sup.leave()
            self.batch_event(len(batch[1]), 0)
        value = await self._finished(self.acc)
        self.items_out = 1
        self.product.set(value)

    async def _fold(self, acc: Any, batch: Batch) -> Any:
        seqs, items = batch
        step = self._step
        i, n, attempt = 0, len(items), 1
        while i < n:
            try:
                if self._async:
                    for i, x in enumerate(items[i:] if i else items, i):  # noqa: B007, B020
                        acc = await step(acc, x)
                else:
                    rest = iter(items[i:] if i else items)
                    try:
                        for x in rest:
                            acc = step(acc, x)
                    except Exception:
                        i = n - length_hint(rest) - 1  # the item that raised
                        raise
                break
            except Exception as exc:
                if await self.item_error(seqs[i], items[i], exc, attempt):
                    attempt += 1
                else:
                    i += 1
                    attempt = 1
        self.items_in += n
        return acc

    async def _finished(self, acc: Any) -> Any:
        value = acc
        if self._finish is not None:
            try:
                value = self._finish(acc)
                if is_async_callable(self._finish):
                    value = await value
            except Exception as exc:
                raise _ItemError(None, exc) from exc
        self.check_product(value)
        return value

    async def _per_groups(self) -> None:
        # `groups` is fed by a hidden mailbox from the `per` stream: it tells which groups exist
        # (also those with no items) and in which order. With ordered input a group is complete
        # once the input has moved past it; otherwise every group completes at the end.
        spec = self.spec
        depth = self.run.graph.tasks[spec.per].depth  # type: ignore[index]
        groups_box = self.inboxes[-1]
        self.inboxes = self.inboxes[:-1]
        inbox = self.inbox()
        lot = trio.lowlevel.ParkingLot()
        groups_box.listener = lot
        if isinstance(inbox, Mailbox):
            inbox.listener = lot
        else:
            inbox.lot = lot
            for b in inbox.boxes:
                b.listener = lot
        if not self.acc_restored:
            self.known: deque[Any] = deque()
            self.accs: dict[Any, Any] = {}
            self.mark: Any = None
        known, accs = self.known, self.accs
        ordered = spec.ordered
        sup = self.sup
        while True:
            if sup.pending:
                await sup.gate()
            progressed = False
            while (g := groups_box.get_nowait()) is not None:
                known.extend(g[0])
                progressed = True
            batch = inbox.get_nowait()
            if batch is not None:
                progressed = True
                seqs, items = batch
                sup.busy += 1
                try:
                    for s, x in zip(seqs, items, strict=True):
                        key = seq_prefix(s, depth)
                        acc = accs[key] if key in accs else copy.deepcopy(spec.init)
                        accs[key] = await self._fold(acc, ([s], [x]))
                finally:
                    sup.leave()
                self.mark = seq_prefix(seqs[-1], depth)
                self.batch_event(len(items), 0)
            ended = batch is None and (inbox.done if isinstance(inbox, Mailbox) else inbox.ended())
            all_done = ended and groups_box.done
            out_seqs: list[Any] = []
            out: list[Any] = []
            mark = self.mark
            while known and (all_done or (ordered and mark is not None and known[0] < mark)):
                key = known.popleft()
                acc = accs.pop(key) if key in accs else copy.deepcopy(spec.init)
                out_seqs.append(key)
                out.append(await self._finished(acc))
            if all_done:
                for key in sorted(accs):  # items whose group was never announced
                    out_seqs.append(key)
                    out.append(await self._finished(accs.pop(key)))
            if out:
                await self.send(out_seqs, out)
            if all_done:
                return
            if not progressed:
                await lot.park()


ACTOR_KINDS: dict[str, type[Actor]] = {
    "source": SourceActor,
    "task": TaskActor,
    "sink": SinkActor,
    "collector": CollectorActor,
}


def actor_for(run: Run, spec: TaskDef) -> Actor:
    """The actor class for *spec*'s kind (a generator task fed only final inputs is a source)."""
    if spec.kind == "task" and spec.is_generator and not spec.streaming_inputs:
        return SourceActor(run, spec)
    return ACTOR_KINDS[spec.kind](run, spec)
