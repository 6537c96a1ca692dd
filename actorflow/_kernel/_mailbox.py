"""Bounded, inspectable mailboxes that carry batches of items between actors.

A mailbox is a deque of ``(seqs, items)`` batches plus two trio parking lots. Senders append whole
batches; a receiver takes one batch at a time (or part of one). A sender waits only when the
mailbox already holds ``capacity`` items, so a fast producer never runs more than one batch ahead
of a full mailbox and memory stays flat. The contents are plain Python lists, so a checkpoint can
copy them while every actor is parked.
"""

from __future__ import annotations

from collections import deque
from typing import Any, final

import trio

from .._define import DEFAULT_CAPACITY

#: One message on an edge: the items' sequence numbers and the items themselves, index-aligned.
Batch = tuple[list[Any], list[Any]]


@final
class Waiters:
    """The tasks waiting on one side of a mailbox, woken all at once (a lean trio parking lot)."""

    __slots__ = ("tasks",)

    def __init__(self) -> None:
        self.tasks: list[trio.lowlevel.Task] = []

    def __bool__(self) -> bool:
        return bool(self.tasks)

    async def park(self) -> None:
        task = trio.lowlevel.current_task()
        tasks = self.tasks
        tasks.append(task)

        def abort(_: Any) -> trio.lowlevel.Abort:
            tasks.remove(task)  # still listed: a woken task is never aborted
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def unpark_all(self) -> None:
        tasks = self.tasks
        if tasks:
            self.tasks = []
            for task in tasks:
                trio.lowlevel.reschedule(task)


