"""Typed event records and the per-run event bus.

Publishing never waits: each subscriber has its own buffer. When a subscriber falls more than
``maxlen`` events behind, further ``BatchProcessed`` events are dropped *for that subscriber only*
(and counted in ``dropped``); lifecycle events are always kept. So a slow or absent reader never
slows the pipeline.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import attrs
import trio

from ._errors import failure_facts


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event. ``kind`` names the event type in JSON (``"task_started"``)."""

    kind: ClassVar[str] = "event"
    run_id: str
    time: float = attrs.field(factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict, with its ``kind``."""
        d = attrs.asdict(self, recurse=False)
        d["kind"] = self.kind
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


@attrs.frozen(kw_only=True)
class RunStarted(Event):
    """The run began; ``tasks`` lists task names in topological order."""

    kind: ClassVar[str] = "run_started"
    flow: str
    tasks: tuple[str, ...]


@attrs.frozen(kw_only=True)
class RunFinished(Event):
    """The run ended; ``status`` is ``"ok"``, ``"failed"`` or ``"cancelled"``."""

    kind: ClassVar[str] = "run_finished"
    flow: str
    status: str
    elapsed: float


@attrs.frozen(kw_only=True)
class TaskStarted(Event):
    """A task's actor started."""

    kind: ClassVar[str] = "task_started"
    task: str


@attrs.frozen(kw_only=True)
class TaskFinished(Event):
    """A task's actor finished its work."""

    kind: ClassVar[str] = "task_finished"
    task: str
    items_in: int
    items_out: int
    elapsed: float


@attrs.frozen(kw_only=True)
class TaskErrored(Event):
    """A task failed the run: its code raised and no policy recovered (the run then raises the
    exception :class:`~actorflow.TaskFailed`), or it sent an item of the wrong type.

    ``seq`` is the item's sequence number (or None), ``item`` a short one-line ``repr`` of the item
    (None when the failure was not tied to one item) and ``where`` the ``file:line`` of the user's
    code that raised (None when not known). Its ``kind`` on the wire (event logs, the monitor) is
    ``"task_failed"``.
    """

    kind: ClassVar[str] = "task_failed"
    task: str
    seq: Any
    error: str
    item: str | None = None
    where: str | None = None


def task_failed(
    run_id: str, task: str, seq: Any, text: str, error: BaseException, secrets: Any = None
) -> TaskErrored:
    """The :class:`TaskErrored` event of a task whose code raised *error* (*text* its redacted text),
    with the item's short repr and the user's ``file:line`` (secret values masked)."""
    facts = failure_facts(error, secrets)
    return TaskErrored(run_id=run_id, task=task, seq=seq, error=text, item=facts["item"], where=facts["where"])


@attrs.frozen(kw_only=True)
class BatchProcessed(Event):
    """A task processed one batch: how many items came in and went out."""

    kind: ClassVar[str] = "batch_processed"
    task: str
    items_in: int
    items_out: int


@attrs.frozen(kw_only=True)
class ItemRetried(Event):
    """The supervisor will call the task again on an item after ``delay`` seconds."""

    kind: ClassVar[str] = "item_retried"
    task: str
    seq: Any
    attempt: int
    delay: float
    error: str


@attrs.frozen(kw_only=True)
class ActorRestarted(Event):
    """The supervisor restarted an actor; ``restarts`` counts those within the window."""

    kind: ClassVar[str] = "actor_restarted"
    task: str
    seq: Any
    restarts: int
    error: str


@attrs.frozen(kw_only=True)
class ItemDeadLettered(Event):
    """An item was set aside as a dead letter and the task went on."""

    kind: ClassVar[str] = "dead_lettered"
    task: str
    seq: Any
    error: str


@attrs.frozen(kw_only=True)
class Escalated(Event):
    """A failure exceeded its policy (attempts used up, restart intensity exceeded): the run fails."""

    kind: ClassVar[str] = "escalated"
    task: str
    seq: Any
    reason: str


@attrs.frozen(kw_only=True)
class CheckpointWritten(Event):
    """A consistent checkpoint was written to the store."""

    kind: ClassVar[str] = "checkpoint_written"
    number: int
    queued_items: int
    size_bytes: int
    pause_seconds: float
    write_seconds: float
    final: bool


@attrs.frozen(kw_only=True)
class RunResumed(Event):
    """The run continues from checkpoint ``number`` of its store."""

    kind: ClassVar[str] = "run_resumed"
    number: int
    queued_items: int


@attrs.frozen(kw_only=True)
class CacheHit(Event):
    """A task's products were found in the cache: its code does not run this time.

    ``key`` is the key of the entry used (a fingerprint of the task's definition, options and
    inputs). ``cutoff`` is True when the hit came from unchanged input (early cutoff): a task it
    reads from ran again but sent exactly the same items or product as when the entry was written.
    """

    kind: ClassVar[str] = "cache_hit"
    task: str
    key: str
    items: int
    cutoff: bool = False
    #: Always ``"hit"`` (handy when both cache events are read as JSON).
    outcome: str = "hit"


@attrs.frozen(kw_only=True)
class CacheMiss(Event):
    """A cacheable task is not in the cache (``reason`` says why) and runs; its products are stored."""

    kind: ClassVar[str] = "cache_miss"
    task: str
    key: str
    reason: str
    #: Always ``"miss"``.
    outcome: str = "miss"


@attrs.frozen(kw_only=True)
class TaskProgress(Event):
    """A task reported its own progress with ``ctx.progress(done, total)``."""

    kind: ClassVar[str] = "task_progress"
    task: str
    done: int
    total: int | None


@attrs.frozen(kw_only=True)
class ItemSlow(Event):
    """One item has been running longer than the run's ``slow_item`` threshold (or took longer).

    ``seq`` is the item's sequence number (the first of its batch when a batch of several was slow);
    ``seconds`` how long it had run when this was published.
    """

    kind: ClassVar[str] = "item_slow"
    task: str
    seq: Any
    seconds: float


@attrs.frozen(kw_only=True)
class ZipUnmatched(Event):
    """Items a zip could not match (their partner never came on another input) were dropped.

    Published once per input port that had such items, when the zip has read all its inputs:
    ``port`` is the input, ``count`` how many of its items were dropped, ``first_seqs`` the
    sequence numbers of the first few. With the task setting ``zip="strict"`` the task fails
    instead. The run's summary counts them per task (``TaskStats.unmatched``).
    """

    kind: ClassVar[str] = "zip_unmatched"
    task: str
    port: str
    count: int
    first_seqs: tuple[Any, ...]


class EventStream:
    """One subscriber's view of a run's events; iterate it with ``async for``.

    The iteration ends after the run's ``RunFinished`` event.
    """

    def __init__(self, bus: EventBus, maxlen: int) -> None:
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self.maxlen = maxlen
        #: How many ``BatchProcessed`` events were dropped because this reader fell behind.
        self.dropped = 0

    def _push(self, event: Event) -> None:
        if len(self._queue) >= self.maxlen and type(event) is BatchProcessed:
            self.dropped += 1
            return
        self._queue.append(event)
        if self._lot:
            self._lot.unpark_all()

    def _close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def close(self) -> None:
        """Stop receiving events."""
        self._bus._subscribers.discard(self)
        self._close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            await self._lot.park()
        return self._queue.popleft()

    def get_nowait(self) -> Event | None:
        """The next buffered event, or None."""
        return self._queue.popleft() if self._queue else None


class EventBus:
    """Fans a run's events out to its subscribers without ever waiting."""

    def __init__(self) -> None:
        self._subscribers: set[EventStream] = set()
        self._hooks: list[Callable[[Event], None]] = []
        self._closed = False

    @property
    def active(self) -> bool:
        """True when someone is listening (so per-batch events are worth building)."""
        return bool(self._subscribers)

    def subscribe(self, maxlen: int = 10_000) -> EventStream:
        stream = EventStream(self, maxlen)
        if self._closed:
            stream._close()
        else:
            self._subscribers.add(stream)
        return stream

    def publish(self, event: Event) -> None:
        for s in self._subscribers:
            s._push(event)
        for hook in self._hooks:
            hook(event)

    def hook(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call *callback* with every event the moment it is published, in the publisher's own step
        (it must be quick and must not block; a subscriber's stream sees the event later). Used to act
        at an exact point of a run, such as cutting it right after a checkpoint. Returns a function
        that removes the hook."""
        self._hooks.append(callback)
        return lambda: self._hooks.remove(callback)

    def close(self) -> None:
        self._closed = True
        for s in self._subscribers:
            s._close()
        self._subscribers.clear()
