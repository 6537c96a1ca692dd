"""Reading several mailboxes as one: zips by sequence number, and per-group bookkeeping.

A task with two or more streaming inputs receives tuples of items that share a sequence number.
When every input stream is in sequence order (the default) this is a merge join: an item whose
partner was skipped upstream is dropped as soon as the other stream has moved past it — or has
promised, through its mailbox's watermark, that the partner will never come — so memory stays
bounded. Unordered inputs are matched through a dict and kept until matched.

Each input is drained up to a limit while matching goes on. When no match can be made, an input
waits on a lagging one and the others queue items, the zip is *stalled*. The lagging side may only
be able to move once the blocked senders do (a generator that needs a whole product first, a
per-collector's group), so a stalled zip whose queued inputs are all full with their senders
blocked on them is *stuck* and **spills** at once — the local rule, decided by the zip alone: it
takes everything queued for the other inputs, so their senders are never blocked for good. A sender
about to wait on a full mailbox wakes the zip reading it, so the zip sees that moment. Where a
sender is blocked elsewhere (on another reader's full mailbox), the supervisor's fallback spills a
stalled zip once the whole run stands still. Generator tasks promise watermarks too
(:func:`watermark_of`), so a generator that yields nothing for an item lets the zip drop the other
side's items for it rather than stall on them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from .._base import ItemFailure, _fmt_seq
from .._base import _events as ev
from ._mailbox import Batch, Mailbox

#: How many of a zip's unmatched items are named by their seqs in its ``ZipUnmatched`` event.
FIRST_SEQS = 5

#: The last part of a generator task's watermark: above every child number (see :func:`watermark_of`).
_ALL_CHILDREN = float("inf")


def watermark_of(last_in: Any, generator: bool) -> Any:
    """The watermark a task may promise once it sent every output of its input items up to *last_in*.

    A plain task's outputs carry their inputs' numbers, so that is *last_in* itself; a generator
    task's carry a child part (``(seq, j)``), so it promises every child of *last_in* — which lets a
    zip drop the other side's items when a generator yields nothing for them, instead of stalling.
    """
    if not generator:
        return last_in
    return (last_in, _ALL_CHILDREN) if type(last_in) is int else (*last_in, _ALL_CHILDREN)


def unmatched_reporter(bus: ev.EventBus, run_id: str, task: str) -> Callable[[ZipInbox], None]:
    """What a zip calls at its end: one ``ZipUnmatched`` event per input that had unmatched items."""

    def report(zipped: ZipInbox) -> None:
        for k, count in enumerate(zipped.unmatched):
            if count:
                bus.publish(ev.ZipUnmatched(run_id=run_id, task=task, port=zipped.port(k), count=count,
                                            first_seqs=tuple(zipped.first_unmatched[k])))

    return report


class ZipInbox:
    """Presents several :class:`Mailbox` objects as one source of zipped batches."""

    def __init__(
        self, boxes: list[Mailbox], ordered: bool, batch_size: int,
        on_stall: Callable[[ZipInbox], None] | None = None, *,
        strict: bool = False, on_end: Callable[[ZipInbox], None] | None = None,
    ) -> None:
        self.boxes = boxes
        #: ``zip="strict"``: an item without a partner fails the task (``ValueError`` naming port and seq).
        self.strict = strict
        #: Called once when the zip has read every input to its end (it reports :attr:`unmatched`).
        self._on_end = on_end
        #: Items of each input that found no partner (dropped), and the first few of their seqs.
        self.unmatched = [0 for _ in boxes]
        self.first_unmatched: list[list[Any]] = [[] for _ in boxes]
        #: Set once no further match can come: what still arrives is counted and dropped.
        self._draining = False
        self.ordered = ordered
        self.batch_size = batch_size
        self.lot = trio.lowlevel.ParkingLot()
        for b in boxes:
            b.listener = self.lot
        self._limit = max(b.capacity for b in boxes) * 4
        self._bufs: list[deque[tuple[Any, Any]]] = [deque() for _ in boxes]
        self._maps: list[dict[Any, Any]] = [{} for _ in boxes]
        self._finished = False
        self._on_stall = on_stall
        #: Set by :meth:`spill`: drain without limit until the lagging input catches up.
        self._spilling = False

    def _drain(self) -> int:
        """Take queued batches into the buffers (up to the limit unless spilling); returns how many items."""
        taken = 0
        for box, buf, pending in zip(self.boxes, self._bufs, self._maps, strict=True):
            while self._spilling or len(buf) + len(pending) < self._limit:
                b = box.get_nowait()
                if b is None:
                    break
                buf.extend(zip(b[0], b[1], strict=True))
                taken += len(b[1])
        return taken

    def _match_ordered(self, limit: int) -> Batch:
        seqs: list[Any] = []
        items: list[Any] = []
        bufs = self._bufs
        while all(bufs) and len(items) < limit:
            heads = [b[0][0] for b in bufs]
            top = max(heads)
            if all(h == top for h in heads):
                seqs.append(top)
                items.append(tuple(b.popleft()[1] for b in bufs))
            else:
                for k, b in enumerate(bufs):
                    while b and b[0][0] < top:
                        self._unmatched(k, b.popleft()[0])
        self._trim()
        return seqs, items

    def _trim(self) -> None:
        """Drop items whose partner an empty input promised will never come (its watermark)."""
        bufs = self._bufs
        for j, (box, buf) in enumerate(zip(self.boxes, bufs, strict=True)):
            mark = box.watermark
            if buf or mark is None or len(box):
                continue
            for k, other in enumerate(bufs):
                if k != j:
                    while other and other[0][0] <= mark:
                        self._unmatched(k, other.popleft()[0])

    def _match_unordered(self) -> Batch:
        seqs: list[Any] = []
        items: list[Any] = []
        maps = self._maps
        for buf, m in zip(self._bufs, maps, strict=True):
            while buf:
                s, x = buf.popleft()
                m[s] = x
                if all(s in other for other in maps):
                    seqs.append(s)
                    items.append(tuple(other.pop(s) for other in maps))
        return seqs, items

    def _exhausted(self) -> bool:
        # No further match is possible once one input ended and its buffer is empty.
        return any(box.done and not buf and (self.ordered or not m)
                   for box, buf, m in zip(self.boxes, self._bufs, self._maps, strict=True))

    def get_nowait(self, max_items: int = 0) -> Batch | None:
        if self._finished:
            return None
        if self._draining:
            self._drop_queued()
            return None
        limit = min(max_items, self.batch_size) if max_items > 0 else self.batch_size
        while True:  # items without a partner are dropped as they are matched: drain again while that frees room
            taken = self._drain()
            batch = self._match_ordered(limit) if self.ordered else self._match_unordered()
            if batch[1] or not taken:
                break
        if self._spilling and batch[1] and all(len(b) < self._limit for b in self._bufs):
            self._spilling = False  # the lagging input caught up: back to bounded draining
        return batch if batch[1] else None

    def ended(self) -> bool:
        """After :meth:`get_nowait` returned None: True once every input ended.

        Once no further match can come (an input ended and its buffer is empty), the zip keeps
        reading — what comes is unmatched: counted and dropped (``zip="strict"``: the task fails) —
        so that nothing is lost without a count and no sender waits on it.
        """
        if self._finished:
            return True
        if not self._draining and (self._exhausted() or all(b.done for b in self.boxes)):
            self._draining = True
            self._drop_queued()
        if self._draining and all(b.done for b in self.boxes):
            self._finished = True
            if self._on_end is not None:
                self._on_end(self)
        return self._finished

    def _drop_queued(self) -> None:
        """No further match can come: count and drop everything buffered or queued."""
        for k, (box, buf, pending) in enumerate(zip(self.boxes, self._bufs, self._maps, strict=True)):
            for s, _ in buf:
                self._unmatched(k, s)
            for s in pending:
                self._unmatched(k, s)
            buf.clear()
            pending.clear()
            while (b := box.get_nowait()) is not None:
                for s in b[0]:
                    self._unmatched(k, s)

    def _unmatched(self, k: int, seq: Any) -> None:
        """Item *seq* of input *k* has no partner: count it (``zip="strict"``: fail on it)."""
        if self.strict:
            raise ItemFailure(seq, ValueError(
                f"zip='strict': item seq {_fmt_seq(seq)} on port {self.port(k)!r} has no partner on "
                f"{', '.join(repr(self.port(j)) for j in range(len(self.boxes)) if j != k)}"
            ))
        self.unmatched[k] += 1
        first = self.first_unmatched[k]
        if len(first) < FIRST_SEQS:
            first.append(seq)

    def port(self, k: int) -> str:
        """The name of input *k* (its mailbox is named ``task.port``)."""
        return self.boxes[k].name.rpartition(".")[2]

    async def get(self, max_items: int = 0) -> Batch | None:
        while True:
            batch = self.get_nowait(max_items)
            if batch is not None:
                return batch
            if self.ended():
                return None
            if self.stalled():
                if self.stuck():  # the local rule: spill now, and match again
                    self.spill()
                    continue
                if self._on_stall is not None:
                    self._on_stall(self)
            await self.lot.park()

    def spill(self) -> None:
        """Take everything queued for every input, whatever the limit, until the lagging input catches up."""
        self._spilling = True
        self._drain()
        self.lot.unpark_all()

    def stalled(self) -> bool:
        """No match can be made and an input waits for a lagging one while others queue items."""
        pairs = zip(self.boxes, self._bufs, strict=True)
        waiting = any(not buf and not len(box) and not box.done for box, buf in pairs)
        return waiting and any(len(box) for box in self.boxes)

    def stuck(self) -> bool:
        """Stalled, and every input with queued items is full with its sender blocked on it: nothing
        can move until this zip takes more than its limit (the lagging input's items can only come
        once those senders go on)."""
        queued = [box for box in self.boxes if len(box)]
        return bool(queued) and all(box.sender_waiting and not box.has_room() for box in queued)

    def pending(self, box: Mailbox) -> list[Batch]:
        """Items taken from *box* but not matched yet, as one batch (for a checkpoint)."""
        k = self.boxes.index(box)
        items = list(self._bufs[k]) + list(self._maps[k].items())
        return [([s for s, _ in items], [x for _, x in items])] if items else []

    def __len__(self) -> int:
        return sum(len(b) for b in self._bufs)

    @property
    def done(self) -> bool:
        return self._finished
