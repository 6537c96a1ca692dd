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

from ._actor import EXITS
from ._codec import pack
from ._errors import ItemFailure
from ._loop import ItemLoop

if TYPE_CHECKING:
    from ._actor_kinds import TaskActor
    from ._inbox import ZipInbox
    from ._mailbox import Mailbox


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


async def keyed_workers(actor: TaskActor, inbox: Mailbox | ZipInbox) -> None:
    """The task's loop with ``key=``: each batch split into key lanes that run concurrently."""
    spec = actor.spec
    key = spec.settings.key
    assert key is not None and actor.handler is not None
    n = spec.concurrency
    loops = [ItemLoop(actor, actor.handler) for _ in range(n)]
    take = actor.take if actor.limiter is None else actor.take_throttled
    while (batch := await take(inbox)) is not None:
        seqs, items = batch
        out: list[Any] = [None] * len(items)
        with actor.working(batch):
            try:
                parts = lanes(items, key, n)
                async with trio.open_nursery() as nursery:
                    for loop, idx in zip(loops, parts, strict=False):
                        nursery.start_soon(_lane, loop, idx, seqs, items, out)
            except BaseExceptionGroup as group:
                _raise_first(actor, group, seqs, items)
            except Exception as exc:  # the key function raised
                raise ItemFailure(seqs[0] if seqs else None, exc) from exc
            sent = actor.out_check.batch(seqs, out)
        actor.items_in += len(items)
        actor.batch_event(len(items), len(sent[1]))
        await actor.send(*sent)
        if spec.ordered and seqs:
            actor.advance(seqs[-1])


async def _lane(loop: ItemLoop, idx: list[int], seqs: list[Any], items: list[Any], out: list[Any]) -> None:
    results = await loop.map([seqs[i] for i in idx], [items[i] for i in idx])
    for i, r in zip(idx, results, strict=True):
        out[i] = r


def _raise_first(actor: TaskActor, group: BaseExceptionGroup[Any], seqs: list[Any], items: list[Any]) -> None:
    """A lane failed: an exit puts the whole batch back (its outputs are computed again after a
    resume); otherwise the item's failure (or the first error) fails the run."""
    leaves = list(_leaves(group))
    for exc in leaves:
        if isinstance(exc, EXITS):
            actor.put_back(seqs, items, exc)
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
