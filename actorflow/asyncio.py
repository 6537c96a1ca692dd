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
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import trio

from ._bind import RunGraph
from ._errors import ActorflowError, RunCancelled
from ._events import BatchProcessed, Event, EventStream
from ._flow import Flow
from ._result import RunResult, Summary
from ._run import Options, Run, open_run

if TYPE_CHECKING:
    import outcome

__all__ = ["AsyncioFeed", "AsyncioRun", "Host", "open_host", "run"]

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

    async def start(self, flow: Flow | RunGraph, options: Options | None = None) -> AsyncioRun:
        """Start a run of *flow* in the host's trio loop and return its handle.

        Options are validated first, in the caller: bad options raise
        :class:`~actorflow.InvocationError` here and nothing runs.
        """
        graph = _as_graph(flow, options)
        handle = AsyncioRun(self, graph)
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


async def run(flow: Flow | RunGraph, options: Options | None = None) -> RunResult:
    """Run a flow to completion from asyncio code and return its products.

    Opens a host for the call; inside a service that starts many runs, use one :func:`open_host`.
    Cancelling the awaiting asyncio task cancels the run.
    """
    async with open_host() as host:
        handle = await host.start(flow, options)
        return await handle.result()


def _as_graph(flow: Flow | RunGraph, options: Options | None) -> RunGraph:
    if isinstance(flow, RunGraph):
        if options:
            raise ActorflowError("pass options to flow.bind() or to start(), not both")
        return flow
    if not isinstance(flow, Flow):
        raise TypeError(f"expected an actorflow Flow or a bound RunGraph, got {type(flow).__name__}")
    return flow.bind(options)


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None = None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


@final
class AsyncioRun:
    """A run started by :meth:`Host.start`, seen from asyncio code.

    Attributes:
        run_id: the run's unique id.
    """

    def __init__(self, host: Host, graph: RunGraph) -> None:
        self._host = host
        self._graph = graph
        loop = host._loop
        self._started: asyncio.Future[None] = loop.create_future()
        self._result: asyncio.Future[RunResult] = loop.create_future()
        self._run: Run | None = None
        self._first: EventStream | None = None
        self.run_id = ""

    @property
    def status(self) -> str:
        """``"pending"``, ``"running"``, ``"ok"``, ``"failed"`` or ``"cancelled"``."""
        return self._run.status if self._run is not None else "pending"

    @property
    def summary(self) -> Summary:
        """Figures so far (final once the run ended)."""
        assert self._run is not None
        return self._run.summary

    def done(self) -> bool:
        """True once the run has ended (whatever the outcome)."""
        return self._result.done()

    def cancel(self) -> None:
        """Cancel the run; :meth:`result` then raises :class:`~actorflow.RunCancelled`."""
        if self._run is not None and not self._result.done():
            self._host._call(self._run.cancel)

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
        assert self._run is not None
        stream, self._first = (self._first, None) if self._first is not None else (self._run.events(maxlen), None)
        return _EventPipe(self._host, stream, maxlen)

    async def _main(self) -> None:
        try:
            async with open_run(self._graph) as run:
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


class _EventPipe:
    """Moves events from a trio :class:`EventStream` to an asyncio reader, dropping batch events
    when the reader falls more than *maxlen* behind (as the stream itself does)."""

    def __init__(self, host: Host, stream: EventStream, maxlen: int) -> None:
        self._host = host
        self._stream = stream
        self._maxlen = maxlen
        self._buf: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self.dropped = 0
        host._spawn(self._forward)

    async def _forward(self) -> None:
        try:
            async for event in self._stream:
                if len(self._buf) >= self._maxlen and type(event) is BatchProcessed:
                    self.dropped += 1
                    continue
                self._buf.append(event)
                self._wake()
        finally:
            self._ended = True
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            _settle(self._waiter, None)

    def __aiter__(self) -> _EventPipe:
        return self

    async def __anext__(self) -> Event:
        while not self._buf:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = self._host._loop.create_future()
            await self._waiter
        return self._buf.popleft()

    async def aclose(self) -> None:
        """Stop receiving events."""
        if not self._ended and not self._host.closed:
            self._host._call(self._stream.close)


@final
class AsyncioFeed(Generic[T]):
    """A bounded channel from asyncio code into a flow (not :class:`actorflow.Feed`, which feeds an
    ``af.external_source`` from trio code).

    asyncio code awaits :meth:`put` (which waits while the feed holds *capacity* items) and calls
    :meth:`close` at the end; inside the flow, an async source iterates the feed, which it gets
    as an option value. Get one from :meth:`Host.feed`.

    Example:
        >>> @flow.source
        ... async def requests(feed: afa.AsyncioFeed) -> af.Stream[int]:
        ...     async for item in feed:
        ...         yield item
        >>> feed = host.feed()
        >>> run = await host.start(flow, options={"requests": {"feed": feed}})
        >>> await feed.put(1); feed.close()
    """

    def __init__(self, host: Host, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"a feed's capacity must be a positive int, got {capacity!r}")
        self._host = host
        self.capacity = capacity
        self._buf: deque[T] = deque()
        self._closed = False
        self._readers = trio.lowlevel.ParkingLot()
        self._putters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- asyncio side ----------------------------------------------------------------------------

    async def put(self, item: T) -> None:
        """Add one item, waiting while the feed is full.

        Raises:
            ActorflowError: the feed is closed.
        """
        while len(self._buf) >= self.capacity and not self._closed:
            fut = self._host._loop.create_future()
            self._putters.append(fut)
            try:
                await fut
            finally:
                if fut in self._putters:
                    self._putters.remove(fut)
        if self._closed:
            raise ActorflowError("cannot put into a closed feed")
        self._buf.append(item)
        self._wake_readers()

    def close(self) -> None:
        """End the stream: the source's ``async for`` ends once the queued items are read."""
        if self._closed:
            return
        self._closed = True
        while self._putters:
            _settle(self._putters.popleft(), None)
        self._wake_readers()

    def _wake_readers(self) -> None:
        if self._readers and not self._host.closed:
            self._host._call(self._readers.unpark_all)

    # -- trio side -------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncioFeed[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buf:
            if self._closed:
                raise StopAsyncIteration
            await self._readers.park()
        item = self._buf.popleft()
        if self._putters:
            _settle(self._putters.popleft(), None)
        return item


if not TYPE_CHECKING:  # type checkers keep flagging unknown names

    def __getattr__(name: str) -> object:
        if name == "Feed":
            raise AttributeError(
                "actorflow.asyncio.Feed is now AsyncioFeed (actorflow.Feed is the feed of an external source)"
            )
        raise AttributeError(f"module 'actorflow.asyncio' has no attribute {name!r}")
