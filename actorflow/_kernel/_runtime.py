"""The runtime of one run: its actors, their mailboxes, the supervisor, the event bus.

Users never hold this; they hold a :class:`~actorflow.Run` handle (``_run``), which asks it for
results, events, feeds and taps. The runtime builds an actor per task, wires a typed, bounded
mailbox per streaming edge, and runs every actor in one nursery under the supervisor.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import trio

from .._base import (
    RunCancelled,
    RunInterrupted,
    RunResult,
    StoreError,
    Summary,
    TaskStats,
    _fmt_seq,
    _strip,
    runtime_classes,
    task_status,
)
from .._base import _events as ev
from .._define import RunGraph, check_secrets, is_transactional, sampled_checker
from .._storage import SpilledStream, SpillStore, Store, restore_items
from ._actor import Actor
from ._actor_kinds import SinkActor, SourceActor, TaskActor
from ._cache import Cache
from ._cache_keys import uncacheable
from ._cache_run import CacheRole
from ._collect import CollectorActor
from ._loop import DEFAULT_BATCH_TIME
from ._mailbox import Mailbox
from ._stats import EdgeStats
from ._supervisor import Supervisor
from ._transact import TransactionalSinkActor
from ._window_actor import keyed_actor_for, keyed_figures

if TYPE_CHECKING:
    from .._define import TaskDef
    from .._run import Feed

#: Seconds an item may run before it is reported as slow.
DEFAULT_SLOW_ITEM = 1.0

#: The runtime whose actors the current trio task belongs to (set for every actor of a run).
current_run: ContextVar[Runtime] = ContextVar("actorflow_current_run")

_KINDS: dict[str, type[Actor]] = {
    "source": SourceActor, "task": TaskActor, "sink": SinkActor, "collector": CollectorActor,
}


def actor_for(run: Runtime, spec: TaskDef) -> Actor:
    """The actor for *spec*'s kind (a generator task fed only final inputs is a source)."""
    if spec.kind == "task" and spec.is_generator and not spec.streaming_inputs:
        return SourceActor(run, spec)
    if spec.kind == "sink" and is_transactional(spec.fn):
        return TransactionalSinkActor(run, spec)
    if (keyed := keyed_actor_for(run, spec)) is not None:
        return keyed
    return _KINDS[spec.kind](run, spec)


