"""Run flows from asyncio code: a trio loop hosted inside the running asyncio loop.

actorflow runs on trio. An asyncio service (Starlette, FastAPI, aiohttp, plain asyncio streams)
can still start, feed, watch and cancel runs: :func:`open_host` starts trio in *guest mode*
(:func:`trio.lowlevel.start_guest_run`) on top of the asyncio loop, in the same thread, and every
run lives in that trio loop's nursery. Nothing runs in a hidden thread and nothing outlives the
``async with`` block.

Example:
    >>> import actorflow.asyncio as afa
    >>> async def main():
    ...     async with afa.open_host() as host:
    ...         run = await host.start(flow, options={"numbers": {"n": 100}})
    ...         async for event in run.events():
    ...             print(event)
    ...         print((await run.result())["total"])

Only one trio loop can run in a thread, so open one host per asyncio loop (thread) and start
every run on it.

:meth:`Host.start` takes every run setting :func:`actorflow.open_run` takes (``store``, ``resume``,
``checkpoint_every``, ``executors``, ``secrets``, ``batch_time``, ``strict``...) plus ``monitor``, and
the :class:`AsyncioRun` it returns has the trio handle's methods under the same names (``pause``,
``resume``, ``checkpoint_now``, ``cancel``, ``feed``, ``tap``, ``events``, ``result``). One setting
cannot work here and is refused with an error saying so: ``handle_signals`` (the asyncio loop owns
the process's signals; call ``checkpoint_now`` and ``cancel`` from its own handler instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, final

import trio

from ._base import ActorflowError, Event, EventStream, RunCancelled, RunResult, Summary
from ._define import Flow, RunGraph
from ._run import AsyncioFeed as AsyncioFeed
from ._run import AsyncioSourceFeed as AsyncioSourceFeed
from ._run import AsyncioTap as AsyncioTap
from ._run import Options, Run, RunOptions, _EventPipe, _settings, _settle, open_run

if TYPE_CHECKING:
    import outcome

__all__ = ["AsyncioFeed", "AsyncioRun", "AsyncioSourceFeed", "AsyncioTap", "Host", "open_host", "run"]

T = TypeVar("T")


@final
class Host:
    """A trio loop running as a guest of the current asyncio loop; it hosts any number of runs.

    Get one from :func:`open_host`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
        self._closed = False

    # -- asyncio side ----------------------------------------------------------------------------

    async def start(
        self, flow: Flow | RunGraph, options: Options | None = None, *, monitor: str | None = None,
        monitor_token: str | None = None, **settings: Unpack[RunOptions],
    ) -> AsyncioRun:
        """Start a run of *flow* in the host's trio loop and return its handle.

        Options are validated first, in the caller: bad options raise
        :class:`~actorflow.InvocationError` here and nothing runs. The keyword settings are those
        of :func:`actorflow.open_run` (:class:`~actorflow._run._run.RunOptions`: ``store``, ``resume``,
        ``checkpoint_every``, ``executors``, ``secrets``, ``batch_time``, ``strict``...), and any
        error opening the run (a store in use, bad settings) is raised here.

        Args:
            flow: the flow (or a bound run graph).
            options: option values by task, then option name.
            monitor: ``HOST:PORT`` to serve the run's websocket monitor, dashboard and ``/metrics``
                on while it runs (``AsyncioRun.monitor`` then gives its URLs; port 0 picks one).
            monitor_token: the token the monitor requires (needed for a non-loopback host).

        Raises:
            ActorflowError: ``handle_signals=True``, which cannot work under asyncio (its loop owns
                the process's signals: call ``checkpoint_now()`` and ``cancel()`` from your own handler).
        """
        _settings("Host.start", settings)
        if settings.get("handle_signals"):
            raise ActorflowError(
                "handle_signals=True cannot work under asyncio: the asyncio loop owns the process's signals. "
                "Install your own handler (loop.add_signal_handler) that calls `await run.checkpoint_now()` "
                "and `run.cancel()`"
            )
        graph = _as_graph(flow, options)
        handle = AsyncioRun(self, graph, dict(settings), monitor, monitor_token)
        self._spawn(handle._main)
        await self._until(handle._started)
        return handle

    def feed(self, capacity: int = 1024) -> AsyncioFeed[Any]:
        """A bounded channel from asyncio code into a flow; see :class:`AsyncioFeed`."""
        return AsyncioFeed(self, capacity)

    @property
    def closed(self) -> bool:
        """True once the host's trio loop has stopped."""
        return self._closed or self._done.done()

    async def aclose(self) -> None:
        """Cancel every run still going and stop the trio loop; waits until it has stopped."""
        if not self._done.done():
            self._closed = True
            stop = self._stop
            if stop is not None:
                self._call(stop.set)
        cancelled = False
        while not self._done.done():
            try:
                await asyncio.shield(self._done)
            except asyncio.CancelledError:
                cancelled = True  # keep waiting: the trio loop must not outlive the host
        if cancelled:
            raise asyncio.CancelledError
        self._done.result().unwrap()

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], object]) -> None:
        """Run *fn* in the trio loop's context soon (trio calls cannot be made from asyncio code)."""
        if self._token is None:
            raise ActorflowError("the actorflow host is not running")
        try:
            self._token.run_sync_soon(fn)
        except trio.RunFinishedError:
            raise ActorflowError("the actorflow host is closed; start runs inside `async with open_host()`") from None

    def _spawn(self, afn: Callable[[], Any]) -> None:
        if self.closed:
            raise ActorflowError("the actorflow host is closed; start runs inside `async with open_host()`")

        def spawn() -> None:
            assert self._nursery is not None
            self._nursery.start_soon(afn)

        self._call(spawn)

    async def _in_trio(self, afn: Callable[[], Any]) -> Any:
        """Await ``afn()`` run in the trio loop (a task of the host's nursery) and return its value."""
        fut: asyncio.Future[Any] = self._loop.create_future()

        async def call() -> None:
            try:
                value = await afn()
            except BaseException as exc:
                _settle(fut, None, exc if isinstance(exc, Exception) else ActorflowError("the actorflow host stopped"))
                if not isinstance(exc, Exception):
                    raise
            else:
                _settle(fut, value)

        self._spawn(call)
        return await self._until(fut)

    async def _until(self, fut: asyncio.Future[T]) -> T:
        """Await *fut*, or fail clearly if the trio loop stops first."""
        waiting: list[asyncio.Future[Any]] = [fut, self._done]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not fut.done():
            self._done.result().unwrap()
            raise ActorflowError("the actorflow host stopped")
        return fut.result()

    async def _trio_main(self, ready: asyncio.Future[None]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            _settle(ready, None)
            await self._stop.wait()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_host() -> AsyncIterator[Host]:
    """Start trio as a guest of the running asyncio loop, for the length of the block.

    Leaving the block cancels every run still going and waits until the trio loop has stopped.

    Raises:
        ActorflowError: a trio loop already runs in this thread (one host per thread).
    """
    loop = asyncio.get_running_loop()
    host = Host(loop)
    ready: asyncio.Future[None] = loop.create_future()

    def done(result: outcome.Outcome[None]) -> None:
        host._closed = True
        _settle(host._done, result)

    try:
        trio.lowlevel.start_guest_run(
            host._trio_main,
            ready,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done,
            host_uses_signal_set_wakeup_fd=True,
        )
    except RuntimeError as exc:
        raise ActorflowError(
            f"cannot start an actorflow host: {exc}; only one trio loop can run in a thread, so open one host "
            "and start every run on it"
        ) from exc
    try:
        await host._until(ready)
        yield host
    finally:
        await host.aclose()


async def run(flow: Flow | RunGraph, options: Options | None = None, **settings: Unpack[RunOptions]) -> RunResult:
    """Run a flow to completion from asyncio code and return its products (settings as :meth:`Host.start`).

    Opens a host for the call; inside a service that starts many runs, use one :func:`open_host`.
    Cancelling the awaiting asyncio task cancels the run.
    """
    async with open_host() as host:
        handle = await host.start(flow, options, **settings)
        return await handle.result()


def _as_graph(flow: Flow | RunGraph, options: Options | None) -> RunGraph:
    if isinstance(flow, RunGraph):
        if options:
            raise ActorflowError("pass options to flow.bind() or to start(), not both")
        return flow
    if not isinstance(flow, Flow):
        raise TypeError(f"expected an actorflow Flow or a bound RunGraph, got {type(flow).__name__}")
    return flow.bind(options)


@final
class AsyncioRun:
    """A run started by :meth:`Host.start`, seen from asyncio code: the methods of the trio
    :class:`~actorflow.Run` handle, under the same names.

    Attributes:
        run_id: the run's unique id.
        monitor: the run's monitor server (its ``http_url``, ``url``, ``metrics_url``) when
            :meth:`Host.start` was given ``monitor=``, else None.
    """

    def __init__(
        self, host: Host, graph: RunGraph, settings: dict[str, Any] | None = None, monitor: str | None = None,
        monitor_token: str | None = None,
    ) -> None:
        self._host = host
        self._graph = graph
        self._settings = settings or {}
        self._monitor_at = monitor
        self._monitor_token = monitor_token
        loop = host._loop
        self._started: asyncio.Future[None] = loop.create_future()
        self._result: asyncio.Future[RunResult] = loop.create_future()
        self._run: Run | None = None
        self._first: EventStream | None = None
        self.run_id = ""
        self.monitor: Any = None
        self._paused: bool | None = None  # what pause()/resume() asked for, until the trio loop took it

    @property
    def runtime(self) -> Any:
        """Not here: the runtime lives in the trio loop. ``af.feed``/``af.tap`` take a trio run; from
        asyncio call this handle's own :meth:`feed` and :meth:`tap`."""
        raise ActorflowError(
            "an AsyncioRun has no trio runtime to hand out: af.feed(run, ...) and af.tap(run, ...) are for trio "
            "code; from asyncio use run.feed(source) and run.tap(task)"
        )

    @property
    def status(self) -> str:
        """``"pending"``, ``"running"``, ``"ok"``, ``"failed"``, ``"cancelled"`` or ``"interrupted"``."""
        return self._run.status if self._run is not None else "pending"

    @property
    def summary(self) -> Summary:
        """Figures so far (final once the run ended)."""
        return self._handle().summary

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._handle().paused if self._paused is None else self._paused

    def done(self) -> bool:
        """True once the run has ended (whatever the outcome)."""
        return self._result.done()

    def _handle(self) -> Run:
        if self._run is None:
            raise ActorflowError("the run has not started")
        return self._run

    def cancel(self) -> None:
        """Cancel the run; :meth:`result` then raises :class:`~actorflow.RunCancelled`."""
        if self._run is not None and not self._result.done():
            self._host._call(self._run.cancel)

    def pause(self) -> None:
        """Hold every source and task at its next batch boundary (see :meth:`actorflow.Run.pause`).

        It is handed to the trio loop, which takes it at its next step (before any later call made here).
        """
        self._order(True)

    def resume(self) -> None:
        """Let a paused run go on (see :meth:`actorflow.Run.resume`)."""
        self._order(False)

    def _order(self, pause: bool) -> None:
        run = self._handle()
        self._paused = pause

        def apply() -> None:
            run.pause() if pause else run.resume()
            if self._paused is pause:
                self._paused = None  # taken: the run's own flag says it from now on

        self._host._call(apply)

    async def checkpoint_now(self) -> bool:
        """Write a checkpoint at once; False when the run has no store."""
        run = self._handle()
        return bool(await self._host._in_trio(run.checkpoint_now))

    def feed(self, source: str) -> AsyncioSourceFeed:
        """The feed of the external source *source* (``af.external_source``), to send items from asyncio.

        Raises:
            KeyError, ActorflowError: as :meth:`actorflow.Run.feed` (no such external source).
        """
        return AsyncioSourceFeed(self._host, self._handle().feed(source))

    def tap(self, task: str, maxlen: int = 10_000) -> AsyncioTap:
        """Watch the items *task* sends downstream: an async iterator of ``(seqs, items)`` batches that
        ends when the task does (see :meth:`actorflow.Run.tap`)."""
        return AsyncioTap(self._host, self._handle().tap(task, maxlen))

    async def result(self) -> RunResult:
        """Wait for the run to end and return its products (or raise its error).

        Cancelling the task that awaits this does not cancel the run; call :meth:`cancel`.
        """
        return await asyncio.shield(self._result)

    def events(self, maxlen: int = 10_000) -> AsyncIterator[Event]:
        """The run's events as an asyncio async iterator; it ends when the run ends.

        The first call sees every event from ``RunStarted``; later calls see events from then on.

        Args:
            maxlen: how far this reader may fall behind before batch events are dropped for it.
        """
        run = self._handle()
        stream, self._first = (self._first, None) if self._first is not None else (run.events(maxlen), None)
        return _EventPipe(self._host, stream, maxlen)

    async def _main(self) -> None:
        try:
            async with open_run(self._graph, **self._settings) as run, self._monitoring(run):
                self._run = run
                self.run_id = run.run_id
                self._first = run.events()
                _settle(self._started, None)
                value = await run.result()
            _settle(self._result, value)
        except Exception as exc:
            _settle(self._started, None, exc)
            _settle(self._result, None, exc)
        except BaseException:  # the host is shutting down (trio.Cancelled)
            error = RunCancelled(f"run {self.run_id} of flow {self._graph.name!r} was cancelled: its host closed")
            _settle(self._started, None, error)
            _settle(self._result, None, error)
            raise
        # Nobody may ever await a failed result; mark it retrieved so asyncio does not warn.
        if self._result.done() and not self._result.cancelled():
            self._result.exception()

    @asynccontextmanager
    async def _monitoring(self, run: Run) -> AsyncIterator[None]:
        if self._monitor_at is None:
            yield
            return
        from ._observe import open_monitor, parse_host_port

        host, port = parse_host_port(self._monitor_at)
        async with open_monitor(run, host, port, token=self._monitor_token) as server:
            self.monitor = server
            yield


if not TYPE_CHECKING:  # type checkers keep flagging unknown names

    def __getattr__(name: str) -> object:
        if name == "Feed":
            raise AttributeError(
                "actorflow.asyncio.Feed is now AsyncioFeed (actorflow.Feed is the feed of an external source)"
            )
        raise AttributeError(f"module 'actorflow.asyncio' has no attribute {name!r}")
