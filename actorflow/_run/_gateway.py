"""The gateway: sources fed from outside a run, and taps that watch a task's output.

An *external source* is an ordinary async generator source that reads the items of a per-run
:class:`Feed`. Code in the same process feeds it with :func:`feed`; websocket clients of the monitor
server (see ``docs/monitor-protocol.md``) feed it with ``push`` messages. Items arriving from
outside are validated and structured into the source's item type with cattrs.

A :class:`Tap` receives copies of the batches a task sends downstream, without ever making the task
wait: when its reader falls behind, the oldest items are dropped and counted.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, final

import attrs
import cattrs
import trio

from .._base import ActorflowError, Cursor, Stream, admits, runtime_classes, type_name, type_problem
from .._define import EXTERNAL_ATTR
from .._kernel import Runtime, Waiters, current_run
from .._storage import converter, strict, structure_strictly
from .._storage import describe as _describe

if TYPE_CHECKING:
    from ._run import Run


DEFAULT_FEED_CAPACITY = 1024


def _structure_record(value: Any, item_type: Any) -> Any:
    """:func:`structure_item` for an attrs class or dataclass: an instance as it is, else from a mapping."""
    if isinstance(item_type, type) and isinstance(value, item_type):
        if (why := type_problem(item_type, value)) is not None:
            raise TypeError(f"does not fit {type_name(item_type)}: {why}")
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping of fields for {type_name(item_type)}, got {_describe(value)}")
    try:
        return strict.structure(value, item_type)
    except Exception as exc:
        detail = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, cattrs.BaseValidationError) else exc
        raise TypeError(f"does not fit {type_name(item_type)}: {detail}") from None


def structure_item(value: Any, item_type: Any) -> Any:
    """Return *value* (decoded JSON or msgpack) as an instance of *item_type*.

    attrs classes and dataclasses are structured from mappings with cattrs; plain types must
    already have the right type (an int is accepted for a float). Containers are structured
    element by element.

    Raises:
        TypeError: *value* has the wrong shape; the message says what was expected and what came.
    """
    if attrs.has(item_type) or dataclasses.is_dataclass(item_type):
        return _structure_record(value, item_type)
    classes = runtime_classes(item_type)
    if classes is None:
        return value
    if isinstance(value, bool) and not admits(classes, bool):
        raise TypeError(f"expected {type_name(item_type)}, got {_describe(value)}")
    if type(value) is int and item_type is float:
        return float(value)
    if isinstance(value, classes):
        if isinstance(value, list | dict | tuple | set) and getattr(item_type, "__args__", None):
            return _strictly(value, item_type)
        return value
    if isinstance(value, int) and float in classes:
        return float(value)
    if isinstance(value, str) and any(issubclass(c, enum.Enum) for c in classes):
        try:
            return converter.structure(value, item_type)
        except Exception:
            pass
    if isinstance(value, list) and any(issubclass(c, tuple | set | frozenset) for c in classes):
        return _strictly(value, item_type)
    raise TypeError(f"expected {type_name(item_type)}, got {_describe(value)}")


def _strictly(value: Any, item_type: Any) -> Any:
    """A container from outside as *item_type*: elements keep their types (no ``"0"`` for an int)."""
    try:
        return structure_strictly(value, item_type)
    except ValueError as exc:
        raise TypeError(str(exc)) from None


#: The cursor of an external source that has taken no item yet.
_FIRST = Cursor(0)


@final
class Feed:
    """The inbox of one external source in one run. Get it with :func:`feed`.

    Sending waits while the feed is full, so a producer outside the run feels the pipeline's
    backpressure. :meth:`close` ends the source's stream (the run can then finish).
    """

    def __init__(self, source: str, item_type: Any, capacity: int = DEFAULT_FEED_CAPACITY) -> None:
        self.source = source
        self.item_type = item_type
        #: A plain scalar item type: a value of exactly that type needs no structuring.
        self._scalar = item_type if item_type in (int, float, str, bytes) else None
        self._send, self._receive = trio.open_memory_channel[Any](capacity)
        self.closed = False
        #: How many items of this source the run had before it started: 0, or in a resumed run the
        #: items its checkpoint holds. Send again from there: the first item sent now is item ``start``.
        self.start = 0
        #: Items put in the channel that the source has not read yet. Counted here, not taken from the
        #: channel's statistics: an item trio hands straight to the waiting source task is in no
        #: buffer, yet that task has not run, so a direct send would overtake it.
        self.queued = 0
        #: Set by the source's actor while it waits on an empty feed: sends one item downstream in
        #: the feeder's own step and says whether it did (None: items go through the channel).
        self.direct: Callable[[Any], bool] | None = None
        #: How many items were accepted so far.
        self.accepted = 0

    async def send(self, item: Any) -> None:
        """Validate *item*, then hand it to the source (waits while the feed is full).

        Raises:
            TypeError: the item does not fit the source's item type.
            ActorflowError: the feed was closed.
        """
        value = item if type(item) is self._scalar else structure_item(item, self.item_type)
        direct = self.direct
        if direct is not None and not self.queued and not self.closed and direct(value):
            self.accepted += 1  # the source was idle: it sent the item downstream at once
            return
        await self._put(value)

    async def _put(self, value: Any) -> None:
        if self.closed:
            raise ActorflowError(f"external source {self.source!r} is closed; it takes no more items")
        try:
            try:
                self._send.send_nowait(value)  # one scheduler pass per full feed, not per item
            except trio.WouldBlock:
                await self._send.send(value)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorflowError(f"external source {self.source!r} is closed; it takes no more items") from None
        self.queued += 1
        self.accepted += 1

    def close(self) -> None:
        """End the source's stream once the items already sent are consumed."""
        self.closed = True
        self._send.close()


