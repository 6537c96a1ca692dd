"""Running a flow: the sync entry point, the trio entry point and the embeddable run handle."""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, final

import attrs
import trio

from . import _events as ev
from ._actors import Actor, actor_for
from ._bind import RunGraph
from ._cache import Cache, open_cache, pin_run, plan
from ._checkpoint import apply, open_for_run
from ._context import check_secrets
from ._errors import ActorflowError, RunCancelled, RunInterrupted, StoreError
from ._flow import Flow
from ._mailbox import Mailbox
from ._store import Store
from ._supervisor import Supervisor
from ._typing import runtime_classes

Options = Mapping[str, Mapping[str, Any]]
#: What ``cache=`` accepts: None (cache when there is a store), True, False, a directory, a Store or a Cache.
CacheArg = bool | str | os.PathLike[str] | Store | Cache | None

#: Seconds between checkpoints when a run has a store.
DEFAULT_CHECKPOINT_EVERY = 2.0

#: The run whose actors the current trio task belongs to (set for every actor of a run).
current_run: ContextVar[Run] = ContextVar("actorflow_current_run")


@attrs.frozen
class TaskStats:
    """What one task did in a run.

    Attributes:
        items_in: items received (for a source: items produced).
        items_out: items sent downstream (1 for a final product).
        elapsed: seconds from the task's start to its end.
    """

    name: str
    kind: str
    status: str
    items_in: int
    items_out: int
    elapsed: float
    #: ``"hit"`` (products came from the cache), ``"miss"`` (ran and was cached) or None.
    cache: str | None = None


@attrs.frozen
class Summary:
    """A run's figures: status, wall time and per-task statistics. ``str()`` gives a table."""

    flow: str
    run_id: str
    status: str
    elapsed: float
    tasks: Mapping[str, TaskStats]

    def __str__(self) -> str:
        cached = any(t.cache for t in self.tasks.values())
        rows = [("task", "kind", "status", "in", "out", "seconds", "items/s", *(("cache",) if cached else ()))]
        for t in self.tasks.values():
            n = max(t.items_in, t.items_out)
            rate = f"{n / t.elapsed:,.0f}" if t.elapsed > 0 and n and t.cache != "hit" else "-"
            extra = (t.cache or "-",) if cached else ()
            rows.append(
                (t.name, t.kind, t.status, f"{t.items_in:,}", f"{t.items_out:,}", f"{t.elapsed:.3f}", rate, *extra)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"flow {self.flow!r}: {self.status} in {self.elapsed:.3f}s (run {self.run_id})"]
        for j, r in enumerate(rows):
            cells = zip(r, widths, strict=True)
            lines.append(
                ("  " + "  ".join(c.ljust(w) if i < 3 or i > 6 else c.rjust(w) for i, (c, w) in enumerate(cells)))
                .rstrip()
            )
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(lines)


