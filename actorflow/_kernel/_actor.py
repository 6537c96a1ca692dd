"""The base actor: wiring, sending, lifecycle, and its own checkpoint state.

Every actor kind (see ``_actor_kinds`` and ``_collect``) follows the same loop: take a batch from
its inbox, call the user's code on each item through the one item loop (``_loop``), send the
outputs downstream as one batch, repeat. It awaits only when its inbox is empty, when a
downstream mailbox is full, or when user code itself awaits.

An actor owns its state: :meth:`Actor.state` gives it as plain data for a checkpoint and
:meth:`Actor.restore` puts it back; kinds add what is theirs (a cursor, accumulators, …).
"""

from __future__ import annotations

import time
from copy import deepcopy
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from .._base import ItemFailure, MailboxTypeError, TaskFailed, describe
from .._base import _events as ev
from .._define import instance_state, is_stateful_class, redact, scrub
from .._storage import SpilledStream, plain_batch, restore, restore_items, seq_from_plain
from ._cache_hook import CacheHook
from ._cache_run import CacheRole
from ._histogram import Histogram
from ._inbox import ZipInbox, unmatched_reporter
from ._loop import EXITS, BatchSizer, Handler, ItemLoop, RateLimiter, is_failure
from ._mailbox import Batch, Mailbox
from ._outcheck import OutputCheck
from ._slow import SlowWatch
from ._state import ABSENT, ActorState, CacheState
from ._task_context import context_for

if TYPE_CHECKING:
    from .._define import TaskDef
    from ._runtime import Runtime


class Product:
    """A final product: set once, awaited by every task that reads it whole."""

    __slots__ = ("ready", "value")

    def __init__(self) -> None:
        self.ready = trio.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self.ready.set()