def external_sources(run: Runtime) -> dict[str, Any]:
    """Names of the run's external sources and their item types."""
    out: dict[str, Any] = {}
    for name, spec in run.graph.tasks.items():
        item_type = getattr(spec.fn, EXTERNAL_ATTR, None)
        if item_type is not None:
            out[name] = item_type
    return out


def feed_of(run: Runtime, source: str) -> Feed:
    """The :class:`Feed` of the external source *source* of a run's runtime (made on first use)."""
    if source in run.feeds:
        return run.feeds[source]
    known = external_sources(run)
    if source not in known:
        raise KeyError(
            f"flow {run.flow_name!r} has no external source {source!r}; external sources: {sorted(known)}"
        )
    spec = run.graph.tasks[source]
    run.feeds[source] = f = Feed(source, known[source], capacity=max(1, spec.capacity))
    f.start = getattr(run.actors[source], "cursor", 0)  # a resumed run: the items its checkpoint has
    return f


def feed(run: Run, source: str) -> Feed:
    """The :class:`Feed` of the external source named *source* in *run* (same as ``run.feed(source)``).

    Example:
        async with af.open_run(flow) as run:
            orders = af.feed(run, "orders")
            await orders.send({"id": 1, "qty": 3})
            orders.close()

    Raises:
        KeyError: *source* is not an external source of the run's flow.
    """
    return feed_of(run.runtime, source)


