"""Running a flow: the sync entry point, the trio entry point and the embeddable run handle.

``run``, ``run_async`` and ``open_run`` take the same keyword settings, declared once in
:class:`RunOptions`. ``open_run`` yields a :class:`Run`: a thin handle (results, events, cancel,
pause, feeds, taps) over the runtime that owns the actors and the supervisor (``_runtime``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack, final

import attrs
import trio

from .._base import ActorflowError, DeadLettered, RunResult, Summary
from .._base import _events as ev
from .._define import Flow, RunGraph, with_executors
from .._kernel import Cache, Runtime, apply, check_storable, current_run, load, open_cache, open_for_run, plan
from .._storage import Store, open_store
from ._gateway import Feed, Tap, feed_of, tap_of
from ._run_settings import DEFAULT_CHECKPOINT_EVERY, RunSettings

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY", "Options", "Run", "RunOptions", "current_run", "open_run", "plain_interrupt", "run",
    "run_async", "store_state",
]

#: Option values by task name, then option name.
Options = Mapping[str, Mapping[str, Any]]
#: What ``cache=`` accepts: None (cache when there is a store), True, False, a directory, a Store or a Cache.
CacheArg = bool | str | os.PathLike[str] | Store | Cache | None


class RunOptions(TypedDict, total=False):
    """The keyword settings of :func:`run`, :func:`run_async` and :func:`open_run` (all optional).

    Attributes:
        store: a directory (or opened :class:`Store`) to checkpoint into and keep the cache in.
        resume: True: resume the unfinished run recorded in *store*. ``"auto"``: resume it if *store*
            holds an unfinished run, else start a fresh run in it (what a script run again after a
            Ctrl-C or a crash wants; ``actorflow run --resume-if-unfinished``).
        strict: any dead letter fails the run: :meth:`Run.result` (and :func:`run`) raise
            :class:`DeadLettered` after the run ended, its products in ``error.result``.
        allow_changed: with *resume*, resume even if tasks' code or settings changed since the run
            started (a warning names them); without it such a resume raises :class:`ResumeError`.
        from_previous: with *resume*, resume from the checkpoint before the latest one (when the
            latest is damaged; the error saying so offers it).
        checkpoint_every: seconds between checkpoints (None: only the final one). Default 2.0.
        handle_signals: on SIGINT/SIGTERM write a final checkpoint and stop (:class:`RunInterrupted`).
        meta: extra facts recorded with the run in the store (the CLI records the pipeline file).
        secrets: secret values by name, handed only to tasks that declare them.
        cache: None (the store's cache, if any), True, False, a directory, a Store or a Cache.
        cache_limit: bytes the cache may hold (default 256 MiB).
        batch_time: seconds one batch should take, for tasks that do not set their own (default
            0.01: see ``docs/architecture.md``).
        slow_item: seconds after which a running item is reported slow (an ``ItemSlow`` event; default 1).
        executors: where some tasks run in this run, by task name: ``"inline"``, ``"thread"``,
            ``"process"``, ``"dask"`` or an :class:`Executor` (the other tasks keep the executor of
            their definition). A bad entry is an :class:`InvocationError` before anything runs.
    """

    store: str | os.PathLike[str] | Store | None
    resume: bool | Literal["auto"]
    strict: bool
    allow_changed: bool
    from_previous: bool
    checkpoint_every: float | None
    handle_signals: bool
    meta: Mapping[str, Any] | None
    secrets: Mapping[str, str] | None
    cache: CacheArg
    cache_limit: int | None
    batch_time: float
    slow_item: float
    executors: Mapping[str, Any] | None


def _settings(caller: str, given: Mapping[str, Any]) -> RunSettings:
    """The keyword settings, checked whole (see ``_run_settings``)."""
    return RunSettings.of(caller, given)


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
    """A handle on one running flow. Get it from :func:`open_run`.

    Attributes:
        run_id: a unique id for this run.
    """

    def __init__(self, runtime: Runtime, strict: bool = False) -> None:
        #: The runtime behind this handle (actors, supervisor); for actorflow's own observers.
        self.runtime = runtime
        self.run_id = runtime.run_id
        #: Whether a dead letter fails the run (the ``strict`` setting).
        self.strict = strict

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, flow={self.flow_name!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        """``"pending"``, ``"running"``, ``"ok"``, ``"failed"``, ``"cancelled"`` or ``"interrupted"``."""
        return self.runtime.status

    @property
    def flow_name(self) -> str:
        return self.runtime.flow_name

    @property
    def graph(self) -> RunGraph:
        """The run graph being executed."""
        return self.runtime.graph

    @property
    def done(self) -> bool:
        """True once the run has ended (whatever the outcome)."""
        return self.runtime.done.is_set()

    async def wait_done(self) -> None:
        """Wait until the run has ended, without raising its error (see :meth:`result`)."""
        await self.runtime.done.wait()

    def events(self, maxlen: int = 10_000) -> ev.EventStream:
        """Subscribe to this run's events from now on; iterate with ``async for``.

        Subscribe right after entering :func:`open_run` to see every event from ``RunStarted``.

        Args:
            maxlen: how far this reader may fall behind before batch events are dropped for it.
        """
        return self.runtime.bus.subscribe(maxlen)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self.runtime.paused

    def pause(self) -> None:
        """Hold every source and task at its next batch boundary (before it sends) until :meth:`resume`.

        Items already in mailboxes are still consumed by sinks and collectors, so a paused run
        drains and then sits idle. Pausing a paused run does nothing.
        """
        self.runtime.pause()

    def resume(self) -> None:
        """Let a paused run go on. Resuming a run that is not paused does nothing."""
        self.runtime.resume()

    def cancel(self) -> None:
        """Stop every actor; :meth:`result` then raises :class:`RunCancelled`."""
        self.runtime.cancel()

    async def result(self) -> RunResult:
        """Wait for the run to end and return its products (or raise its error)."""
        rt = self.runtime
        await rt.done.wait()
        if rt.error is not None:
            rt.error_seen = True
            raise rt.error
        assert rt.result is not None
        if self.strict and rt.result.summary.dead_letters:
            summary = rt.result.summary
            raise DeadLettered(rt.result, {n: t.dead_letters for n, t in summary.tasks.items() if t.dead_letters})
        return rt.result

    @property
    def summary(self) -> Summary:
        """Figures so far (final once the run ended)."""
        return self.runtime.summary

    async def checkpoint_now(self) -> bool:
        """Write a checkpoint at once (False when the run has no store)."""
        return await self.runtime.supervisor.checkpoint()

    def feed(self, source: str) -> Feed:
        """The :class:`Feed` of the external source *source* (see :func:`actorflow.feed`)."""
        return feed_of(self.runtime, source)

    def tap(self, task: str, maxlen: int = 10_000) -> Tap:
        """Watch the items *task* sends downstream (see :func:`actorflow.tap`)."""
        return tap_of(self.runtime, task, maxlen)

    # -- for actorflow's observers (console, monitor) and tests --------------------------------

    @property
    def actors(self) -> Mapping[str, Any]:
        return self.runtime.actors

    @property
    def supervisor(self) -> Any:
        return self.runtime.supervisor

    @property
    def bus(self) -> ev.EventBus:
        return self.runtime.bus


@asynccontextmanager
async def open_run(
    flow: Flow | RunGraph, options: Options | None = None, **settings: Unpack[RunOptions]
) -> AsyncIterator[Run]:
    """Start a run inside the caller's trio task tree and yield its handle.

    Leaving the block waits for the run to end. If the block raises, the run is cancelled. A run
    that failed raises its error when the block ends, unless :meth:`Run.result` already did.
    The keyword settings are those of :class:`RunOptions`.

    Example:
        async with af.open_run(flow, options={"numbers": {"n": 5}}) as run:
            async for event in run.events():
                print(event)
            result = await run.result()
    """
    cfg = _settings("open_run", settings)  # every setting checked before anything is opened
    graph = with_executors(_as_graph(flow, options), cfg.executors)
    store = cfg.store
    if cfg.resume == "auto":  # resume an unfinished store, else start afresh (RunSettings: auto needs a store)
        assert store is not None
        cfg = attrs.evolve(cfg, resume=store_state(store) == "unfinished")
    if store is not None:
        check_storable(graph)  # before the store is opened or any task runs
    opened, doc = (None, None) if store is None else open_for_run(
        store, graph, cfg.resume is True, dict(cfg.meta or {}), cfg.allow_changed, cfg.from_previous
    )
    cache_store: Store | None = None
    try:
        the_cache, cache_store = open_cache(cfg.cache, opened, cfg.cache_limit)
        runtime = Runtime(
            graph, store=opened, checkpoint_every=cfg.checkpoint_every, handle_signals=cfg.handle_signals,
            secrets=cfg.secrets, cache=the_cache, batch_time=cfg.batch_time, slow_item=cfg.slow_item,
        )
        if doc is not None:
            apply(runtime, doc)
            runtime.restored = {n: max(a.items_in, a.items_out) for n, a in runtime.actors.items()}
            runtime.route_hits()
            runtime.resumed_from = runtime.supervisor.number = doc["number"]
        elif the_cache is not None:
            runtime.attach_cache(plan(graph, the_cache, runtime.in_result()))
        async with _running(runtime, cfg.strict) as handle:
            yield handle
    finally:
        if cache_store is not None:
            cache_store.close()
        if opened is not None and opened is not store:
            opened.close()
        elif opened is not None:
            opened.release()  # the caller's store stays open, but no longer owned by this run


@asynccontextmanager
async def _running(runtime: Runtime, strict: bool) -> AsyncIterator[Run]:
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(runtime.main)
        try:
            yield Run(runtime, strict)
        except BaseException as exc:
            body_error = exc
            runtime.cancel()
    if body_error is not None:
        raise body_error
    if runtime.error is not None and not runtime.error_seen:
        runtime.error_seen = True
        raise runtime.error


async def run_async(flow: Flow | RunGraph, options: Options | None = None, **settings: Unpack[RunOptions]) -> RunResult:
    """Run a flow to completion inside trio and return its products (settings: :class:`RunOptions`).

    Raises:
        InvocationError: options are invalid (nothing ran).
        TaskFailed: a task's code raised; the original exception is chained.
        MailboxTypeError: a task sent an item of the wrong type.
    """
    _settings("run_async", settings)
    async with open_run(flow, options, **settings) as handle:
        return await handle.result()


def run(flow: Flow | RunGraph, options: Options | None = None, **settings: Unpack[RunOptions]) -> RunResult:
    """Run a flow to completion (starts its own trio loop) and return its products.

    The keyword settings are those of :class:`RunOptions`.

    Example:
        >>> result = af.run(flow, options={"numbers": {"n": 100}})
        >>> result["total"]
    """
    cfg = _settings("run", settings)
    graph = with_executors(_as_graph(flow, options), cfg.executors)  # refused before the loop starts
    settings["executors"] = None
    try:
        return trio.run(functools.partial(run_async, graph, **settings))
    except KeyboardInterrupt as exc:
        if not from_signal(exc):
            raise  # a task's own `raise KeyboardInterrupt`: its note names the task
        raise plain_interrupt(exc, graph.name) from None


def from_signal(exc: BaseException) -> bool:
    """Whether *exc* came from a signal (Ctrl-C): trio raises it from its signal handler, which is then
    the innermost frame, whatever code happened to be running."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).parent == Path(trio.__file__).parent / "_core"


def plain_interrupt(exc: KeyboardInterrupt, flow: str) -> KeyboardInterrupt:
    """A Ctrl-C as a plain ``KeyboardInterrupt`` that blames no task (whichever task's code happened
    to be running when it came), keeping what actorflow said about the checkpoint."""
    plain = KeyboardInterrupt()
    notes = [n for n in getattr(exc, "__notes__", ()) if n.startswith("actorflow: checkpoint")]
    plain.add_note(f"actorflow: the run of flow {flow!r} was interrupted")
    for note in notes:
        plain.add_note(note + " (or run again with resume='auto')")
    return plain


def store_state(store: str | os.PathLike[str] | Store) -> str:
    """What *store* holds: ``"empty"`` (no store there yet, or no run recorded), ``"unfinished"`` (a run
    that can be resumed) or ``"finished"`` (a run that wrote its final checkpoint).

    Raises:
        StoreError: the path is not a store, or its latest checkpoint is damaged.
    """
    if isinstance(store, Store):
        return _state_of(store)
    if not Path(store).exists():
        return "empty"
    with open_store(store, readonly=True) as opened:
        return _state_of(opened)


def _state_of(store: Store) -> str:
    if store.run_info() is None:
        return "empty"
    doc = load(store)
    return "finished" if doc is not None and doc.get("final") else "unfinished" if doc is not None else "empty"
