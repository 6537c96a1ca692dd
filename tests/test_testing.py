"""af.testing: mock clock runs, doubles, injected faults, cut-off runs, damaged stores, recorded events."""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import actorflow as af
from actorflow.testing import InjectedFault


def numbers_flow(n: int = 10) -> af.Flow:
    flow = af.Flow("nums")

    @flow.source
    def numbers(n: int = n) -> af.Stream[int]:
        yield from range(n)

    @flow.task(on_error=af.Retry(attempts=3, backoff=30.0, max_backoff=100.0, jitter=0.0))
    async def square(numbers: int, offset: int = 0) -> int:
        return numbers * numbers + offset

    @flow.collector(init=0)
    def total(acc: int, square: int) -> int:
        return acc + square

    return flow


# -- run_with_clock -------------------------------------------------------------------------------


def test_run_with_clock_passes_backoff_in_no_real_time() -> None:
    flow = numbers_flow()
    flaky = af.testing.double(flow, "square", af.testing.fail_item(flow.tasks["square"].fn, 4, times=2))
    clock = trio.testing.MockClock(autojump_threshold=0)
    seen: list[af.events.Event] = []
    started = time.monotonic()
    result = af.testing.run_with_clock(flaky, {"square": {"offset": 1}}, clock=clock, events=seen)
    assert time.monotonic() - started < 20  # 90 s of backoff did not really pass
    assert result["total"] == sum(i * i + 1 for i in range(10))
    retries = [e for e in seen if isinstance(e, af.events.ItemRetried)]
    assert [(e.seq, e.attempt, e.delay) for e in retries] == [(4, 2, 30.0), (4, 3, 60.0)]
    assert clock.current_time() >= 90.0
    assert seen[0].kind == "run_started" and seen[-1].kind == "run_finished"


def test_run_with_clock_records_events_of_a_failed_run_too() -> None:
    flow = numbers_flow()
    broken = af.testing.double(flow, "square", af.testing.fail_item(flow.tasks["square"].fn, 2, times=3))
    seen: list[af.events.Event] = []
    with pytest.raises(af.TaskFailed) as caught:
        af.testing.run_with_clock(broken, events=seen)
    assert caught.value.task == "square" and caught.value.seq == 2
    assert isinstance(caught.value.__cause__, InjectedFault)
    assert "injected fault in" in str(caught.value.__cause__)
    assert [e.kind for e in seen].count("item_retried") == 2
    assert any(isinstance(e, af.events.TaskErrored) and e.seq == 2 for e in seen)


def test_run_with_clock_checkpoints_on_virtual_time(tmp_path: Path) -> None:
    flow = af.Flow("ticks")

    @flow.source(batch_size=1)
    async def ticks(n: int = 20) -> AsyncIterator[int]:
        for i in range(n):
            await trio.sleep(1.0)  # 20 virtual seconds
            yield i

    @flow.collector(init=0)
    def total(acc: int, ticks: int) -> int:
        return acc + ticks

    clock = trio.testing.MockClock(autojump_threshold=0)
    seen: list[af.events.Event] = []
    result = af.testing.run_with_clock(flow, clock=clock, events=seen, store=tmp_path / "s", checkpoint_every=5.0)
    assert result["total"] == sum(range(20))
    periodic = [e for e in seen if isinstance(e, af.events.CheckpointWritten) and not e.final]
    assert 2 <= len(periodic) <= 4 and clock.current_time() >= 20.0


# -- double and fail_item -------------------------------------------------------------------------


def test_double_replaces_a_task_in_a_copy_only() -> None:
    flow = numbers_flow()

    def cube(numbers: int) -> int:
        return numbers**3

    cubed = af.testing.double(flow, "square", cube)
    assert af.run(cubed)["total"] == sum(i**3 for i in range(10))
    assert af.run(flow)["total"] == sum(i * i for i in range(10))  # the original is untouched
    assert cubed.tasks["square"].on_error == flow.tasks["square"].on_error  # settings are kept

    def wrong(numbers: int) -> str:
        return "x"

    with pytest.raises(af.DefinitionError):
        af.testing.double(flow, "square", wrong)


