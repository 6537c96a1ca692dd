"""Task classes on executors: one that keeps state in its instance is refused, never silently reset.

On a thread, process or Dask executor every batch runs on a new instance in a worker, so state kept
in ``self`` between calls would start over with each batch (``[1, 1, 1, 2, 1, ...]`` where inline
gives ``[1, 2, 3, ...]``). Such a class is refused when the task is defined or the run binds its
executors; a change the class's source does not show fails the run at its first batch.

Also here: an executor task's inbox joins queued batches, so a round trip carries a full batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import actorflow as af
from actorflow import events as ev
from actorflow._define._classstate import stateful
from actorflow._kernel._executors import TaskStateError

# -- task classes: module level, so worker processes can import them ------------------------------


class Counter(af.Task):
    """Numbers its items: state kept between calls."""

    def __init__(self) -> None:
        self.count = 0

    def run(self, numbers: int) -> int:
        self.count += 1
        return self.count


class Seen(af.Task):
    """Collects what it saw in place (no assignment to self at all)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def run(self, numbers: int) -> int:
        self.seen.append(numbers)
        return len(self.seen)


class Tally(af.Task):
    """Changes a part of an attribute in a helper method."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def run(self, numbers: int) -> int:
        return self._bump(numbers % 3)

    def _bump(self, key: int) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


def _sneak(obj: Any) -> None:
    setattr(obj, "calls", getattr(obj, "calls", 0) + 1)  # noqa: B010  # invisible in the class's source


class Sneaky(af.Task):
    """Changes its state through a function elsewhere: only the run-time check can see it."""

    def run(self, numbers: int) -> int:
        _sneak(self)
        return numbers


class Scaler(af.Task):
    """Stateless: options and a resource made in __init__ are fine on any executor."""

    factor: int = 3

    def __init__(self) -> None:
        self.table = {i: i * i for i in range(4)}

    def run(self, numbers: int) -> int:
        local = self.table.get(numbers, numbers)  # reads only
        return local * self.factor


# -- helpers -------------------------------------------------------------------------------------


def flow_of(cls: type[af.Task], executor: Any = None, n: int = 30) -> af.Flow:
    flow = af.Flow("classes")

    @flow.source(batch_size=4)
    def numbers(n: int = n) -> Iterator[int]:
        yield from range(n)

    if executor is not None:
        cls.executor = executor  # type: ignore[misc]
    try:
        flow.add(cls)
    finally:
        if executor is not None:
            del cls.executor  # type: ignore[misc]
    return flow


# -- tests ---------------------------------------------------------------------------------------


def test_inline_a_stateful_class_keeps_one_instance() -> None:
    assert af.run(flow_of(Counter))["counter"] == list(range(1, 31))


@pytest.mark.parametrize(("cls", "attr", "method"), [
    (Counter, "count", "run"), (Seen, "seen", "run"), (Tally, "counts", "_bump"),
])
@pytest.mark.parametrize("executor", ["thread", "process", "dask"])
def test_a_stateful_class_is_refused_at_definition_on_every_executor(
    cls: type[af.Task], attr: str, method: str, executor: str
) -> None:
    chosen = af.DaskExecutor("tcp://127.0.0.1:1") if executor == "dask" else executor  # never contacted
    with pytest.raises(af.DefinitionError) as info:
        flow_of(cls, chosen)
    text = str(info.value)
    assert f"task class {cls.__qualname__} keeps state in its instance between calls" in text
    assert f"({method}() changes self.{attr})" in text
    assert "would reset between batches" in text and "run it inline" in text


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_stateful_class_is_refused_when_the_run_picks_an_executor(executor: str) -> None:
    flow = flow_of(Counter)
    with pytest.raises(af.InvocationError, match=r"task 'counter', executor '\w+': task class Counter keeps state"):
        af.run(flow, executors={"counter": executor})


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_state_the_source_does_not_show_fails_the_run_at_its_first_batch(executor: str) -> None:
    assert stateful(Sneaky) is None  # nothing to see in its source
    with pytest.raises(af.TaskFailed) as info:
        af.run(flow_of(Sneaky, executor))
    assert info.value.task == "sneaky"
    cause = info.value.__cause__
    assert isinstance(cause, TaskStateError)
    assert "task class Sneaky changed self.calls while running a batch on an executor" in str(cause)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_stateless_class_runs_on_executors_like_inline(executor: str) -> None:
    expected = [(i * i if i < 4 else i) * 3 for i in range(30)]
    assert af.run(flow_of(Scaler))["scaler"] == expected
    assert af.run(flow_of(Scaler, executor))["scaler"] == expected


def test_an_executor_tasks_inbox_joins_queued_batches_up_to_the_size_asked_for() -> None:
    from actorflow._kernel._mailbox import Mailbox

    box = Mailbox("crunch.numbers", capacity=100)
    box.merge = True
    sent = [([0], ["a"]), ([1, 2], ["b", "c"]), ([3, 4, 5, 6], ["d", "e", "f", "g"])]
    for seqs, items in sent:
        box.put_nowait(seqs, items)
    assert box.get_nowait(5) == ([0, 1, 2, 3, 4], ["a", "b", "c", "d", "e"])  # one round trip carries five
    assert box.get_nowait(5) == ([5, 6], ["f", "g"])
    assert len(box) == 0 and sent[2] == ([3, 4, 5, 6], ["d", "e", "f", "g"])  # the sender's lists are untouched
    plain = Mailbox("inline.numbers", capacity=100)
    for seqs, items in sent:
        plain.put_nowait(seqs, items)
    assert plain.get_nowait(5) == ([0], ["a"])  # inline tasks take one batch at a time, as before


async def test_a_flow_on_an_executor_gives_the_same_result_with_joined_batches() -> None:
    flow = af.Flow("joined")

    @flow.source(batch_size=3)
    def numbers(n: int = 200) -> Iterator[int]:
        yield from range(n)

    flow.task(executor=af.ThreadExecutor(threads=2), batch_size=50)(double)
    assert (await af.run_async(flow))["double"] == [2 * i for i in range(200)]


def double(numbers: int) -> int:
    return 2 * numbers


def test_round_trips_size_batches_by_the_work_they_carry() -> None:
    from actorflow._kernel._loop import BatchSizer
    from actorflow._kernel._remote import GROWTH, RTT_FACTOR, SMOOTHING, RoundTrips

    sizer = BatchSizer(0.01, 1000, fixed=True)
    sizing = RoundTrips(sizer, 0.01, warmup=1)
    assert sizer.size == 1  # the first batch is one item: a slow function never holds a whole batch_size
    sizing.observe(1, 0.001, 2.0)  # the first round trip started a worker: not counted
    assert sizing.cost == 0.0 and sizer.size == GROWTH  # 10 ms of 1 ms items asked for; growth caps it
    sizing.observe(8, 0.8, 0.802)  # slow items: 100 ms each
    assert sizing.cost == pytest.approx(SMOOTHING * 0.002) and sizer.size == 1
    sizing.observe(1, 0.00001, 0.1)  # cheap items waiting for busy workers: bigger batches cost nothing
    assert sizer.size == GROWTH
    for _ in range(3):
        sizing.observe(sizer.size, sizer.size * 0.00001, 0.1)
    assert sizer.size == 1000  # ... up to the task's batch_size
    assert sizing.cost * RTT_FACTOR > 0.01


def slow(numbers: int) -> int:
    time.sleep(0.001)
    return numbers


async def test_slow_items_on_an_executor_travel_in_small_batches() -> None:
    flow = af.Flow("slow")

    @flow.source
    def numbers(n: int = 400) -> Iterator[int]:
        yield from range(n)

    flow.task(executor=af.ProcessExecutor(workers=1), batch_size=1000, concurrency=1)(slow)
    async with af.open_run(flow) as run:
        events = run.events()
        assert (await run.result())["slow"] == list(range(400))
    sizes = [e.items_in async for e in events if isinstance(e, ev.BatchProcessed) and e.task == "slow"]
    assert sum(sizes) == 400
    assert max(sizes) <= 50  # about 10 ms of work a round trip, not all 400 items queued (0.4 s)
