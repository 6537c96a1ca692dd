"""The pipes between a run in the host's trio loop and asyncio code (see :mod:`actorflow.asyncio`):
feeds into a run, and its events and taps out of it.

Each object here belongs to a :class:`~actorflow.asyncio.Host`: asyncio code calls its asyncio side;
its trio side runs in the host's trio loop, reached through the host's ``_call``/``_spawn``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, final

import trio

from .._base import ActorflowError, BatchProcessed, Event, EventStream
from ._gateway import Feed, Tap

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")


class Host(Protocol):
    """What the objects here use of their :class:`~actorflow.asyncio.Host` (defined above this module)."""

    _loop: asyncio.AbstractEventLoop

    @property
    def closed(self) -> bool: ...

    def _call(self, fn: Callable[[], Any]) -> None: ...

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None: ...

    async def _in_trio(self, fn: Callable[[], Any]) -> Any: ...


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None = None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


@final
class AsyncioSourceFeed:
    """The feed of a run's external source (``af.external_source``), seen from asyncio code.

    Get it from :meth:`AsyncioRun.feed`. :meth:`send` waits while the source's mailbox is full
    (backpressure), as :meth:`actorflow.Feed.send` does in trio.
    """

    def __init__(self, host: Host, feed: Feed) -> None:
        self._host = host
        self._feed = feed

    async def send(self, item: Any) -> None:
        """Send one item into the run (checked against the source's item type).

        Raises:
            TypeError: the item is not of the source's type.
            ActorflowError: the feed is closed.
        """
        feed = self._feed
        await self._host._in_trio(lambda: feed.send(item))

    def close(self) -> None:
        """End the source's stream: the run finishes once what was sent has gone through."""
        self._host._call(self._feed.close)


class _Pipe:
    """Moves what a trio async iterator yields to an asyncio reader, dropping what *droppable* says
    when the reader falls more than *maxlen* behind."""

    def __init__(self, host: Host, source: Any, maxlen: int, droppable: Callable[[Any], bool]) -> None:
        self._host = host
        self._source = source
        self._maxlen = maxlen
        self._droppable = droppable
        self._buf: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self.dropped = 0
        host._spawn(self._forward)

    async def _forward(self) -> None:
        try:
            async for value in self._source:
                if len(self._buf) >= self._maxlen and self._droppable(value):
                    self.dropped += 1
                    continue
                self._buf.append(value)
                self._wake()
        finally:
            self._ended = True
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            _settle(self._waiter, None)

    async def _next(self) -> Any:
        while not self._buf:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = self._host._loop.create_future()
            await self._waiter
        return self._buf.popleft()

    async def aclose(self) -> None:
        """Stop receiving."""
        if not self._ended and not self._host.closed:
            self._host._call(self._source.close)


@final
class AsyncioTap(_Pipe):
    """The items a task sends downstream, seen from asyncio: ``async for seqs, items in tap``.

    Get it from :meth:`AsyncioRun.tap`; it ends when the task ends. A tap never slows the run: a
    reader that falls *maxlen* batches behind loses batches (counted by the trio tap).
    """

    def __init__(self, host: Host, tap: Tap) -> None:
        super().__init__(host, tap, 1 << 62, lambda _: False)  # the trio tap bounds itself

    def __aiter__(self) -> AsyncioTap:
        return self

    async def __anext__(self) -> tuple[list[Any], list[Any]]:
        value: tuple[list[Any], list[Any]] = await self._next()
        return value


class _EventPipe(_Pipe):
    """A run's events, from its trio :class:`EventStream` to an asyncio reader, dropping batch events
    when the reader falls more than *maxlen* behind (as the stream itself does)."""

    def __init__(self, host: Host, stream: EventStream, maxlen: int) -> None:
        super().__init__(host, stream, maxlen, lambda event: type(event) is BatchProcessed)

    def __aiter__(self) -> _EventPipe:
        return self

    async def __anext__(self) -> Event:
        event: Event = await self._next()
        return event


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