def sync_task(numbers: int, factor: int = 2) -> int:
    return numbers * factor


async def async_task(numbers: int, factor: int = 2) -> int:
    return numbers * factor


def gen_task(numbers: int, factor: int = 2) -> Iterator[int]:
    yield numbers * factor


async def agen_task(numbers: int, factor: int = 2) -> AsyncIterator[int]:
    yield numbers * factor


@pytest.mark.parametrize("fn", [sync_task, async_task, gen_task, agen_task])
def test_fail_item_keeps_the_signature_and_kind_and_fails_the_nth_call(fn: Any) -> None:
    wrapped = af.testing.fail_item(fn, 3)
    assert inspect.signature(wrapped) == inspect.signature(fn)
    assert typing.get_type_hints(wrapped) == typing.get_type_hints(fn)  # string annotations resolve
    assert wrapped.__name__ == fn.__name__ and wrapped.__wrapped__ is fn
    for check in (inspect.iscoroutinefunction, inspect.isgeneratorfunction, inspect.isasyncgenfunction):
        assert check(wrapped) == check(fn)

    flow = af.Flow("kinds")

    @flow.source
    def numbers(n: int = 6) -> af.Stream[int]:
        yield from range(n)

    flow.task(name="work")(fn)

    @flow.collector(init=0)
    def total(acc: int, work: int) -> int:
        return acc + work

    assert af.run(flow, {"work": {"factor": 3}})["total"] == 3 * sum(range(6))
    flaky = af.testing.double(flow, "work", wrapped)  # wired by parameter name, options kept
    with pytest.raises(af.TaskFailed) as caught:
        af.run(flaky, {"work": {"factor": 3}})
    assert caught.value.task == "work" and caught.value.seq == 3
    assert isinstance(caught.value.__cause__, InjectedFault)


def test_fail_item_raises_the_exception_given() -> None:
    calls = af.testing.fail_item(sync_task, 0, ConnectionError("down"), times=2)
    for _ in range(2):
        with pytest.raises(ConnectionError, match="down"):
            calls(1)
    assert calls(1) == 2
    by_class = af.testing.fail_item(sync_task, 1, TimeoutError)
    assert by_class(1) == 2
    with pytest.raises(TimeoutError):
        by_class(1)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        af.testing.fail_item(sync_task, -1)
    with pytest.raises(ValueError, match="times must be an int >= 1"):
        af.testing.fail_item(sync_task, 0, times=0)


# -- recording events -----------------------------------------------------------------------------


async def test_a_recorder_waits_for_an_event_and_keeps_them_all() -> None:
    release = trio.Event()
    flow = af.Flow("gate")

    @flow.source
    def numbers(n: int = 5) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    async def held(numbers: int) -> int:
        await release.wait()
        return numbers

    async with af.open_run(flow) as run:
        recorder = af.testing.collect_events(run)
        done = await recorder.wait_for(af.events.TaskFinished, lambda e: e.task == "numbers")
        assert done.items_out == 5 and run.summary.tasks["held"].items_out == 0  # held waits for release
        release.set()
        await run.result()
    assert recorder.kinds[0] == "run_started" and recorder.kinds[-1] == "run_finished"
    assert {e.task for e in recorder.of(af.events.TaskFinished)} == {"numbers", "held"}
    with pytest.raises(AssertionError, match="ended without a CheckpointWritten"):
        await recorder.wait_for(af.events.CheckpointWritten)


# -- kill_at_checkpoint and corrupt_store ---------------------------------------------------------


