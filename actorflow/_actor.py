"""The base actor: wiring, sending, output type checks, lifecycle, and its own checkpoint state.

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
from ._cache_run import CacheRole
from ._codec import pack, plain_batch, restore, restore_items, seq_from_plain
from ._context import context_for, redact, scrub
from ._errors import ItemFailure, MailboxTypeError, StoreError, TaskFailed
from ._inbox import ZipInbox
from ._loop import BatchSizer, Handler, ItemLoop
from ._mailbox import Batch, Mailbox
from ._typing import SKIP, NamedType, _Skip, type_name

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._spec import TaskDef


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
    """Base actor: wiring, counters, sending, type checks, lifecycle events, supervision hooks."""

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
        self.loop: ItemLoop | None = None
        self._zip: ZipInbox | None = None
        #: Seconds a batch should take, and the sizer that keeps batches near it.
        self.batch_time = spec.batch_time or run.batch_time
        remote = spec.executor is not None and spec.executor.remote
        self.sizer = BatchSizer(self.batch_time, spec.batch_size, fixed=remote)
        #: Seconds spent processing batches (user code running), for metrics.
        self.busy_time = 0.0
        #: While a batch is processed: when it started and its sequence numbers (for slow-item reports).
        self.batch_started = 0.0
        self.batch_seqs: list[Any] = []
        #: (batch start, item index) of the last slow item reported, so each is reported once.
        self.slow_reported: tuple[float, int] = (0.0, 0)
        self._yielded = perf_counter()
        classes = spec.out_classes
        self._classes = classes
        self._named = spec.out_type if isinstance(spec.out_type, NamedType) else None
        self._allowed: set[type] = set(classes) if classes is not None else set()
        self._allowed.add(_Skip)
        #: Undeclared output type and a store: each new type is checked to be storable when it first appears.
        self._check_storable = classes is None and self._named is None and run.supervisor.store is not None

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
        if not items:
            return
        state = [seqs, items, start]
        self.outboxes[slot] = state
        if self.run.paused:
            await self.run.gate()
        for tap in self.taps:
            tap(seqs, items)
        cached = self.cached
        if cached is not None and cached.recording is not None and self.run.cache is not None:
            cached.record(self.name, self.run.cache, seqs, items)
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

    def advance(self, seq: Any) -> None:
        """Tell every reader that no item numbered *seq* or lower will come any more (skips included)."""
        for box in self.outs:
            box.advance(seq)

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
        elif self._check_storable:
            for t in seen - self._allowed:
                first = next(i for i, x in enumerate(items) if type(x) is t)
                self.check_storable(items[first], seqs[first])
                self._allowed.add(t)
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

    def check_storable(self, value: Any, seq: Any, what: str = "") -> None:
        """An output (or *what*: the task's state) of a type not seen before: can a checkpoint hold it?

        Raises:
            ItemFailure: it cannot (a :class:`StoreError` naming the task, the item and the type).
        """
        try:
            pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            item = "its product" if seq is None else f"item {seq}"
            item = f"{what} after {item}" if what else item
            error = StoreError(
                f"task {self.name!r}, {item}: a value of type {type(value).__qualname__} cannot be stored in a "
                f"checkpoint ({exc}); return plain data, an attrs class or a dataclass"
            )
            raise ItemFailure(seq, error) from exc

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
        if self._check_storable and type(value) not in self._allowed:
            self.check_storable(value, None)
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
        """The next batch (at most *chunk* items, else the sizer's size), taken at a batch boundary.

        Waits for a pending checkpoint first and gives the trio loop back when the actor has held it
        for a batch time. None means the stream ended. The caller processes the batch inside
        ``with self.working(batch):``, with no await in between.
        """
        sup = self.sup
        if sup.pending:
            await sup.gate()
        await self.breathe()
        chunk = chunk or self.sizer.size
        return inbox.get_nowait(chunk) or await inbox.get(chunk)

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
        if self.cached is not None:
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
        finally:
            self.elapsed = time.perf_counter() - self.started
        self._finished()

    async def _run_body(self) -> None:
        if self.restored_finished:
            return
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
            if not any(d["task"] == self.name for d in self.sup.dead_letters):  # an incomplete product hides nothing
                cached.save(run.cache, run.flow_name, self.spec, self.items_in, self.product.value)
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

    def cache_event(self) -> None:
        run, role = self.run, self.cached
        assert role is not None
        if role.hit:
            items = role.entry["items"] if role.entry else 0
            run.bus.publish(ev.CacheHit(run_id=run.run_id, task=self.name, key=role.key, items=items))
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
        self.run.bus.publish(ev.TaskErrored(run_id=self.run.run_id, task=self.name, seq=seq, error=text))
        self.run.fail(exc)

    async def main(self) -> None:
        """The kind's own loop (the handler and item loop are ready)."""
        raise NotImplementedError

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
            self.restored_finished = True
            if self.gather is not None:
                self.product.set(self.gather)
            elif "product" in st:
                self.product.set(restore(st["product"], spec.out_type))
            else:
                self.product.set(None)


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