def external_source(item_type: Any, *, name: str = "external", doc: str | None = None) -> Callable[[], Any]:
    """Make a source function whose items are pushed from outside the run.

    Register the result with :meth:`Flow.source`. Items come from :func:`feed` (in the same
    process) or from websocket clients of :func:`serve_monitor` (``push`` messages); each is
    structured into *item_type* with cattrs, and a wrong one is refused with a message naming the
    source and the problem. The stream ends when the feed is closed (``end`` message or
    :meth:`Feed.close`).

    Args:
        item_type: the type of the source's items (an attrs class, a dataclass, ``int``, ...).
        name: the task's name in the flow.
        doc: the task's description (shown in the graph).

    Example:
        >>> flow = af.Flow("orders")
        >>> flow.source(af.external_source(Order, name="orders"))
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ActorflowError(f"external_source: name must be a Python identifier, got {name!r}")

    async def source(cursor: Cursor = _FIRST) -> AsyncIterator[Any]:
        # an af.Cursor: a resumed run takes new items numbered from its checkpoint's cursor and
        # skips none (the feeder sends again from `Feed.start`)
        try:
            run = current_run.get()
        except LookupError:
            raise ActorflowError(f"external source {name!r} can only run inside an actorflow run") from None
        feed = feed_of(run, name)
        receive = feed._receive
        async with receive:  # the channel straight, no generator in between: one layer less per item
            async for item in receive:
                feed.queued -= 1
                yield item

    source.__name__ = source.__qualname__ = name
    source.__doc__ = doc or f"Items of type {type_name(item_type)} pushed from outside the run."
    source.__annotations__ = {"cursor": Cursor, "return": Stream[item_type]}  # type: ignore[misc]
    setattr(source, EXTERNAL_ATTR, item_type)
    return source


@final
class Tap:
    """A non-blocking copy of a task's output stream (see :func:`tap`).

    Iterate with ``async for seqs, items in tap``; the iteration ends when the task finishes or the
    tap is closed. A reader that falls more than ``maxlen`` items behind loses the oldest ones
    (counted in :attr:`dropped`); the task never waits for a tap.
    """

    def __init__(self, run: Runtime, task: str, maxlen: int = 10_000) -> None:
        self.run = run
        self.task = task
        self.maxlen = maxlen
        self.dropped = 0
        self._queue: deque[tuple[Any, Any]] = deque()
        self._lot = Waiters()
        self._closed = False

    def __call__(self, seqs: list[Any], items: list[Any]) -> None:
        q = self._queue
        for pair in zip(seqs, items, strict=True):
            q.append(pair)
        while len(q) > self.maxlen:
            q.popleft()
            self.dropped += 1
        if self._lot:
            self._lot.unpark_all()

    def wake(self) -> None:
        """The task or the run ended: let a waiting reader see it."""
        self._lot.unpark_all()

    def close(self) -> None:
        """Stop watching the task."""
        if self._closed:
            return
        self._closed = True
        actor = self.run.actors[self.task]
        actor.taps = [t for t in actor.taps if t is not self]
        self._lot.unpark_all()

    @property
    def ended(self) -> bool:
        actor = self.run.actors[self.task]
        return self._closed or actor.status in ("finished", "failed") or self.run.done.is_set()

    def __aiter__(self) -> Tap:
        return self

    async def __anext__(self) -> tuple[list[Any], list[Any]]:
        while not self._queue:
            if self.ended:
                self.close()
                raise StopAsyncIteration
            await self._lot.park()  # woken by a batch, by the task's end (wake) or by close
        seqs, items = [], []
        while self._queue:
            s, x = self._queue.popleft()
            seqs.append(s)
            items.append(x)
        return seqs, items


def tap(run: Run, task: str, maxlen: int = 10_000) -> Tap:
    """Watch the items *task* sends downstream in *run*, without slowing it (same as ``run.tap(task)``).

    Raises:
        KeyError: the run's flow has no task *task*.
        ActorflowError: the task has no output stream (a sink or a task with a single product).
    """
    return tap_of(run.runtime, task, maxlen)


def tap_of(run: Runtime, task: str, maxlen: int = 10_000) -> Tap:
    """A :class:`Tap` on *task* of a run's runtime (see :func:`tap`)."""
    actor = run.actors.get(task)
    if actor is None:
        raise KeyError(f"flow {run.flow_name!r} has no task {task!r}; tasks: {list(run.actors)}")
    if not actor.spec.streaming:
        raise ActorflowError(
            f"task {task!r} of flow {run.flow_name!r} is a {actor.spec.kind} without an output stream; "
            "only streaming tasks can be watched"
        )
    t = Tap(run, task, maxlen)
    actor.taps = [*actor.taps, t]
    return t
