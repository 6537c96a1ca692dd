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
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from . import _events as ev
from ._cache_keys import upstreams
from ._cache_run import CacheRole
from ._codec import plain_batch, restore, restore_items, seq_from_plain
from ._context import context_for, redact, scrub
from ._errors import ItemFailure, MailboxTypeError, TaskFailed
from ._histogram import Histogram
from ._inbox import ZipInbox
from ._loop import BatchSizer, Handler, ItemLoop, RateLimiter
from ._mailbox import Batch, Mailbox
from ._outcheck import OutputCheck

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._spec import TaskDef

#: What user code may raise to stop the whole run (``Ctrl-C``, ``sys.exit``): it reaches the
#: caller as itself after a checkpoint, and the item it interrupted is put back (see ``docs/durability.md``).
EXITS = (KeyboardInterrupt, SystemExit)


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

    #: State keys every checkpoint of this kind must hold (besides the common ones).
    required_state: tuple[str, ...] = ()

    def __init__(self, run: Runtime, spec: TaskDef) -> None:
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
        self.taps: list[Any] = []  # Tap objects watching the output; see _gateway
        #: Batches being sent: slot -> [seqs, items, index of the next downstream mailbox].
        self.outboxes: dict[int, list[Any]] = {}
        #: Outboxes restored from a checkpoint, sent before anything else (kept here until each is sent).
        self.resend: list[list[Any]] = []
        #: True when a checkpoint says this actor had finished: it only replays its ending.
        self.restored_finished = False
        #: The actor's part in the product cache (None: not cacheable, or no cache).
        self.cached: CacheRole | None = None
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
        #: While a batch is processed: when it started and its sequence numbers (for slow-item reports).
        self.batch_started = 0.0
        self.batch_seqs: list[Any] = []
        #: (batch start, item index) of the last slow item reported, so each is reported once.
        self.slow_reported: tuple[float, int] = (0.0, 0)
        self._yielded = perf_counter()
        #: The output port's type checks (and storability of undeclared types when there is a store).
        self.out_check = OutputCheck(run, spec, store=run.supervisor.store is not None)

    # -- plumbing ------------------------------------------------------------------------------

    def inbox(self) -> Mailbox | ZipInbox:
        """The actor's input: its one mailbox, or its mailboxes zipped by sequence number."""
        if len(self.inboxes) == 1:
            return self.inboxes[0]
        if self._zip is None:
            self._zip = ZipInbox(
                self.inboxes, ordered=self.spec.ordered, batch_size=self.spec.batch_size, on_stall=self.sup.stalled
            )
        return self._zip

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
            await box.put(seqs, items)
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
        for box in outs:
            box.put_nowait(seqs, items)
        self._sent(items)
        return True

    def _observe(self, seqs: list[Any], items: list[Any]) -> None:
        """A batch about to be sent: taps see it and a cache miss records it."""
        for tap in self.taps:
            tap(seqs, items)
        cached = self.cached
        if cached is not None and cached.fingerprint is not None and self.run.cache is not None:  # a miss: recorded
            cached.record(self.name, self.run.cache, seqs, items)

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
        self.batch_started = 0.0
        self.busy_time += elapsed
        self.batch_times.observe(elapsed)
        self.sizer.adjust(len(batch[1]), elapsed)
        if elapsed >= self.run.slow_item and self.slow_reported[0] != t0 and batch[0] and not self.spec.is_async:
            self.report_slow(batch[0][0], elapsed, (t0, 0))

    def report_slow(self, seq: Any, seconds: float, key: tuple[float, int]) -> None:
        """Publish that the item *seq* has run (or ran) *seconds* (*key*: which item, so it is reported once)."""
        self.slow_reported = key
        self.run.bus.publish(ev.ItemSlow(run_id=self.run.run_id, task=self.name, seq=seq, seconds=seconds))

    async def apply_policy(self, seq: Any, item: Any, exc: Exception, attempt: int) -> bool:
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
        if self.cached is not None and self.cached.decision != "pending":
            self.cache_event()
        try:
            await self._run_body()
        except ItemFailure as exc:
            self.failed(exc.seq, exc.error)
            return
        except (TaskFailed, MailboxTypeError) as exc:
            self.failed(getattr(exc, "seq", None), exc)
            return
        except Exception as exc:
            self.failed(None, exc)
            return
        except EXITS as exc:
            self.exited = self.exited or exc
        finally:
            self.elapsed = time.perf_counter() - self.started
        if self.exited is not None:  # never finished: its readers must not see an end of stream
            self.status = "interrupted"
            await self.run.stop_for_exit(self, self.exited)
            return
        self._finished()
        if self.cached is not None and self.cached.later is not None:
            await self.save_later()

    async def _run_body(self) -> None:
        if self.restored_finished:
            return
        if self.cached is not None and self.cached.decision == "pending":
            await self.cutoff()
        if self.cached is not None and self.cached.hit:
            await self.resend_restored()
            await self.replay()
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

    def _finished(self) -> None:
        run = self.run
        for box in self.outs:
            box.close()
        for tap in self.taps:
            tap.wake()
        if self.gather is not None and not self.product.ready.is_set():
            self.product.set(self.gather)
        self.status = "finished"
        cached = self.cached
        if cached is not None and run.cache is not None and not self.restored_finished:
            # an incomplete product hides nothing: a task that set items aside is not written
            write = not any(d["task"] == self.name for d in self.sup.dead_letters)
            later = write and not all(r.settled.is_set() for r in self.upstream_roles())
            cached.finish(
                run.cache, run.flow_name, self.spec, self.items_in, self.product.value, self.digests(), write, later
            )
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

    def digests(self) -> dict[str, str | None]:
        """The output fingerprints of the tasks this one reads from (None: not known)."""
        actors = self.run.actors
        return {u: (r.digest if (r := actors[u].cached) is not None else None) for u in upstreams(self.spec)}

    def upstream_roles(self) -> list[CacheRole]:
        """The cache roles of the tasks this one reads from."""
        return [r for u in upstreams(self.spec) if (r := self.run.actors[u].cached) is not None]

    async def save_later(self) -> None:
        """Write this finished miss's entry once every task it read from has its final fingerprint
        (a task can end before one of them does: a zip ends with its shortest input)."""
        for role in self.upstream_roles():
            await role.settled.wait()
        assert self.cached is not None and self.run.cache is not None
        self.cached.save_later(self.run.cache, self.digests())

    async def cutoff(self) -> None:
        """Early cutoff: wait until every task this one reads from has a final fingerprint, then
        decide. Meanwhile the inboxes spill rather than block their senders; a hit drops them."""
        run, role = self.run, self.cached
        assert run.cache is not None and role is not None
        for box in self.inboxes:
            box.spill(True)
        for other in self.upstream_roles():
            await other.settled.wait()
        for box in self.inboxes:
            box.spill(False)
        role.decide(run.cache, self.spec, self.digests())
        if role.hit:
            for box in self.inboxes:
                box.abandon()
            self.outs = run.outs_to_running(self)
            role.replay, role.load_items = bool(self.outs or self.taps), self.in_result
        self.cache_event()

    def cache_event(self) -> None:
        run, role = self.run, self.cached
        assert role is not None
        if role.hit:
            items = role.entry["items"] if role.entry else 0
            run.bus.publish(
                ev.CacheHit(run_id=run.run_id, task=self.name, key=role.key, items=items, cutoff=role.cutoff)
            )
        else:
            run.bus.publish(ev.CacheMiss(run_id=run.run_id, task=self.name, key=role.key, reason=role.reason))

    async def replay(self) -> None:
        """A cache hit: load the product, or replay the stream in order where it is needed."""
        cache, role = self.run.cache, self.cached
        assert cache is not None and role is not None and role.entry is not None
        form = role.entry["form"]
        if form == "product":
            self.product.set(restore(cache.product(role.key), self.spec.out_type))
            self.items_out = 1
            return
        if form == "sink":
            self.items_in = role.entry["items"]
            self.product.set(None)
            return
        if not (role.replay or role.load_items):
            self.gather = None  # nobody reads these items this time
            self.product.set(None)
            self.items_out = role.entry["items"]
            return
        sup = self.sup
        out_type = self.spec.out_type
        for seqs, plain in role.chunks(cache):
            if sup.pending:
                await sup.gate()
            items = restore_items(plain, out_type)
            self.batch_event(0, len(items))
            if role.replay:
                await self.send(seqs, items)
            else:
                assert self.gather is not None
                self.gather.extend(items)
                self.items_out += len(items)

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
        text = f"{type(error).__name__}: {error}"
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

    def state(self) -> dict[str, Any]:
        """This actor's state as plain data (call only while every actor is parked)."""
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
        return st

    def restore(self, st: dict[str, Any]) -> None:
        """Put back what :meth:`state` gave (mailboxes are restored before actors)."""
        spec = self.spec
        self.items_in, self.items_out = st["items_in"], st["items_out"]
        self.resend = [
            [[seq_from_plain(s) for s in seqs], restore_items(items, spec.out_type), nxt]
            for seqs, items, nxt in st["outboxes"]
        ]
        if "gather" in st:
            self.gather = restore_items(st["gather"], spec.out_type)
        if "cache" in st:
            fresh = st["items_out"] == 0 and not st["outboxes"] and "inflight" not in st and not st.get("cursor")
            self.cached = CacheRole.restored(self.name, self.run.cache, st["cache"], fresh, spec.streaming)
            if st["status"] == "finished":
                self.cached.settled.set()
        if st["status"] == "finished":
            self.restored_finished = True
            if self.gather is not None:
                self.product.set(self.gather)
            elif "product" in st:
                self.product.set(restore(st["product"], spec.out_type))
            else:
                self.product.set(None)
        if "inflight" in st:  # an unfinished input batch goes back to the front of the inbox
            seqs, items, emitted = st["inflight"]
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
        actor.batch_seqs = self.batch[0]
        actor.batch_started = self.t0 = perf_counter()
        actor.sup.enter()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.actor.sup.leave()
        if exc_type is None:
            self.actor.worked(self.batch, self.t0)