def slow_flow() -> af.Flow:
    flow = af.Flow("slowish")

    @flow.source(batch_size=10)
    async def numbers(n: int = 600) -> AsyncIterator[int]:
        for i in range(n):
            if i % 10 == 0:
                await trio.sleep(0.002)
            yield i

    @flow.collector(init=0, capacity=32)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


async def test_kill_at_checkpoint_leaves_a_run_that_resumes_exactly(tmp_path: Path) -> None:
    store = tmp_path / "s"
    events = await af.testing.kill_at_checkpoint(slow_flow(), k=2, store=store, checkpoint_every=0.01)
    checkpoints = [e for e in events if isinstance(e, af.events.CheckpointWritten)]
    assert [e.number for e in checkpoints] == [1, 2] and not checkpoints[-1].final
    assert isinstance(events[-1], af.events.RunFinished) and events[-1].status == "cancelled"
    again = await af.testing.kill_at_checkpoint(slow_flow(), k=1, store=store, resume=True, checkpoint_every=0.01)
    assert [e.number for e in again if isinstance(e, af.events.CheckpointWritten)] == [3]
    result = await af.run_async(slow_flow(), store=store, resume=True)
    assert result["total"] == sum(range(600))


async def test_kill_at_checkpoint_cuts_right_after_the_kth_even_with_checkpoints_every_few_microseconds(
    tmp_path: Path,
) -> None:
    """The cut happens in the supervisor's own step: no later checkpoint slips in before it."""
    for attempt in range(5):
        store = tmp_path / f"s{attempt}"
        events = await af.testing.kill_at_checkpoint(slow_flow(), k=1, store=store, checkpoint_every=1e-6)
        assert [e.number for e in events if isinstance(e, af.events.CheckpointWritten)] == [1]
        with af.store.open_store(store, create=False) as st:
            assert len(st.checkpoints()) == 1


async def test_an_event_hook_sees_each_event_as_it_is_published_until_removed() -> None:
    seen: list[str] = []
    async with af.open_run(numbers_flow(3)) as run:
        remove = run.bus.hook(lambda e: seen.append(type(e).__name__))
        await run.result()
        remove()
        run.bus.publish(af.events.RunStarted(run_id="x", flow="f", tasks=()))
    assert "TaskFinished" in seen and seen[-1] == "RunFinished"


async def test_kill_at_checkpoint_says_when_the_run_ended_first(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="before checkpoint 50 was written"):
        await af.testing.kill_at_checkpoint(numbers_flow(), k=50, store=tmp_path / "s", checkpoint_every=None)
    with pytest.raises(TypeError, match="needs store="):
        await af.testing.kill_at_checkpoint(numbers_flow(), k=1)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncate", "is truncated or corrupt"),
        ("header", "cannot be opened as an LMDB store"),
        ("checkpoint", "the checkpoint cannot be decoded"),
    ],
)
def test_a_corrupted_store_is_refused(tmp_path: Path, how: Any, message: str) -> None:
    store = tmp_path / "s"
    flow = numbers_flow(5000)
    af.run(flow, store=store)
    af.testing.corrupt_store(store, how)
    for resume in (True, False):
        with pytest.raises(af.StoreError, match=message):
            af.run(flow, store=store, resume=resume)


def test_corrupt_store_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no store"):
        af.testing.corrupt_store(tmp_path / "nothing")
    af.run(numbers_flow(), store=tmp_path / "s")
    with pytest.raises(ValueError, match="how must be"):
        af.testing.corrupt_store(tmp_path / "s", "melt")  # type: ignore[arg-type]


def test_the_synchronous_examples_of_docs_testing_md_run() -> None:
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
    namespace: dict[str, Any] = {"trio": trio}
    for block in blocks[:5]:  # the flow, double (helper and test), fail_item, run_with_clock
        exec(compile(block, "docs/testing.md", "exec"), namespace)
    namespace["test_offline"]()  # each raises AssertionError if its example does not hold
    namespace["test_retries_take_no_time"]()