class Actor:
    """Base actor: wiring, counters, sending, lifecycle events, supervision hooks."""

    #: The record type of this kind's checkpoint state (see ``_state``).
    state_type: type[ActorState] = ActorState

    def __init__(self, run: Runtime, spec: TaskDef) -> None:
        self.run = run
        self.spec = spec
        self.name = spec.name
        self.sup = run.supervisor
        self.inboxes: list[Mailbox] = []
        self.outs: list[Mailbox] = []
        self.gather: list[Any] | SpilledStream | None = None  # SpilledStream: an unread stream (_spill)
        self.in_result = False
        self.product = Product()
        self.items_in = 0
        self.items_out = 0
        self.started = 0.0
        self.elapsed = 0.0
        self.status = "pending"
        self.taps: list[Any] = []  # Tap objects watching the output; see _gateway
        #: Batches being sent: slot -> [seqs, items, index of the next downstream mailbox].
        self.outboxes: dict[int, list[Any]] = {}
        #: A worker pool's finished output batches waiting for their turn (ticket -> batch), and with
        #: ordered output the input batch of each ticket not yet sent (put back on an exit); see ``_cycle``.
        self.done_out: dict[int, Batch] = {}
        self.taken: dict[int, Batch] = {}
        #: Outboxes restored from a checkpoint, sent before anything else (kept here until each is sent).
        self.resend: list[list[Any]] = []
        #: True when a checkpoint says this actor had finished: it only replays its ending.
        self.restored_finished = False
        #: The actor's part in the product cache (None: not cacheable, or no cache).
        self.cached: CacheRole | None = None
        #: The cache's hooks on this actor's cycle (made with its role; see ``_cache_hook``).
        self.cache_hook: CacheHook | None = None
        self.handler: Handler | None = None
        #: Children a generator task emitted for an item before the checkpoint it resumes from.
        self.skip_children: dict[Any, int] = {}
        #: After user code raised KeyboardInterrupt or SystemExit: the exception, the input not yet
        #: done (``(order, seqs, items, children emitted)`` each, put back in a checkpoint) and the item's seq.
        self.exited: BaseException | None = None
        self.unfinished: list[tuple[int, list[Any], list[Any], int]] = []
        self.exit_seq: Any = None
        self.loop: ItemLoop | None = None
        self._zip: ZipInbox | None = None
        #: Seconds a batch should take, and the sizer that keeps batches near it.
        self.batch_time = spec.batch_time or run.batch_time
        remote = spec.executor is not None and spec.executor.remote
        self.sizer = BatchSizer(self.batch_time, spec.batch_size, fixed=remote)
        #: The task's ``rate_limit`` shared by its workers (None: calls run as fast as they come).
        self.limiter = RateLimiter(spec.rate_limit, spec.concurrency) if spec.rate_limit is not None else None
        #: Seconds spent processing batches (user code running), for metrics.
        self.busy_time = 0.0
        #: Batch durations, for the metrics' histogram (``_histogram``).
        self.batch_times = Histogram()
        #: The slow-item watch's hook on this actor's batches (see ``_slow``).
        self.slow = SlowWatch(run.bus, run.run_id, self.name, run.slow_item, sync=not spec.is_async)
        self._yielded = perf_counter()
        #: The output port's type checks (and storability of undeclared types when there is a store).
        self.out_check = OutputCheck(run, spec, store=run.supervisor.store is not None)
        #: A task class whose instance keeps state between items (run inline, not a transactional
        #: sink, which keeps its own): its public attributes are part of every checkpoint.
        self.stateful = is_stateful_class(spec)
        #: Each reader after the first gets its own deep copy of every output batch (``copy=True``).
        self.copies = spec.copy
        #: Attributes a checkpoint restored, set on the instance once it is made.
        self.restored_attrs: dict[str, Any] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def inbox(self) -> Mailbox | ZipInbox:
        """The actor's input: its one mailbox, or its mailboxes zipped by sequence number."""
        if len(self.inboxes) == 1:
            return self.inboxes[0]
        if self._zip is None:
            self._zip = ZipInbox(
                self.inboxes, ordered=self.spec.ordered, batch_size=self.spec.batch_size, on_stall=self.sup.stalled,
                strict=self.spec.zip == "strict", on_end=unmatched_reporter(self.run.bus, self.run.run_id, self.name),
            )
        return self._zip

    @property
    def unmatched(self) -> int:
        """Items its zip dropped without a partner (0 without a zip; see ``_inbox``)."""
        return sum(self._zip.unmatched) if self._zip is not None else 0

    def queued_for(self, box: Mailbox) -> list[Batch]:
        """Items of *box* this actor took but has not processed yet (a zip's unmatched items)."""
        if self._zip is None or box not in self._zip.boxes:
            return []
        return self._zip.pending(box)

    async def send(self, seqs: list[Any], items: list[Any], slot: int = 0, start: int = 0) -> None:
        """Put one output batch in every downstream mailbox (waiting while one is full).

        The batch stays in ``outboxes`` until every mailbox has it, so a checkpoint taken while
        this waits records exactly which mailboxes still need it.
        """
        if not items or (start == 0 and self.send_now(seqs, items)):  # the common case: nothing waits
            return
        state = [seqs, items, start]
        self.outboxes[slot] = state
        if self.run.paused:
            await self.run.gate()
        self._observe(seqs, items)
        outs = self.outs
        for i in range(start, len(outs)):
            state[2] = i
            box = outs[i]
            if box.accepts is not None:
                self.out_check.port(box, seqs, items)
            await box.put(seqs, deepcopy(items) if i and self.copies else items)
        del self.outboxes[slot]
        self._sent(items)

    def send_now(self, seqs: list[Any], items: list[Any]) -> bool:
        """:meth:`send` in the caller's own step when nothing would wait (the run is not paused and
        every mailbox has room): True when sent, False (and nothing done) otherwise."""
        if self.run.paused:
            return False
        outs = self.outs
        for box in outs:
            if not box.has_room():
                return False
        for box in outs:
            if box.accepts is not None:
                self.out_check.port(box, seqs, items)
        self._observe(seqs, items)
        if self.copies and len(outs) > 1:
            for i, box in enumerate(outs):
                box.put_nowait(seqs, items if i == 0 else deepcopy(items))
        else:
            for box in outs:
                box.put_nowait(seqs, items)
        self._sent(items)
        return True

    def _observe(self, seqs: list[Any], items: list[Any]) -> None:
        """A batch about to be sent: taps see it and a cache miss records it."""
        for tap in self.taps:
            tap(seqs, items)
        if self.cache_hook is not None:
            self.cache_hook.sending(seqs, items)

    def _sent(self, items: list[Any]) -> None:
        self.items_out += len(items)
        if self.gather is not None:
            self.gather.extend(items)

    def advance(self, seq: Any) -> None:
        """Tell every reader that no item numbered *seq* or lower will come any more (skips included)."""
        for box in self.outs:
            box.advance(seq)

    def batch_event(self, n_in: int, n_out: int) -> None:
        bus = self.run.bus
        if bus.active:
            bus.publish(ev.BatchProcessed(run_id=self.run.run_id, task=self.name, items_in=n_in, items_out=n_out))

    # -- supervision ---------------------------------------------------------------------------

    async def take(self, inbox: Mailbox | ZipInbox, chunk: int = 0) -> Batch | None:
        """The next batch (at most *chunk* items, else the sizer's size), taken at a batch boundary.

        Waits for a pending checkpoint first and gives the trio loop back when the actor has held it
        for a batch time. None means the stream ended. The caller processes the batch inside
        ``with self.working(batch):``, with no await in between.
        """
        sup = self.sup
        if sup.pending:
            await sup.gate()
        now = perf_counter()
        if now - self._yielded >= self.batch_time:  # breathe(), inlined: this runs once per batch
            self._yielded = now
            await trio.lowlevel.checkpoint()
        chunk = chunk or self.sizer.size
        batch = inbox.get_nowait(chunk)
        if batch is None:
            batch = await inbox.get(chunk)
            self._yielded = perf_counter()  # it waited: the loop had its turn, no need to breathe soon
        return batch

    async def take_throttled(self, inbox: Mailbox | ZipInbox, chunk: int = 0) -> Batch | None:
        """:meth:`take` under the task's rate limit: at most as many items as may be called now.

        While none may, the actor waits holding no items, with status ``"throttled"`` (not busy:
        a checkpoint, a pause or a cancellation goes ahead without it).
        """
        limiter = self.limiter
        assert limiter is not None
        async with limiter.lock:
            if isinstance(inbox, Mailbox):
                await inbox.readable()  # waiting for input is not waiting for the limiter
            allowed = limiter.allowed(trio.current_time())
            if not allowed and not inbox.done:
                await self.throttle(limiter)
                allowed = max(1, limiter.allowed(trio.current_time()))
            batch = await self.take(inbox, min(chunk or self.sizer.size, allowed or 1))
            if batch is not None:
                limiter.book(len(batch[1]), trio.current_time())
            return batch

    async def throttle(self, limiter: RateLimiter) -> None:
        """Wait until the limiter allows a call, with status ``"throttled"`` meanwhile."""
        now = trio.current_time()
        self.status = "throttled"
        try:
            await trio.sleep(limiter.delay(now))
        finally:
            limiter.throttled += trio.current_time() - now
            if self.status == "throttled":
                self.status = "running"

    def share(self, inbox: Mailbox | ZipInbox, workers: int) -> int:
        """How many items one of *workers* concurrent workers takes at a time: the sizer's size, but
        no more than its share of what is queued (0 for a zip: it sizes its own batches)."""
        if not isinstance(inbox, Mailbox):
            return 0
        return max(1, min(self.sizer.size, len(inbox) // workers))

    async def breathe(self) -> None:
        """Give the trio loop back if this actor has held it for a batch time (signals, checkpoints, events)."""
        now = perf_counter()
        if now - self._yielded >= self.batch_time:
            self._yielded = now
            await trio.lowlevel.checkpoint()

    def working(self, batch: Batch) -> _Working:
        """``with actor.working(batch):`` process *batch*: counted busy by the supervisor (a checkpoint
        waits for it), timed for the batch sizer and slow-item reports."""
        return _Working(self, batch)

    def worked(self, batch: Batch, t0: float) -> None:
        """A batch started at *t0* is processed: feed the sizer, the busy time and slow-item reports."""
        elapsed = perf_counter() - t0
        self.busy_time += elapsed
        self.batch_times.observe(elapsed)
        self.sizer.adjust(len(batch[1]), elapsed)
        self.slow.end(t0, elapsed)

    async def apply_policy(self, seq: Any, item: Any, exc: BaseException, attempt: int) -> bool:
        """The supervisor's policy for a failed item (see :meth:`ItemLoop.recover`)."""
        return await self.sup.on_item_error(self, seq, item, exc, attempt)

    def restart(self) -> None:
        """Start afresh (the Restart policy): a new handler instance from the bound options."""
        if self.handler is not None:
            self.handler.restart()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the actor to completion; failures are handed to the run, never raised."""
        run = self.run
        self.status = "running"
        self.started = time.perf_counter()
        run.bus.publish(ev.TaskStarted(run_id=run.run_id, task=self.name))
        if self.cache_hook is not None:
            self.cache_hook.started()
        try:
            await self._run_body()
        except ItemFailure as exc:
            self.failed(exc.seq, exc.error)
            return
        except (TaskFailed, MailboxTypeError) as exc:
            self.failed(getattr(exc, "seq", None), exc)
            return
        except EXITS as exc:
            self.exited = self.exited or exc
        except BaseException as exc:
            if not is_failure(exc):
                raise
            self.failed(None, exc)
            return
        finally:
            self.elapsed = time.perf_counter() - self.started
        if self.exited is not None:  # never finished: its readers must not see an end of stream
            self.status = "interrupted"
            await self.run.stop_for_exit(self, self.exited)
            return
        self._finished()
        if self.cache_hook is not None:
            await self.cache_hook.after_finish()

    async def _run_body(self) -> None:
        if self.restored_finished:
            for box in self.inboxes:  # it reads no more: what its senders still send must not block them
                box.abandon()
            return
        if self.cache_hook is not None and await self.cache_hook.is_hit():
            await self.resend_restored()
            await self.cache_hook.replay()
            return
        await self.bind_handler()
        await self.resend_restored()
        await self.main()

    async def bind_handler(self) -> None:
        """Wait for the final inputs, then bind the handler and its item loop (one task-class instance)."""
        consts = dict(self.run.graph.options[self.name])
        spillable = list(self.inboxes) if self.spec.final_inputs else []
        for box in spillable:  # while this waits for whole products, its streams must not block their senders
            box.spill(True)
        for inp in self.spec.final_inputs:
            up = self.run.actors[inp.upstream].product
            await up.ready.wait()
            consts[inp.name] = up.value
        for box in spillable:
            box.spill(False)
        if self.spec.context_param is not None:
            consts[self.spec.context_param] = context_for(self.run, self.name, self.spec.secrets)
        self.handler = Handler(self.spec, consts)
        self.loop = ItemLoop(self, self.handler, self.skip_children)
        self.slow.position = self.loop.where
        if self.restored_attrs and self.handler.instance is not None:
            for key, value in self.restored_attrs.items():
                setattr(self.handler.instance, key, value)
            self.restored_attrs = {}

    def instance_attrs(self) -> dict[str, Any]:
        """A stateful task class's state: its instance's public attributes (see ``stateful``)."""
        instance = self.handler.instance if self.handler is not None else None
        return self.restored_attrs if instance is None else instance_state(instance, self.spec.fn)

    def check_instance(self, seq: Any) -> None:
        """A checkpoint must hold the instance's attributes: find out at the first batch, and whenever an
        attribute's type changes, not at the first checkpoint after all the work (each attribute named)."""
        for key, value in self.instance_attrs().items():
            self.out_check.state(value, seq, f"its attribute {key!r}", (key, type(value)))

    def _finished(self) -> None:
        run = self.run
        for box in self.outs:
            box.close()
        for tap in self.taps:
            tap.wake()
        if self.gather is not None and not self.product.ready.is_set():
            self.product.set(self.gather)
        self.status = "finished"
        if self.cache_hook is not None and not self.restored_finished:
            self.cache_hook.finished()
        run.bus.publish(
            ev.TaskFinished(
                run_id=run.run_id, task=self.name, items_in=self.items_in, items_out=self.items_out,
                elapsed=self.elapsed,
            )
        )

    async def resend_restored(self) -> None:
        """Send the outboxes a checkpoint restored, before anything new.

        Each stays in ``resend`` until :meth:`send` has taken it into ``outboxes``, so a checkpoint
        taken meanwhile still holds every one of them.
        """
        while self.resend:
            seqs, items, start = self.resend.pop(0)
            await self.send(seqs, items, start=start)  # in `outboxes` before its first await

    def set_cache_role(self, role: CacheRole) -> None:
        """Give the actor its part in the product cache (its hooks on the cycle come with it)."""
        self.cached = role
        self.cache_hook = CacheHook(self, role)

    def failed(self, seq: Any, error: BaseException) -> None:
        """Record this actor's failure (with its item's sequence number) and fail the run."""
        self.status = "failed"
        for tap in self.taps:
            tap.wake()
        if isinstance(error, MailboxTypeError):
            exc: BaseException = error
        else:
            exc = TaskFailed(self.run.flow_name, self.name, seq, error)
            exc.__cause__ = error
        text = describe(error)
        if self.run.secrets:  # secret values never reach messages, events or chained tracebacks
            exc.args = (redact(str(exc), self.run.secrets),)
            scrub(error, self.run.secrets)
            text = redact(text, self.run.secrets)
        self.run.bus.publish(ev.task_failed(self.run.run_id, self.name, seq, text, exc, self.run.secrets))
        self.run.fail(exc)

    async def main(self) -> None:
        """The kind's own loop (the handler and item loop are ready)."""
        raise NotImplementedError

    def put_back(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int = 0, emitted: int = 0) -> None:
        """User code raised *exc* (an exit) on ``items[0]``: keep *items* for the checkpoint to put back."""
        self.exited = self.exited or exc
        if seqs and self.exit_seq is None:
            self.exit_seq = seqs[0]
        if items:
            self.unfinished.append((order, list(seqs), list(items), emitted))

    def unfinished_state(self, more: tuple[tuple[int, list[Any], list[Any], int], ...] = ()) -> list[Any] | None:
        """The put-back input (and *more*) as one ``[seqs, items, children emitted]`` checkpoint batch."""
        if not self.unfinished and not more:
            return None
        parts = sorted([*self.unfinished, *more], key=lambda u: u[0])
        seqs = [s for part in parts for s in part[1]]
        items = [x for part in parts for x in part[2]]
        return [*plain_batch(seqs, items), parts[0][3]]

    # -- checkpoint state ------------------------------------------------------------------------

    def state(self) -> ActorState:
        """This actor's state as one typed record (call only while every actor is parked)."""
        return ActorState(**self.common_state())

    def common_state(self) -> dict[str, Any]:
        """The fields of :class:`~actorflow._kernel._state.ActorState` (every kind's record has them)."""
        if not self.spec.settings.checkpoint:  # checkpoint=False: nothing kept, run again on resume
            return {"status": "pending", "items_in": 0, "items_out": 0, "outboxes": []}
        outboxes = [[*plain_batch(s, i), nxt] for _, (s, i, nxt) in sorted(self.outboxes.items())]
        outboxes += [[*plain_batch(s, i), nxt] for s, i, nxt in self.resend]
        st: dict[str, Any] = {
            "status": self.status, "items_in": self.items_in, "items_out": self.items_out, "outboxes": outboxes,
        }
        if self.gather is not None:
            st["gather"] = list(self.gather)
        if self.status == "finished" and self.product.ready.is_set() and self.gather is None:
            st["product"] = self.product.value
        if self.cached is not None:
            st["cache"] = self.cached.state()
        if (back := self.unfinished_state()) is not None:
            st["inflight"] = back
        if self.stateful:
            st["attrs"] = self.instance_attrs()
        return st

    def restore(self, st: Any) -> None:
        """Put back what :meth:`state` gave (mailboxes are restored before actors)."""
        spec = self.spec
        self.items_in, self.items_out = st.items_in, st.items_out
        self.resend = [
            [[seq_from_plain(s) for s in seqs], restore_items(items, spec.out_type), nxt]
            for seqs, items, nxt in st.outboxes
        ]
        if st.gather is not ABSENT:
            self.gather = restore_items(st.gather, spec.out_type)
        if self.stateful and isinstance(st.attrs, dict):
            self.restored_attrs = dict(st.attrs)
        if st.cache is not ABSENT:
            fresh = st.items_out == 0 and not st.outboxes and st.inflight is ABSENT and not getattr(st, "cursor", 0)
            role = CacheRole.restored(self.name, self.run.cache, CacheState.from_plain(st.cache), fresh,
                                      spec.streaming)
            self.set_cache_role(role)
            if st.status == "finished":
                role.settled.set()
        if st.status == "finished":
            self.restored_finished = True
            if self.gather is not None:
                self.product.set(self.gather)
            elif st.product is not ABSENT:
                self.product.set(restore(st.product, spec.out_type))
            else:
                self.product.set(None)
        if st.inflight is not ABSENT:
            self._put_back_inflight(st.inflight)

    def _put_back_inflight(self, inflight: list[Any]) -> None:
        """An unfinished input batch from a checkpoint goes back to the front of the inbox."""
        seqs, items, emitted = inflight
        seqs = [seq_from_plain(s) for s in seqs]
        self.skip_children = {seqs[0]: emitted} if emitted else {}
        boxes = self.inboxes[:-1] if self.spec.per is not None else self.inboxes  # not the groups' box
        if len(boxes) == 1:
            boxes[0].put_front(seqs, boxes[0].restore(items) if boxes[0].restore else items)
        else:
            for k, box in enumerate(boxes):
                part = [t[k] for t in items]
                box.put_front(seqs, box.restore(part) if box.restore else part)


class _Working:
    """The context of :meth:`Actor.working` (a small class: it runs once per batch on the hot path)."""

    __slots__ = ("actor", "batch", "t0")

    def __init__(self, actor: Actor, batch: Batch) -> None:
        self.actor = actor
        self.batch = batch
        self.t0 = 0.0

    def __enter__(self) -> None:
        actor = self.actor
        self.t0 = actor.slow.begin(self.batch[0])
        actor.sup.enter()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        actor = self.actor
        actor.sup.leave()
        if exc_type is not None:
            actor.slow.started = 0.0  # no batch in progress any more
        else:
            actor.worked(self.batch, self.t0)
            if actor.stateful and actor.out_check.stored and self.batch[0]:
                actor.check_instance(self.batch[0][-1])
