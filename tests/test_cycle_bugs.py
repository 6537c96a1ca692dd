"""Regular tests for the quiet wrong answers issue 21 lists (one minimal flow each).

Each was reproduced against the kernel before the batch cycle was written once; each must keep
giving the right answer, or a clear failure, whatever the kind of task it runs in.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af

TIMEOUT = 20.0


async def bounded(flow: af.Flow, options: dict[str, Any] | None = None, **kwargs: Any) -> af.RunResult:
    with trio.move_on_after(TIMEOUT):
        return await af.run_async(flow, options, **kwargs)
    pytest.fail(f"the run of flow {flow.name!r} did not finish within {TIMEOUT:g} s", pytrace=False)
    raise AssertionError("unreachable")


# -- on_error applies to product tasks, finish and end_of_stream -----------------------------------


async def test_retry_applies_to_a_task_fed_only_final_products() -> None:
    flow = af.Flow("once")
    calls: list[int] = []

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(5)

    @flow.collector(init=0)
    def total(acc: int, nums: int) -> int:
        return acc + nums

    @flow.task(on_error=af.Retry(attempts=3))
    def once(total: int) -> int:
        calls.append(total)
        if len(calls) == 1:
            raise RuntimeError("flaky")
        return total * 2

    result = await bounded(flow)
    assert result["once"] == 20
    assert calls == [10, 10]


async def test_dead_letter_on_a_product_task_gives_no_product_and_says_so() -> None:
    flow = af.Flow("product_dead")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(3)

    @flow.collector(init=0)
    def total(acc: int, nums: int) -> int:
        return acc + nums

    @flow.task(on_error=af.DeadLetter())
    def broken(total: int) -> int:
        raise ValueError("no")

    result = await bounded(flow)
    assert result["broken"] is None
    assert [d["task"] for d in result.dead_letters] == ["broken"]


async def test_retry_applies_to_a_collectors_finish() -> None:
    flow = af.Flow("finish_retry")
    calls: list[int] = []

    def finish(acc: int) -> int:
        calls.append(acc)
        if len(calls) == 1:
            raise RuntimeError("flaky finish")
        return acc + 1

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(4)

    @flow.collector(init=0, finish=finish, on_error=af.Retry(attempts=2))
    def total(acc: int, nums: int) -> int:
        return acc + nums

    result = await bounded(flow)
    assert result["total"] == 7
    assert calls == [6, 6]


async def test_retry_applies_to_end_of_stream() -> None:
    flow = af.Flow("eos_retry")
    calls: list[int] = []

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(4)

    class Tail(af.Task):
        on_error = af.Retry(attempts=2)

        def run(self, nums: int) -> int:
            return nums

        def end_of_stream(self) -> list[int]:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("flaky end")
            return [100]

    flow.add(Tail, name="tail")
    result = await bounded(flow)
    assert result["tail"] == [0, 1, 2, 3, 100]
    assert len(calls) == 2


# -- per-collectors with an unannotated finish, read whole; and over an empty stream ----------------


def per_flow(n: int, keep: bool) -> af.Flow:
    flow = af.Flow("per_unannotated")

    @flow.source
    def s1(n: int = n) -> Iterator[int]:
        yield from range(n)

    @flow.task
    def t3(s1: int) -> Iterator[int]:
        for j in range(3):
            if keep:
                yield s1 * 10 + j

    flow.collector(init=-1, finish=lambda acc: acc * 2 + 1, per="s1", name="k3")(lambda acc, t3: max(acc, t3))

    @flow.task
    def r4(k3: list[int]) -> int:
        return sum(k3)

    return flow


async def test_per_collector_with_an_unannotated_finish_read_whole() -> None:
    result = await bounded(per_flow(4, keep=True))
    assert result["k3"] == [5, 25, 45, 65]
    assert result["r4"] == 140


async def test_per_collector_over_a_fully_filtered_stream_still_feeds_its_readers() -> None:
    result = await bounded(per_flow(4, keep=False))
    assert result["k3"] == [-1, -1, -1, -1]  # one product per group, every group empty: finish(-1)
    assert result["r4"] == -4


async def test_per_collector_over_an_empty_stream_still_feeds_its_readers() -> None:
    result = await bounded(per_flow(0, keep=True))
    assert result["k3"] == []
    assert result["r4"] == 0


# -- a task class's instance state survives a resume -----------------------------------------------


class Running(af.Task):
    """Keeps a running sum in an attribute (no end_of_stream)."""

    def __init__(self) -> None:
        self.total = 0

    def run(self, nums: int) -> int:
        if nums == 70 and os.path.exists(STOP_MARKER):
            raise KeyboardInterrupt
        self.total += nums
        return self.total


#: While this file exists, Running stops the run at item 70 (the same code runs before and after).
STOP_MARKER = os.path.join(tempfile.gettempdir(), f"actorflow-stop-at-70-{os.getpid()}")


def running_flow() -> af.Flow:
    flow = af.Flow("running_class")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(100)

    flow.add(Running, name="running")

    @flow.collector(init=0)
    def last(acc: int, running: int) -> int:
        return max(acc, running)

    return flow


async def test_task_class_state_survives_a_resume(tmp_path: Path) -> None:
    store = tmp_path / "run.lmdb"
    Path(STOP_MARKER).touch()
    try:
        with pytest.raises(KeyboardInterrupt):
            await bounded(running_flow(), store=store)
    finally:
        os.unlink(STOP_MARKER)
    result = await bounded(running_flow(), store=store, resume=True)
    assert result["last"] == 4950


async def test_task_class_state_that_cannot_be_stored_is_refused_naming_the_attribute(tmp_path: Path) -> None:
    flow = af.Flow("bad_state")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(10)

    class Holder(af.Task):
        def run(self, nums: int) -> int:
            self.handle = object()
            return nums

    flow.add(Holder, name="holder")
    with pytest.raises(af.TaskFailed) as info:
        await bounded(flow, store=tmp_path / "s.lmdb")
    text = str(info.value)
    assert "holder" in text and "handle" in text


# -- every exception a handler raises fails the item under its policy ------------------------------


def raising_flow(
    exc: BaseException, kind: str, concurrency: int = 1, on_error: Any = None
) -> tuple[af.Flow, list[int]]:
    flow = af.Flow(f"raises_{kind}")
    seen: list[int] = []

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(1000)

    settings: dict[str, Any] = {"concurrency": concurrency}
    if on_error is not None:
        settings["on_error"] = on_error
    if kind == "task":

        @flow.task(**settings)
        def handler(nums: int) -> int:
            if nums == 500:
                raise exc
            return nums

        @flow.collector(init=0)
        def count(acc: int, handler: int) -> int:
            return acc + 1

    else:

        @flow.sink(**settings)
        def handler(nums: int) -> None:
            if nums == 200:
                raise exc
            seen.append(nums)

    return flow, seen


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("kind", ["task", "sink"])
async def test_stop_iteration_in_a_sync_handler_fails_the_item(kind: str, concurrency: int) -> None:
    flow, _ = raising_flow(StopIteration(), kind, concurrency)
    with pytest.raises(af.TaskFailed) as info:
        await bounded(flow)
    assert "StopIteration" in str(info.value)
    assert "handler" in str(info.value)


@pytest.mark.parametrize("kind", ["task", "sink"])
async def test_stop_iteration_goes_through_the_policy(kind: str) -> None:
    flow, seen = raising_flow(StopIteration(), kind, on_error=af.DeadLetter())
    result = await bounded(flow)
    assert len(result.dead_letters) == 1
    if kind == "task":
        assert result["count"] == 999
    else:
        assert len(seen) == 999


class Custom(BaseException):
    pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


@pytest.mark.parametrize(
    "exc", [Custom("mine"), GeneratorExit(), Unprintable()], ids=["base_subclass", "generator_exit", "unprintable"]
)
async def test_odd_exceptions_fail_the_run_with_one_clear_error(exc: BaseException) -> None:
    flow, _ = raising_flow(exc, "task")
    with pytest.raises(af.TaskFailed) as info:
        await bounded(flow)
    text = str(info.value)
    assert "handler" in text and type(exc).__name__ in text


async def test_odd_exceptions_go_through_the_policy() -> None:
    flow, _ = raising_flow(Custom("mine"), "task", on_error=af.DeadLetter())
    result = await bounded(flow)
    assert result["count"] == 999
    assert "Custom" in result.dead_letters[0]["error"]


# -- fan-out: each reader gets its own copy of mutable items when asked ----------------------------


def fanout_flow(copy: bool) -> af.Flow:
    flow = af.Flow("fanout_copy")

    @flow.source(copy=copy)
    def rows() -> Iterator[list[int]]:
        for i in range(200):
            yield [i]

    @flow.task
    def grow(rows: list[int]) -> int:
        rows.append(0)
        return len(rows)

    @flow.task
    def size(rows: list[int]) -> int:
        return len(rows)

    @flow.collector(init=0)
    def sizes(acc: int, size: int) -> int:
        return acc + size

    @flow.collector(init=0)
    def grown(acc: int, grow: int) -> int:
        return acc + grow

    return flow


async def test_fan_out_with_copy_gives_each_reader_its_own_items() -> None:
    result = await bounded(fanout_flow(copy=True))
    assert result["sizes"] == 200
    assert result["grown"] == 400


# -- timeout= per item ---------------------------------------------------------------------------


def timeout_flow(on_error: Any = None, kind: str = "task") -> tuple[af.Flow, list[int]]:
    flow = af.Flow(f"timeouts_{kind}")
    delivered: list[int] = []

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(6)

    if kind == "task":

        @flow.task(timeout=1.0, on_error=on_error)
        async def slow(nums: int) -> int:
            await trio.sleep(5.0 if nums == 3 else 0.1)
            return nums

        @flow.collector(init=[])
        def kept(acc: list[int], slow: int) -> list[int]:
            return [*acc, slow]

    else:

        @flow.sink(timeout=1.0, on_error=on_error)
        async def slow(nums: int) -> None:
            await trio.sleep(5.0 if nums == 3 else 0.1)
            delivered.append(nums)

    return flow, delivered


async def test_an_item_over_its_timeout_fails_with_timeout_error(autojump_clock: trio.testing.MockClock) -> None:
    flow, _ = timeout_flow()
    with pytest.raises(af.TaskFailed) as info:
        await af.run_async(flow)
    assert info.value.task == "slow" and info.value.seq == 3
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_a_timed_out_item_goes_through_the_policy(autojump_clock: trio.testing.MockClock) -> None:
    flow, _ = timeout_flow(af.DeadLetter())
    result = await af.run_async(flow)
    assert result["kept"] == [0, 1, 2, 4, 5]
    assert "TimeoutError" in result.dead_letters[0]["error"]


async def test_a_sink_item_over_its_timeout_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    flow, delivered = timeout_flow(af.Retry(attempts=2, then=af.DeadLetter()), kind="sink")
    result = await af.run_async(flow)
    assert delivered == [0, 1, 2, 4, 5]
    assert [d["seq"] for d in result.dead_letters] == [3]


def test_timeout_on_a_plain_inline_function_is_refused_with_a_hint() -> None:
    flow = af.Flow("sync_timeout")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(3)

    with pytest.raises(af.DefinitionError, match='executor="thread"'):

        @flow.task(timeout=1.0)
        def slow(nums: int) -> int:
            return nums


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1"])
def test_a_bad_timeout_is_refused(bad: Any) -> None:
    flow = af.Flow("bad_timeout")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(3)

    with pytest.raises(af.DefinitionError, match="timeout must be a positive number of seconds"):

        @flow.task(timeout=bad)
        async def slow(nums: int) -> int:
            return nums


def blocking_square(nums: int) -> int:
    """Blocks its thread for 3 s on item 2; a thread executor abandons it after the timeout."""
    import time as _time

    if nums == 2:
        _time.sleep(3)
    return nums * nums


@pytest.mark.parametrize("executor", ["thread"])
async def test_an_executor_item_over_its_timeout_is_abandoned_and_dead_lettered(executor: str) -> None:
    flow = af.Flow(f"executor_timeout_{executor}")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(5)

    flow.task(executor=executor, timeout=0.5, on_error=af.DeadLetter(), name="square")(blocking_square)
    result = await bounded(flow)
    assert sorted(result["square"]) == [0, 1, 9, 16]
    assert [d["seq"] for d in result.dead_letters] == [2]
    assert "TimeoutError" in result.dead_letters[0]["error"]


def test_timeout_on_a_process_executor_is_refused_with_a_reason() -> None:
    flow = af.Flow("process_timeout")

    @flow.source
    def nums() -> Iterator[int]:
        yield from range(3)

    with pytest.raises(af.DefinitionError, match="not on ProcessExecutor"):
        flow.task(executor="process", timeout=1.0, name="square")(blocking_square)