@final
class RunResult(Mapping[str, Any]):
    """The products of a finished run, by task name, plus its :class:`Summary`.

    Products are those of collectors, of tasks fed only final inputs and of streams nothing
    reads (gathered into lists). Sinks have none.
    """

    def __init__(
        self,
        products: dict[str, Any],
        summary: Summary,
        dead_letters: list[dict[str, Any]] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._products = products
        #: A nested flow's name reads its output task's product (``result["clean"]``).
        self._aliases = dict(aliases or {})
        self.summary = summary
        #: Items set aside by ``on_error=af.DeadLetter()`` (task, seq, item, error) in this run.
        self.dead_letters = list(dead_letters or [])

    def __getitem__(self, name: str) -> Any:
        try:
            return self._products[name]
        except KeyError:
            if name in self._aliases and self._aliases[name] in self._products:
                return self._products[self._aliases[name]]
            raise KeyError(f"no product named {name!r}; products: {sorted(self._products)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._products)

    def __len__(self) -> int:
        return len(self._products)

    def __repr__(self) -> str:
        return f"RunResult({self._products!r})"


def _as_graph(flow: Flow | RunGraph, options: Options | None) -> RunGraph:
    if isinstance(flow, RunGraph):
        if options:
            raise ActorflowError("pass options to flow.bind() or to run(), not both")
        return flow
    if not isinstance(flow, Flow):
        raise TypeError(f"expected an actorflow Flow or a bound RunGraph, got {type(flow).__name__}")
    return flow.bind(options)


@final
class Run:
    """One execution of a run graph. Get it from :func:`open_run`.

    Attributes:
        run_id: a unique id for this run.
        status: ``"pending"``, ``"running"``, ``"ok"``, ``"failed"`` or ``"cancelled"``.
    """

    def __init__(
        self,
        graph: RunGraph,
        run_id: str | None = None,
        *,
        store: Any = None,
        checkpoint_every: float | None = None,
        handle_signals: bool = False,
        secrets: Mapping[str, str] | None = None,
        cache: Cache | None = None,
    ) -> None:
        self.graph = graph
        #: The product cache this run reads and writes (None: no caching).
        self.cache = cache
        #: Secret values by name; handed only to the tasks that declare them, never persisted.
        self.secrets: Mapping[str, str] = check_secrets(secrets)
        #: The supervisor: failure policies and checkpoints.
        self.supervisor = Supervisor(self, store, checkpoint_every)
        #: Every mailbox by name: (mailbox, consumer actor, input port or None for a ``per`` feed).
        self.mailboxes: dict[str, tuple[Mailbox, Actor, str | None]] = {}
        self.resumed_from: int | None = None
        self._handle_signals = handle_signals
        self._interrupted = False
        self.flow_name = graph.name
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.bus = ev.EventBus()
        self.status = "pending"
        self.actors: dict[str, Actor] = {}
        self._error: BaseException | None = None
        self._error_seen = False
        self._scope: trio.CancelScope | None = None
        self._cancel_requested = False
        self._done = trio.Event()
        self._unpaused: trio.Event | None = None  # not None while paused: see pause()
        self._result: RunResult | None = None
        self._started = 0.0
        self._elapsed = 0.0
        self._build()

    def _build(self) -> None:
        graph = self.graph
        for spec in graph.tasks.values():
            self.actors[spec.name] = actor_for(self, spec)
        for spec in graph.tasks.values():
            actor = self.actors[spec.name]
            for inp in spec.inputs:
                up = self.actors[inp.upstream]
                if inp.streaming:
                    box = Mailbox(f"{spec.name}.{inp.name}", spec.capacity)
                    if up.spec.out_classes is None:  # an unannotated sender: check against the receiver
                        box.accepts = runtime_classes(inp.annotation)
                    up.outs.append(box)
                    actor.inboxes.append(box)
                    self.mailboxes[box.name] = (box, actor, inp.name)
                elif inp.gather and up.gather is None:
                    up.gather = []
            if spec.per is not None:
                box = Mailbox(f"{spec.name}.<per {spec.per}>", spec.capacity)
                self.actors[spec.per].outs.append(box)
                actor.inboxes.append(box)
                self.mailboxes[box.name] = (box, actor, None)
        for spec in graph.tasks.values():
            actor = self.actors[spec.name]
            if spec.streaming and (spec.kind == "collector" or not graph.downstream(spec.name)):
                actor.in_result = True  # per-collectors and unread streams are gathered for the result
                if actor.gather is None:
                    actor.gather = []

    # -- public handle -------------------------------------------------------------------------

    def events(self, maxlen: int = 10_000) -> ev.EventStream:
        """Subscribe to this run's events from now on; iterate with ``async for``.

        Subscribe right after entering :func:`open_run` to see every event from ``RunStarted``.

        Args:
            maxlen: how far this reader may fall behind before batch events are dropped for it.
        """
        return self.bus.subscribe(maxlen)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._unpaused is not None

    def pause(self) -> None:
        """Hold every source and task at its next batch boundary (before it sends) until :meth:`resume`.

        Items already in mailboxes are still consumed by sinks and collectors, so a paused run
        drains and then sits idle. Pausing a paused run does nothing.
        """
        if self._unpaused is None:
            self._unpaused = trio.Event()

    def resume(self) -> None:
        """Let a paused run go on. Resuming a run that is not paused does nothing."""
        if self._unpaused is not None:
            self._unpaused.set()
            self._unpaused = None

    async def gate(self) -> None:
        """Wait while the run is paused (actors call this at batch boundaries)."""
        while self._unpaused is not None:
            await self._unpaused.wait()

    def cancel(self) -> None:
        """Stop every actor; :meth:`result` then raises :class:`RunCancelled`."""
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def result(self) -> RunResult:
        """Wait for the run to end and return its products (or raise its error)."""
        await self._done.wait()
        if self._error is not None:
            self._error_seen = True
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def summary(self) -> Summary:
        """Figures so far (final once the run ended)."""
        elapsed = self._elapsed or (time.perf_counter() - self._started if self._started else 0.0)
        return Summary(
            flow=self.flow_name,
            run_id=self.run_id,
            status=self.status,
            elapsed=elapsed,
            tasks={
                n: TaskStats(n, a.spec.kind, a.status, a.items_in, a.items_out,
                             a.elapsed or (time.perf_counter() - a.started if a.started else 0.0), a.cache)
                for n, a in self.actors.items()
            },
        )

    # -- internals -----------------------------------------------------------------------------

    async def checkpoint_now(self) -> bool:
        """Write a checkpoint at once (False when the run has no store)."""
        return await self.supervisor.checkpoint()

    def interrupt(self) -> None:
        """Stop the run after an interrupting signal (its final checkpoint is already written)."""
        self._interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    def fail(self, error: BaseException) -> None:
        """Record the first failure and cancel every actor."""
        if self._error is None:
            self._error = error
        if self._scope is not None:
            self._scope.cancel()

    def _products(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, actor in self.actors.items():
            spec = actor.spec
            if spec.kind == "sink":
                continue
            if not spec.streaming or actor.in_result:
                out[name] = actor.product.value
        return out

    async def _main(self) -> None:
        current_run.set(self)  # inherited by every actor task started below
        self.status = "running"
        self._started = time.perf_counter()
        self.bus.publish(ev.RunStarted(run_id=self.run_id, flow=self.flow_name, tasks=tuple(self.actors)))
        if self.resumed_from is not None:
            queued = sum(len(box) for box, _, _ in self.mailboxes.values())
            self.bus.publish(ev.RunResumed(run_id=self.run_id, number=self.resumed_from, queued_items=queued))
        sup = self.supervisor
        pinned = pin_run(self)
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                async with trio.open_nursery() as outer:
                    if self._handle_signals:
                        await outer.start(sup.watch_signals)
                    if sup.store is not None and sup.every:
                        outer.start_soon(sup.periodic)
                    async with trio.open_nursery() as nursery:
                        for actor in self.actors.values():
                            nursery.start_soon(actor.start)
                    if self._error is None and not self._interrupted and not scope.cancel_called:
                        try:
                            await sup.checkpoint(final=True)
                        except StoreError as exc:
                            self.fail(exc)
                    outer.cancel_scope.cancel()
            if self._error is not None:
                self.status = "failed"
            elif self._interrupted:
                self.status = "interrupted"
                store = str(sup.store.path) if sup.store is not None else "?"
                self._error = RunInterrupted(sup.interrupted or 0, store)
            elif scope.cancelled_caught or self._cancel_requested:
                self.status = "cancelled"
                self._error = RunCancelled(f"run {self.run_id} of flow {self.flow_name!r} was cancelled")
                self._error_seen = True
            else:
                self.status = "ok"
        except BaseException:
            self.status = "cancelled"
            raise
        finally:
            self._elapsed = time.perf_counter() - self._started
            if self.cache is not None:
                self.cache.unpin(pinned)
            try:
                sup.save_dead_letters()
            except StoreError as exc:
                self._error = self._error or exc
            if self.status == "ok":
                self._result = RunResult(self._products(), self.summary, sup.dead_letters, self.graph.aliases)
            self.bus.publish(
                ev.RunFinished(run_id=self.run_id, flow=self.flow_name, status=self.status, elapsed=self._elapsed)
            )
            self.bus.close()
            self._done.set()


@asynccontextmanager
async def open_run(
    flow: Flow | RunGraph,
    options: Options | None = None,
    *,
    store: str | os.PathLike[str] | Store | None = None,
    resume: bool = False,
    checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY,
    handle_signals: bool = False,
    meta: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    cache_limit: int | None = None,
) -> AsyncIterator[Run]:
    """Start a run inside the caller's trio task tree and yield its handle.

    Leaving the block waits for the run to end. If the block raises, the run is cancelled. A run
    that failed raises its error when the block ends, unless :meth:`Run.result` already did.

    Example:
        async with af.open_run(flow, options={"numbers": {"n": 5}}) as run:
            async for event in run.events():
                print(event)
            result = await run.result()
    """
    graph = _as_graph(flow, options)
    check_secrets(secrets)  # before anything is opened
    if resume and store is None:
        raise ActorflowError("resume=True needs store=PATH: the store to resume from")
    opened, doc = (None, None) if store is None else open_for_run(store, graph, resume, dict(meta or {}))
    cache_store: Store | None = None
    try:
        the_cache, cache_store = open_cache(cache, opened, cache_limit)
        run = Run(
            graph, store=opened, checkpoint_every=checkpoint_every, handle_signals=handle_signals, secrets=secrets,
            cache=the_cache,
        )
        if doc is not None:
            apply(run, doc)
            run.resumed_from = run.supervisor.number = doc["number"]
        elif the_cache is not None:
            plan(run, the_cache)
        async with _running(run) as handle:
            yield handle
    finally:
        if cache_store is not None:
            cache_store.close()
        if opened is not None and opened is not store:
            opened.close()


@asynccontextmanager
async def _running(run: Run) -> AsyncIterator[Run]:
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run._main)
        try:
            yield run
        except BaseException as exc:
            body_error = exc
            run.cancel()
    if body_error is not None:
        raise body_error
    if run._error is not None and not run._error_seen:
        run._error_seen = True
        raise run._error


async def run_async(
    flow: Flow | RunGraph,
    options: Options | None = None,
    *,
    store: str | os.PathLike[str] | Store | None = None,
    resume: bool = False,
    checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY,
    handle_signals: bool = False,
    meta: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    cache_limit: int | None = None,
) -> RunResult:
    """Run a flow to completion inside trio and return its products.

    Raises:
        InvocationError: options are invalid (nothing ran).
        TaskFailed: a task's code raised; the original exception is chained.
        MailboxTypeError: a task sent an item of the wrong type.
    """
    async with open_run(
        flow, options, store=store, resume=resume, checkpoint_every=checkpoint_every,
        handle_signals=handle_signals, meta=meta, secrets=secrets, cache=cache, cache_limit=cache_limit,
    ) as run:
        return await run.result()


def run(
    flow: Flow | RunGraph,
    options: Options | None = None,
    *,
    store: str | os.PathLike[str] | Store | None = None,
    resume: bool = False,
    checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY,
    handle_signals: bool = False,
    meta: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    cache_limit: int | None = None,
) -> RunResult:
    """Run a flow to completion (starts its own trio loop) and return its products.

    Example:
        >>> result = af.run(flow, options={"numbers": {"n": 100}})
        >>> result["total"]
    """
    graph = _as_graph(flow, options)
    return trio.run(
        functools.partial(
            run_async, graph, store=store, resume=resume, checkpoint_every=checkpoint_every,
            handle_signals=handle_signals, meta=meta, secrets=secrets, cache=cache, cache_limit=cache_limit,
        )
    )