@final
class Mailbox:
    """A typed actor's inbox for one input port.

    Args:
        name: ``"task.port"``, used in errors and events.
        capacity: how many items may wait before a sender has to wait. If in doubt, keep the
            default (four batches).
    """

    __slots__ = (
        "_abandoned", "_batches", "_closed", "_count", "_getters", "_putters", "_spilled", "_spilling", "accepts",
        "capacity", "deep", "listener", "merge", "name", "restore", "sent", "spill_to", "watermark",
    )

    def __init__(self, name: str, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox {name!r}: capacity must be at least 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._batches: deque[Batch] = deque()
        self._count = 0
        #: Items queued here so far (counted per batch; what was dropped after :meth:`abandon` is not).
        self.sent = 0
        self._closed = False
        self._abandoned = False
        self._spilling = False
        #: Where batches beyond the capacity go while spilling (a ``SpillStore``; None: kept in memory),
        #: and the keys of the batches there, oldest first (all newer than those in memory).
        self.spill_to: Any = None
        self._spilled: deque[int] = deque()
        #: Turns spilled plain items back into the sender's item type.
        self.restore: Any = None
        #: The sender's promise: no item numbered this or lower will come any more (None: no promise yet).
        self.watermark: Any = None
        self._getters = Waiters()
        self._putters = Waiters()
        #: Optional shared lot woken on every put or close (used by actors reading several ports).
        self.listener: trio.lowlevel.ParkingLot | None = None
        #: Classes the receiving port accepts, when the sender's declared type cannot guarantee them
        #: (an unannotated upstream): the sender then checks each batch against them.
        self.accepts: tuple[type, ...] | None = None
        #: The receiving port's deep check of a batch (elements, fields; see ``_typing.batch_checker``) when needed too.
        self.deep: Any = None
        #: Whether a take joins queued batches up to the size asked for (the inbox of an executor task,
        #: whose every batch costs a round trip to a worker): see :meth:`_joined`.
        self.merge = False

    def __len__(self) -> int:
        return self._count

    @property
    def closed(self) -> bool:
        """True once the sender has said the stream ended (items may still be queued)."""
        return self._closed

    @property
    def done(self) -> bool:
        """True when the stream ended and every queued item was taken."""
        return self._closed and not self._batches and not self._spilled

    def batches(self) -> list[Batch]:
        """The queued batches, oldest first (the lists themselves; spilled ones read back)."""
        out = list(self._batches)
        for key in self._spilled:
            seqs, items = self.spill_to.get(key, delete=False)
            out.append((seqs, self.restore(items) if self.restore is not None else items))
        return out

    def in_memory(self) -> list[Batch]:
        """The batches queued in memory, oldest first (all older than the spilled ones)."""
        return list(self._batches)

    def spilled_plain(self) -> list[list[Any]]:
        """The spilled batches, oldest first, as they were stored: plain ``[seqs, items]`` for a
        checkpoint (not turned back into the sender's types only to be packed again)."""
        return [self.spill_to.plain(key) for key in self._spilled]

    def snapshot(self) -> list[Batch]:
        """The queued batches, oldest first (copies of the lists)."""
        return [(list(s), list(i)) for s, i in self._batches]

    async def put(self, seqs: list[Any], items: list[Any]) -> None:
        """Queue one batch, waiting first while the mailbox is full."""
        while self._count >= self.capacity and not (self._abandoned or self._spilling):
            if self.listener is not None:  # a zip reading this box sees its sender blocked (see ``_inbox``)
                self.listener.unpark_all()
            await self._putters.park()
        self.put_nowait(seqs, items)

    @property
    def sender_waiting(self) -> bool:
        """True while a sender waits in :meth:`put` for room here (the box is full and it is blocked on it)."""
        return bool(self._putters)

    def has_room(self) -> bool:
        """True when :meth:`put` would not wait (the mailbox is below capacity, or never waits)."""
        return self._count < self.capacity or self._abandoned or self._spilling

    def put_nowait(self, seqs: list[Any], items: list[Any]) -> None:
        """Queue one batch regardless of capacity (used when restoring a checkpoint)."""
        if self._closed:
            raise RuntimeError(f"mailbox {self.name!r} is closed")
        if not items or self._abandoned:
            return
        if self.spill_to is not None and (self._spilled or (self._spilling and self._count >= self.capacity)):
            self._spilled.append(self.spill_to.put(seqs, items))  # behind everything queued
        else:
            self._batches.append((seqs, items))
        self._count += len(items)
        self.sent += len(items)
        if self._getters:
            self._getters.unpark_all()
        if self.listener is not None:
            self.listener.unpark_all()

    def put_front(self, seqs: list[Any], items: list[Any]) -> None:
        """Queue one batch before every other (a restored batch that was being processed)."""
        if items:
            self._batches.appendleft((seqs, items))
            self._count += len(items)
            self.sent += len(items)

    def spill(self, on: bool) -> None:
        """While on, senders never wait: the receiver cannot read yet and must not block them (it
        waits for a whole product that those very senders may be needed to finish)."""
        self._spilling = on
        if on:
            self._putters.unpark_all()

    def advance(self, seq: Any) -> None:
        """The sender promises that no item numbered *seq* or lower will come any more."""
        self.watermark = seq
        if self.listener is not None:
            self.listener.unpark_all()

    def close(self) -> None:
        """Mark the end of the stream; receivers finish once the queue is empty."""
        self._closed = True
        self._getters.unpark_all()
        if self.listener is not None:
            self.listener.unpark_all()

    def abandon(self) -> None:
        """The receiver stopped reading: drop what is queued and everything sent from now on."""
        self._abandoned = True
        self._batches.clear()
        self._spilled.clear()
        self._count = 0
        self._putters.unpark_all()

    def get_nowait(self, max_items: int = 0) -> Batch | None:
        """Take the oldest batch (at most *max_items* of it when > 0), or None if none is queued."""
        if not self._batches:
            if not self._spilled:
                return None
            key = self._spilled.popleft()  # the next batch comes back from the spill area
            seqs, items = self.spill_to.get(key)
            self._batches.append((seqs, self.restore(items) if self.restore is not None else items))
        if max_items > 0 and len(self._batches[0][1]) > max_items:
            seqs, items = self._batches[0]
            head: Batch = (seqs[:max_items], items[:max_items])
            self._batches[0] = (seqs[max_items:], items[max_items:])
        else:
            head = self._batches.popleft()
            if self.merge and self._batches and max_items > len(head[1]):
                head = self._joined(head, max_items)
        self._count -= len(head[1])
        if self._putters and self._count < self.capacity:
            self._putters.unpark_all()
        return head

    def _joined(self, head: Batch, max_items: int) -> Batch:
        """*head* followed by the batches queued after it, up to *max_items* items (the last one split).

        New lists: a batch's lists may be shared with the sender's other mailboxes.
        """
        seqs, items = list(head[0]), list(head[1])
        batches = self._batches
        while batches and len(items) < max_items:
            s, x = batches[0]
            room = max_items - len(items)
            if len(x) > room:
                batches[0] = (s[room:], x[room:])
                s, x = s[:room], x[:room]
            else:
                batches.popleft()
            seqs += s
            items += x
        return seqs, items

    async def readable(self) -> None:
        """Wait until an item is queued or the stream ended (takes nothing)."""
        while not self._batches and not self._spilled and not self._closed:
            await self._getters.park()

    async def get(self, max_items: int = 0) -> Batch | None:
        """Take the oldest batch, waiting for one; None means the stream ended."""
        while True:
            batch = self.get_nowait(max_items)
            if batch is not None:
                return batch
            if self._closed:
                return None
            await self._getters.park()
