"""The batch cycle (``_cycle``) driven with a fake logic: counting, the checkpoint gate, the exit
put-back, the worker pool's ordering and failure forwarding.

The actor is a real one from a real run graph (its mailboxes, supervisor and event bus); only its
kind's logic is replaced by :class:`FakeLogic`, which records what the cycle asks of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

import actorflow as af
import actorflow._base._events as ev
from actorflow._kernel._actor import Actor
from actorflow._kernel._cycle import NO_OUTPUT, run_cycle, step
from actorflow._kernel._runtime import Runtime


class FakeLogic:
    """Doubles each item; raises *raise_on* (an exception) at the item equal to *at*."""

    def __init__(self, pooled: bool = False, at: int | None = None, raise_on: BaseException | None = None) -> None:
        self.pooled = pooled
        self.at = at
        self.raise_on = raise_on
        self.batches: list[list[Any]] = []
        self.exits: list[tuple[list[Any], BaseException]] = []
        self.sent_seqs: list[Any] = []
        self.eof = 0
        self.delays: dict[int, float] = {}

    async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> tuple[list[Any], list[Any]]:
        self.batches.append(list(items))
        if items and items[0] in self.delays:
            await trio.sleep(self.delays[items[0]])
        if self.at is not None and self.at in items and self.raise_on is not None:
            self.position = items.index(self.at)
            raise self.raise_on
        return list(seqs), [x * 2 for x in items]

    def on_exit(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int) -> int:
        self.exits.append((list(seqs), exc))
        return self.position

    def sent(self, in_seqs: list[Any]) -> None:
        self.sent_seqs.extend(in_seqs)

    async def on_eof(self) -> None:
        self.eof += 1


def make_runtime(concurrency: int = 1) -> tuple[Runtime, Actor]:
    flow = af.Flow("cycle")

    @flow.source
    def numbers() -> Iterator[int]:
        yield from range(10)

    @flow.task(concurrency=concurrency)
    def double(numbers: int) -> int:
        return numbers * 2

    @flow.collector(init=[])
    def seen(acc: list[int], double: int) -> list[int]:
        return [*acc, double]

    runtime = Runtime(flow.bind())
    return runtime, runtime.actors["double"]


def feed(actor: Actor, batches: list[list[int]]) -> None:
    box = actor.inboxes[0]
    for items in batches:
        box.put_nowait(list(items), list(items))
    box.close()


def drained(actor: Actor) -> list[int]:
    box = actor.outs[0]
    out: list[int] = []
    while (batch := box.get_nowait()) is not None:
        out.extend(batch[1])
    return out


async def test_the_cycle_counts_sends_and_ends_once() -> None:
    runtime, actor = make_runtime()
    logic = FakeLogic()
    feed(actor, [[0, 1, 2], [3, 4]])
    stream = runtime.bus.subscribe()
    await run_cycle(actor, logic, actor.inbox())
    events = []
    while (e := stream.get_nowait()) is not None:
        events.append(e)
    assert drained(actor) == [0, 2, 4, 6, 8]
    assert actor.items_in == 5 and actor.items_out == 5
    assert logic.eof == 1
    assert logic.sent_seqs == [0, 1, 2, 3, 4]
    batches = [e for e in events if isinstance(e, ev.BatchProcessed)]
    assert sum(e.items_in for e in batches) == 5 and sum(e.items_out for e in batches) == 5


async def test_an_exit_uncounts_what_the_logic_did_not_finish() -> None:
    runtime, actor = make_runtime()
    logic = FakeLogic(at=4, raise_on=KeyboardInterrupt())
    feed(actor, [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(KeyboardInterrupt):
        await run_cycle(actor, logic, actor.inbox())
    assert [s for s, _ in logic.exits] == [[3, 4, 5]]
    assert actor.items_in == 3 + 1  # the first batch, and item 3 of the second (the logic said 1 done)
    assert logic.eof == 0  # the input did not end: no end of stream
    assert runtime.supervisor.busy == 0  # the exit left the busy count balanced


async def test_a_batch_waits_at_the_checkpoint_gate() -> None:
    runtime, actor = make_runtime()
    logic = FakeLogic()
    feed(actor, [[0, 1]])
    sup = runtime.supervisor
    sup._pending = True  # what Supervisor.checkpoint sets while it waits for every actor to park
    sup._open = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_cycle, actor, logic, actor.inbox())
        await trio.testing.wait_all_tasks_blocked()
        assert logic.batches == []  # held at the gate, holding no batch
        assert sup.busy == 0
        sup._pending = False
        sup._open.set()
    assert [x for b in logic.batches for x in b] == [0, 1]


async def test_step_is_busy_for_the_supervisor_while_the_logic_runs() -> None:
    runtime, actor = make_runtime()
    seen_busy: list[int] = []

    class Watching(FakeLogic):
        async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> Any:
            seen_busy.append(runtime.supervisor.busy)
            return NO_OUTPUT

    out = await step(actor, Watching(), ([0, 1], [0, 1]), flush=True)
    assert out == NO_OUTPUT
    assert seen_busy == [1] and runtime.supervisor.busy == 0


async def test_the_worker_pool_sends_in_input_order_whatever_finishes_first() -> None:
    _runtime, actor = make_runtime(concurrency=3)
    logic = FakeLogic(pooled=True)
    logic.delays = {0: 0.03, 2: 0.01}  # the first batch finishes last
    box = actor.inboxes[0]
    for start in range(0, 6, 2):
        box.put_nowait([start, start + 1], [start, start + 1])
    box.close()
    actor.sizer.size = 2
    await run_cycle(actor, logic, actor.inbox())
    assert drained(actor) == [0, 2, 4, 6, 8, 10]
    assert logic.sent_seqs == [0, 1, 2, 3, 4, 5]
    assert actor.items_in == 6


async def test_a_pool_worker_failure_fails_the_actor_once() -> None:
    runtime, actor = make_runtime(concurrency=2)
    logic = FakeLogic(pooled=True, at=3, raise_on=ValueError("boom"))
    feed(actor, [[0, 1], [2, 3], [4, 5]])
    actor.sizer.size = 2
    with trio.CancelScope() as scope:
        runtime._scope = scope
        await run_cycle(actor, logic, actor.inbox())
    assert isinstance(runtime.error, af.TaskFailed)
    assert runtime.error.task == "double"
    assert actor.status == "failed"
