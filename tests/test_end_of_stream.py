"""``end_of_stream`` on class-based tasks: called once after the input ends, its items numbered after the last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af

CTL: dict[str, Any] = {}
SEEN: list[tuple[Any, Any]] = []


@pytest.fixture(autouse=True)
def _clean() -> None:
    CTL.clear()
    SEEN.clear()


class Triples(af.Task):
    """Group numbers in lists of three; the last, shorter group comes at the end of the stream."""

    def __init__(self) -> None:
        self.group: list[int] = []

    def run(self, numbers: int) -> Iterator[list[int]]:
        self.group.append(numbers)
        if len(self.group) == 3:
            yield self.group
            self.group = []

    def end_of_stream(self) -> Iterator[list[int]]:
        CTL["eos_calls"] = CTL.get("eos_calls", 0) + 1
        if self.group:
            yield self.group


class Running(af.Task):
    """Double each number; at the end, the total of the inputs (state kept in a public attribute)."""

    total: int = 0  # an option: set on the instance, not part of its state

    def run(self, numbers: int) -> int:
        self.seen = getattr(self, "seen", 0) + numbers
        if numbers == CTL.get("reach_at"):
            CTL["reached"].set()
        return numbers * 2

    async def end_of_stream(self) -> list[int]:
        CTL["eos_calls"] = CTL.get("eos_calls", 0) + 1
        await trio.sleep(0)
        run = CTL.get("pause")
        if run is not None:  # leave the end's items in the outbox, parked, for a checkpoint to record
            run.pause()
            CTL["eos_ran"].set()
        return [-1, getattr(self, "seen", 0) + self.total]


def source_flow(n: int) -> af.Flow:
    flow = af.Flow("eos")

    @flow.source(batch_size=4)
    async def numbers(n: int = n) -> af.Stream[int]:
        for i in range(n):
            hold = CTL.get("hold")
            if i == CTL.get("hold_at") and hold is not None:
                await hold.wait()
            yield i

    return flow


def test_a_generator_end_of_stream_yields_after_the_last_item_as_children_of_a_virtual_item() -> None:
    flow = source_flow(8)
    flow.add(Triples)

    @flow.sink
    def record(triples: list[int], seq: af.Seq) -> None:
        SEEN.append((seq, triples))

    @flow.collector(init=[])
    def groups(acc: list[list[int]], triples: list[int]) -> list[list[int]]:
        return [*acc, triples]

    result = af.run(flow)
    assert result["groups"] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert SEEN == [((2, 0), [0, 1, 2]), ((5, 0), [3, 4, 5]), ((8, 0), [6, 7])]  # 8: after the last input, 7
    assert CTL["eos_calls"] == 1


def test_a_function_end_of_stream_returns_items_numbered_after_the_last_input() -> None:
    flow = source_flow(5)
    flow.add(Running, name="running")

    @flow.sink
    def record(running: int, seq: af.Seq) -> None:
        SEEN.append((seq, running))

    result = af.run(flow, {"running": {"total": 100}})
    assert SEEN == [(0, 0), (1, 2), (2, 4), (3, 6), (4, 8), (5, -1), (6, 110)]
    assert result.summary.tasks["running"].items_out == 7


def test_an_empty_input_still_ends_the_stream() -> None:
    flow = source_flow(0)
    flow.add(Running, name="running")

    @flow.sink
    def record(running: int, seq: af.Seq) -> None:
        SEEN.append((seq, running))

    af.run(flow)
    assert SEEN == [(0, -1), (1, 0)]


async def test_an_interrupt_before_the_end_loses_nothing(tmp_path: Path) -> None:
    """The instance's public attributes are checkpointed: after a resume the end sees every item once."""
    CTL.update(hold=trio.Event(), hold_at=50, reach_at=49, reached=trio.Event())
    flow = source_flow(100)
    flow.add(Running, name="running")

    @flow.collector(init=[])
    def out(acc: list[int], running: int) -> list[int]:
        return [*acc, running]

    store = tmp_path / "s"
    async with af.open_run(flow, store=store) as run:
        await CTL["reached"].wait()  # every item before the hold is through `running`
        assert await run.checkpoint_now()
        run.cancel()
    assert "eos_calls" not in CTL
    CTL["hold"] = None
    result = await af.run_async(flow, store=store, resume=True)
    assert result["out"] == [i * 2 for i in range(100)] + [-1, sum(range(100))]
    assert CTL["eos_calls"] == 1


async def test_a_checkpoint_after_the_end_ran_is_not_repeated_on_resume(tmp_path: Path) -> None:
    CTL["eos_ran"] = trio.Event()
    flow = source_flow(20)
    flow.add(Running, name="running")

    @flow.collector(init=[])
    def out(acc: list[int], running: int) -> list[int]:
        return [*acc, running]

    store = tmp_path / "s"
    async with af.open_run(flow, store=store) as run:
        CTL["pause"] = run
        await CTL["eos_ran"].wait()
        assert await run.checkpoint_now()  # `running` waits to send the end's items: they are in its outbox
        run.cancel()
    assert CTL["eos_calls"] == 1
    CTL["pause"] = None
    result = await af.run_async(flow, store=store, resume=True)
    assert result["out"] == [i * 2 for i in range(20)] + [-1, sum(range(20))]
    assert CTL["eos_calls"] == 1  # the resumed run re-sent them; it did not call end_of_stream again


def test_end_of_stream_is_checked_at_definition() -> None:
    class OnASink(af.Task):
        kind = "sink"

        def run(self, numbers: int) -> None: ...

        def end_of_stream(self) -> None: ...

    class WithParams(af.Task):
        def run(self, numbers: int) -> int:
            return numbers

        def end_of_stream(self, extra: int) -> None: ...

    flow = source_flow(1)
    with pytest.raises(af.DefinitionError, match="end_of_stream is for tasks"):
        flow.add(OnASink)
    with pytest.raises(af.DefinitionError, match="taking only self"):
        flow.add(WithParams)


def test_a_failing_end_of_stream_fails_the_run_naming_the_task() -> None:
    class Failing(af.Task):
        def run(self, numbers: int) -> int:
            return numbers

        def end_of_stream(self) -> list[int]:
            raise RuntimeError("no end")

    flow = source_flow(3)
    flow.add(Failing)
    with pytest.raises(af.TaskFailed, match="no end") as info:
        af.run(flow)
    assert "failing" in str(info.value)