class Runtime:
    """One execution of a run graph (see the module docstring)."""

    def __init__(
        self,
        graph: RunGraph,
        *,
        store: Store | None = None,
        checkpoint_every: float | None = None,
        handle_signals: bool = False,
        secrets: Mapping[str, str] | None = None,
        cache: Cache | None = None,
        run_id: str | None = None,
        batch_time: float = DEFAULT_BATCH_TIME,
        slow_item: float = DEFAULT_SLOW_ITEM,
    ) -> None:
        self.graph = graph
        #: Tasks not cached because their code cannot be fingerprinted, and why (see attach_cache).
        self.uncacheable: dict[str, str] = {}
        #: Seconds a batch should take for tasks that do not set their own ``batch_time``.
        self.batch_time = batch_time
        #: Seconds after which an item counts as slow (an ``ItemSlow`` event).
        self.slow_item = slow_item
        #: The product cache this run reads and writes (None: no caching).
        self.cache = cache
        #: Secret values by name; handed only to the tasks that declare them, never persisted.
        self.secrets: Mapping[str, str] = check_secrets(secrets)
        self.supervisor = Supervisor(self, store, checkpoint_every)
        #: Every mailbox by name: (mailbox, consumer actor, input port or None for a ``per`` feed).
        self.mailboxes: dict[str, tuple[Mailbox, Actor, str | None]] = {}
        #: Feeds of external sources, made on first use (see ``_gateway``).
        self.feeds: dict[str, Feed] = {}
        self.resumed_from: int | None = None
        #: Items a task had done before the resume, by task name (so rates count this run only).
        self.restored: dict[str, int] = {}
        self.handle_signals = handle_signals
        self.interrupted = False
        self.flow_name = graph.name
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.bus = ev.EventBus()
        self.status = "pending"
        self.actors: dict[str, Actor] = {}
        #: Where mailboxes of tasks waiting for whole products put what waits (see ``_spill``).
        self.spill = SpillStore()
        #: Sinks with two-phase commit (``af.TransactionalSink``), driven by the supervisor's checkpoints.
        self.transactional: list[TransactionalSinkActor] = []
        self.error: BaseException | None = None
        #: KeyboardInterrupt or SystemExit raised by a task's code (see :meth:`stop_for_exit`).
        self.exited: BaseException | None = None
        self.error_seen = False
        self.done = trio.Event()
        self.result: RunResult | None = None
        self._scope: trio.CancelScope | None = None
        self._cancel_requested = False
        self._unpaused: trio.Event | None = None  # not None while paused
        self._started = 0.0
        self._elapsed = 0.0
        self._build()

    def _build(self) -> None:
        graph = self.graph
        for spec in graph.tasks.values():
            self.actors[spec.name] = actor = actor_for(self, spec)
            if isinstance(actor, TransactionalSinkActor):
                self.transactional.append(actor)
        for spec in graph.tasks.values():
            actor = self.actors[spec.name]
            for inp in spec.inputs:
                up = self.actors[inp.upstream]
                if inp.streaming:
                    box = Mailbox(f"{spec.name}.{inp.name}", spec.capacity)
                    box.merge = spec.executor is not None  # a round trip a batch: take whole batches
                    unchecked = up.spec.out_classes is None  # an unannotated sender: check against the receiver
                    deep = sampled_checker(inp.annotation, spec.settings.check == "full")
                    if deep is not None and _strip(up.spec.out_type) == _strip(inp.annotation):
                        deep = None  # the sender's own check covers it
                    if unchecked or deep is not None:
                        box.accepts, box.deep = runtime_classes(inp.annotation), deep
                    self._wire(box, up, actor, inp.name)
                elif inp.gather and up.gather is None:
                    up.gather = []
            if spec.per is not None:
                self._wire(Mailbox(f"{spec.name}.<per {spec.per}>", spec.capacity), self.actors[spec.per], actor, None)
        for spec in graph.tasks.values():
            actor = self.actors[spec.name]
            per_collector = spec.kind == "collector" and spec.per is not None
            if spec.streaming and (per_collector or not graph.downstream(spec.name)):
                actor.in_result = True  # per-collectors and unread streams are gathered for the result
                if actor.gather is None:
                    actor.gather = SpilledStream(spec.out_type)  # flat memory: spills past a bound

    def _wire(self, box: Mailbox, sender: Actor, reader: Actor, port: str | None) -> None:
        box.spill_to = self.spill
        box.restore = functools.partial(restore_items, annotation=sender.spec.out_type)
        sender.outs.append(box)
        reader.inboxes.append(box)
        self.mailboxes[box.name] = (box, reader, port)

    def port_type(self, mailbox: str) -> Any:
        """The declared type of the port *mailbox* feeds."""
        _, reader, port = self.mailboxes[mailbox]
        return next((i.annotation for i in reader.spec.inputs if i.name == port), None)

    def in_result(self) -> set[str]:
        """Tasks whose items the run's result holds (unread streams, per-collectors)."""
        return {name for name, a in self.actors.items() if a.in_result}

    def attach_cache(self, roles: Mapping[str, CacheRole]) -> None:
        """Give actors their cache roles; a hit then sends only to tasks that run (a hit never reads)."""
        for name, role in roles.items():
            self.actors[name].set_cache_role(role)
        self.route_hits()
        self.uncacheable = uncacheable(self.graph)  # published as CacheMiss events once the run starts

    def route_hits(self) -> None:
        """A hit sends only to the mailboxes of tasks that run: a hit consumer never reads its inbox."""
        for actor in self.actors.values():
            if actor.cached is not None and actor.cached.hit:
                actor.outs = self.outs_to_running(actor)

    def outs_to_running(self, actor: Actor) -> list[Mailbox]:
        """*actor*'s downstream mailboxes whose readers run (not cache hits)."""
        return [b for b in actor.outs if not ((r := self.mailboxes[b.name][1].cached) is not None and r.hit)]

    # -- pause, cancel, fail -----------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._unpaused is not None

    def pause(self) -> None:
        if self._unpaused is None:
            self._unpaused = trio.Event()

    def resume(self) -> None:
        if self._unpaused is not None:
            self._unpaused.set()
            self._unpaused = None

    async def gate(self) -> None:
        """Wait while the run is paused (actors call this at batch boundaries)."""
        while self._unpaused is not None:
            await self._unpaused.wait()

    def cancel(self) -> None:
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    def interrupt(self) -> None:
        """Stop the run after an interrupting signal (its final checkpoint is already written)."""
        self.interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    async def stop_for_exit(self, actor: Actor, exc: BaseException) -> None:
        """*actor*'s code raised KeyboardInterrupt or SystemExit: checkpoint (with a store), then stop.

        The actor has put back the input it had not finished, so the checkpoint resumes to the
        products of an uninterrupted run. The run then raises *exc* itself.
        """
        if self.exited is not None:
            return
        self._record_exit(actor, exc)
        if self.supervisor.store is not None:
            where = str(self.supervisor.store.path)
            try:
                if await self.supervisor.checkpoint():
                    exc.add_note(f"actorflow: checkpoint written; resume from store {where!r}")
            except StoreError as error:
                self.fail(error)
        if self._scope is not None:
            self._scope.cancel()

    def exit_now(self, actor: Actor, exc: BaseException) -> None:
        """*actor*'s code raised KeyboardInterrupt or SystemExit while a checkpoint was being taken or
        committed (a transactional sink): stop at once; the last durable checkpoint resumes."""
        if self.exited is None:
            actor.status = "interrupted"
            self._record_exit(actor, exc)
        if self._scope is not None:
            self._scope.cancel()

    def _record_exit(self, actor: Actor, exc: BaseException) -> None:
        self.exited = exc
        seq = "" if actor.exit_seq is None else f" at item seq {_fmt_seq(actor.exit_seq)}"
        exc.add_note(f"actorflow: raised by task {actor.name!r}{seq} of flow {self.flow_name!r}; the run stopped")
        self.bus.publish(ev.TaskErrored(run_id=self.run_id, task=actor.name, seq=actor.exit_seq,
                                        error=f"{type(exc).__name__}: {exc}"))

    def fail(self, error: BaseException) -> None:
        """Record the first failure and cancel every actor."""
        if self.error is None:
            self.error = error
        if self._scope is not None:
            self._scope.cancel()

    # -- figures and products ------------------------------------------------------------------

    @property
    def summary(self) -> Summary:
        now = time.perf_counter()
        elapsed = self._elapsed or (now - self._started if self._started else 0.0)
        return Summary(
            flow=self.flow_name, run_id=self.run_id, status=self.status, elapsed=elapsed,
            tasks={
                n: TaskStats(n, a.spec.kind, task_status(a.status, self.status), a.items_in, a.items_out,
                             a.elapsed or (now - a.started if a.started else 0.0),
                             a.cached.outcome if a.cached is not None else None,
                             a.limiter.throttled if a.limiter is not None else 0.0,
                             *self.supervisor.counts(a), self.restored.get(n, 0), a.unmatched,
                             **keyed_figures(a))
                for n, a in self.actors.items()
            },
        )

    def edge_stats(self) -> list[EdgeStats]:
        """Every edge of the graph (inputs in definition order) as a frozen record: items sent along it
        and queued for its reader (see :class:`~actorflow._kernel._stats.EdgeStats`)."""
        boxes = {(reader.name, port): (box, reader) for box, reader, port in self.mailboxes.values()}
        edges = []
        for t in self.graph.tasks.values():
            for i in t.inputs:
                entry = boxes.get((t.name, i.name))
                if entry is None:
                    up = self.actors[i.upstream]
                    sent = up.items_out if up.product.ready.is_set() else 0
                    edges.append(EdgeStats(i.upstream, t.name, i.name, sent, 0, None))
                else:
                    box, reader = entry
                    queued = len(box) + sum(len(items) for _, items in reader.queued_for(box))
                    edges.append(EdgeStats(i.upstream, t.name, i.name, box.sent, queued, box.capacity))
        return edges

    def busy(self) -> dict[str, float]:
        """Seconds each task spent processing batches (worker-seconds: concurrent workers add up)."""
        return {name: a.busy_time for name, a in self.actors.items()}

    def queued(self) -> dict[str, int]:
        """Items waiting in each task's inbox mailboxes."""
        out = dict.fromkeys(self.actors, 0)
        for box, reader, _ in self.mailboxes.values():
            out[reader.name] += len(box)
        return out

    def products(self) -> dict[str, Any]:
        return {
            name: actor.product.value for name, actor in self.actors.items()
            if actor.spec.kind != "sink" and (not actor.spec.streaming or actor.in_result)
        }

    # -- running -------------------------------------------------------------------------------

    async def main(self) -> None:
        """Run every actor to the end under the supervisor; records the outcome, never raises it."""
        current_run.set(self)  # inherited by every actor task started below
        self.status = "running"
        self._started = time.perf_counter()
        self.bus.publish(ev.RunStarted(run_id=self.run_id, flow=self.flow_name, tasks=tuple(self.actors)))
        if self.resumed_from is not None:
            queued = sum(len(box) for box, _, _ in self.mailboxes.values())
            self.bus.publish(ev.RunResumed(run_id=self.run_id, number=self.resumed_from, queued_items=queued))
        for task, why in self.uncacheable.items():  # code the cache key cannot see: says why (issue 22)
            self.bus.publish(ev.CacheMiss(run_id=self.run_id, task=task, key="", reason=why))
        pinned = [a.cached.key for a in self.actors.values() if a.cached is not None]
        if self.cache is not None:
            self.cache.pin(pinned)
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                await self._actors_under_supervision()
            self._outcome(scope)
        except BaseException:
            self.status = "cancelled"
            raise
        finally:
            self._end(pinned)

    async def _actors_under_supervision(self) -> None:
        sup = self.supervisor
        async with trio.open_nursery() as outer:
            if self.handle_signals:
                await outer.start(sup.watch_signals)
            if sup.store is not None and sup.every:
                outer.start_soon(sup.periodic)
            outer.start_soon(sup.relieve_stalls)
            outer.start_soon(sup.watch_slow_items)
            async with trio.open_nursery() as nursery:
                for actor in self.actors.values():
                    nursery.start_soon(actor.start)
            stopped = self.error is not None or self.exited is not None or self.interrupted
            if not stopped and not outer.cancel_scope.cancel_called:
                try:
                    await sup.checkpoint(final=True)
                except StoreError as exc:
                    self.fail(exc)
            outer.cancel_scope.cancel()

    def _outcome(self, scope: trio.CancelScope) -> None:
        sup = self.supervisor
        if self.exited is not None and self.error is None:
            self.status = "interrupted"
            self.error = self.exited
        elif self.error is not None:
            self.status = "failed"
        elif self.interrupted:
            self.status = "interrupted"
            self.error = RunInterrupted(sup.interrupted or 0, str(sup.store.path) if sup.store is not None else None)
        elif scope.cancelled_caught or self._cancel_requested:
            self.status = "cancelled"
            self.error = RunCancelled(f"run {self.run_id} of flow {self.flow_name!r} was cancelled")
            self.error_seen = True
        else:
            self.status = "ok"

    def _end(self, pinned: list[str]) -> None:
        sup = self.supervisor
        self._elapsed = time.perf_counter() - self._started
        for sink in self.transactional:  # no write in flight now: abort what no durable checkpoint holds
            sink.end_transactions(self.status == "ok")
        if self.cache is not None:
            self.cache.unpin(pinned + [p for a in self.actors.values() if a.cached and (p := a.cached.pinned)])
        try:
            sup.save_dead_letters()
        except StoreError as exc:
            self.error = self.error or exc
        if self.status == "ok":
            self.result = RunResult(self.products(), self.summary, sup.dead_letters, self.graph.aliases)
        self.bus.publish(ev.RunFinished(run_id=self.run_id, flow=self.flow_name, status=self.status,
                                        elapsed=self._elapsed))
        self.bus.close()
        self.spill.close()
        self.done.set()
        for actor in self.actors.values():
            for tap in actor.taps:
                tap.wake()
