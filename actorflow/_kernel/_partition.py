"""Key-partitioned concurrency: ``@flow.task(key=fn, concurrency=N)``.

Every item of one key goes to the same lane (a worker) and the lanes of a batch run concurrently,
so per-key order of processing and of output holds while keys run in parallel (Flink's ``keyBy``,
bytewax's partitioning). A batch is taken at the checkpoint gate and split by key into *N* lanes
(:func:`lanes`: the same key always gives the same lane, in every process, since keys are hashed
from their msgpack bytes, not with Python's per-process ``hash``); each lane calls the task on its
items one after the other; once every lane is done the outputs go downstream in input order. The
whole batch is one unit of work for a checkpoint, which therefore never cuts a batch in half.

A slow key holds its batch back (the next batch starts once every lane finished), the price of
keeping per-key order without per-key queues. Executors run whole batches elsewhere, so ``key=``
with an executor is refused at definition (``check_task_key`` in ``_windows``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .._base import ItemFailure
from .._storage import pack
from ._loop import EXITS, ItemLoop
from ._mailbox import Batch

if TYPE_CHECKING:
    from ._actor_kinds import TaskActor


def lane_of(key: Any, n: int) -> int:
    """The lane (0 .. n-1) of *key*: a CRC-32 of its msgpack bytes (stable across processes)."""
    try:
        data = pack(key)
    except (TypeError, ValueError, OverflowError):
        data = repr(key).encode()
    return zlib.crc32(data) % n


def lanes(items: list[Any], key: Callable[[Any], Any], n: int) -> list[list[int]]:
    """The indexes of *items* per lane (empty lanes left out), each in input order."""
    memo: dict[Any, int] = {}
    out: list[list[int]] = [[] for _ in range(n)]
    for i, x in enumerate(items):
        k = key(x)
        try:
            lane = memo[k]
        except KeyError:
            lane = memo[k] = lane_of(k, n)
        except TypeError:  # an unhashable key
            lane = lane_of(k, n)
        out[lane].append(i)
    return [idx for idx in out if idx]


class KeyedLogic:
    """The batch-cycle logic of a task with ``key=`` and ``concurrency`` > 1: one batch at a time
    (``pooled`` False), its key lanes run concurrently inside ``on_batch``; the rest is the task's."""

    pooled = False

    def __init__(self, task: TaskActor) -> None:
        self.task = task
        key = task.spec.settings.key
        assert key is not None and task.handler is not None
        self.key: Callable[[Any], Any] = key
        self.loops = [ItemLoop(task, task.handler) for _ in range(task.spec.concurrency)]

    async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> Batch:
        task = self.task
        if task.eos is not None and seqs:
            last = seqs[-1]
            if task.last_in is None or last > task.last_in:
                task.last_in = last
        out: list[Any] = [None] * len(items)
        try:
            parts = lanes(items, self.key, len(self.loops))
            async with trio.open_nursery() as nursery:
                for loop, idx in zip(self.loops, parts, strict=False):
                    nursery.start_soon(_lane, loop, idx, seqs, items, out)
        except BaseExceptionGroup as group:
            _raise_first(group)
        except Exception as exc:  # the key function raised
            raise ItemFailure(seqs[0] if seqs else None, exc) from exc
        return task.out_check.batch(seqs, out)

    def on_exit(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int) -> int:
        """An exit in a lane: the whole batch goes back (its outputs are computed again after a resume)."""
        self.task.put_back(seqs, items, exc, order)
        self.task.exit_seq = seqs[0] if seqs else None
        return 0

    def sent(self, in_seqs: list[Any]) -> None:
        self.task.sent(in_seqs)

    async def on_eof(self) -> None:
        await self.task.on_eof()


def keyed_logic(task: TaskActor) -> KeyedLogic | None:
    """The key-lane logic of *task* (None: it has no ``key=``, or one worker keeps per-key order as is)."""
    if task.spec.settings.key is None or task.spec.concurrency == 1:
        return None
    return KeyedLogic(task)


async def _lane(loop: ItemLoop, idx: list[int], seqs: list[Any], items: list[Any], out: list[Any]) -> None:
    results = await loop.map([seqs[i] for i in idx], [items[i] for i in idx])
    for i, r in zip(idx, results, strict=True):
        out[i] = r


def _raise_first(group: BaseExceptionGroup[Any]) -> None:
    """A lane failed: an exit first (the cycle puts the batch back), then an item's failure, else the first error."""
    leaves = _leaves(group)
    for exc in leaves:
        if isinstance(exc, EXITS):
            raise exc
    for exc in leaves:
        if isinstance(exc, ItemFailure):
            raise exc
    raise leaves[0]


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
