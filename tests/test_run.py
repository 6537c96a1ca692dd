"""Running flows: task kinds, wiring, batching, concurrency, errors, cancellation, events."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import trio.testing

import actorflow as af
from actorflow._define._spec import DEFAULT_BATCH_SIZE


def squares_flow() -> af.Flow:
    flow = af.Flow("squares")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    async def square(numbers: int) -> int:
        return numbers * numbers

    @flow.collector(init=0)
    def total(acc: int, square: int) -> int:
        return acc + square

    return flow


def test_quick_start() -> None:
    result = af.run(squares_flow(), options={"numbers": {"n": 100}})
    assert result["total"] == 328350
    assert dict(result) == {"total": 328350}
    stats = result.summary.tasks
    assert (stats["numbers"].items_out, stats["square"].items_in, stats["square"].items_out) == (100, 100, 100)
    assert stats["total"].items_in == 100 and stats["total"].items_out == 1
    assert result.summary.status == "ok"
    assert "numbers" in str(result.summary)


def test_default_options_apply() -> None:
    assert af.run(squares_flow())["total"] == sum(i * i for i in range(10))


async def test_run_async_inside_trio() -> None:
    result = await af.run_async(squares_flow(), options={"numbers": {"n": 5}})
    assert result["total"] == 30


async def test_async_source_and_async_collector() -> None:
    flow = af.Flow("async")

    @flow.source
    async def ticks(n: int = 600) -> AsyncIterator[int]:
        for i in range(n):
            if i % 100 == 0:
                await trio.sleep(0)
            yield i

    @flow.collector(init=0)
    async def total(acc: int, ticks: int) -> int:
        return acc + ticks

    result = await af.run_async(flow)
    assert result["total"] == sum(range(600))


async def test_async_source_error_names_the_item() -> None:
    flow = af.Flow("async")

    @flow.source
    async def ticks() -> AsyncIterator[int]:
        yield 0
        yield 1
        raise OSError("disk gone")

    with pytest.raises(af.TaskFailed) as info:
        await af.run_async(flow)
    assert info.value.task == "ticks" and info.value.seq == 2
    assert isinstance(info.value.__cause__, OSError)


def test_generator_tasks_chain_and_per_collector_groups() -> None:
    flow = af.Flow("chain")

    @flow.source
    def docs() -> af.Stream[str]:
        yield "a b\nc"
        yield ""
        yield "d\ne f g"

    @flow.task
    def lines(docs: str) -> Iterator[str]:
        yield from docs.splitlines()

    @flow.task
    def words(lines: str) -> af.Stream[str]:
        yield from lines.split()

    @flow.collector(init=0)
    def count(acc: int, words: str) -> int:
        return acc + 1

    @flow.collector(init=0, per=docs)
    def per_doc(acc: int, words: str) -> int:
        return acc + 1

    @flow.collector(init=0, per=lines)
    def per_line(acc: int, words: str) -> int:
        return acc + 1

    @flow.collector(init=[])
    def seqs(acc: list[str], words: str) -> list[str]:
        acc.append(words)
        return acc

    result = af.run(flow)
    assert result["count"] == 7
    assert result["per_doc"] == [3, 0, 4]
    assert result["per_line"] == [2, 1, 1, 3]
    assert result["seqs"] == ["a", "b", "c", "d", "e", "f", "g"]


def test_generator_tasks_receive_sequence_numbers() -> None:
    flow = af.Flow("seqgen")

    @flow.source
    def words() -> af.Stream[str]:
        yield from ["a", "bb", "ccc"]

    @flow.task
    def letters(words: str, seq: af.Seq) -> af.Stream[str]:
        for ch in words:
            yield f"{seq}:{ch}"

    @flow.task
    async def tagged(letters: str, seq: af.Seq) -> af.Stream[str]:
        yield f"{letters}@{list(seq)}"

    assert af.run(flow)["tagged"] == [
        "0:a@[0, 0]", "1:b@[1, 0]", "1:b@[1, 1]", "2:c@[2, 0]", "2:c@[2, 1]", "2:c@[2, 2]"
    ]


def test_per_collector_output_can_feed_a_task() -> None:
    flow = af.Flow("per")

    @flow.source
    def groups(k: int = 300) -> af.Stream[int]:
        yield from range(k)

    @flow.task
    def members(groups: int) -> af.Stream[int]:
        yield from range(groups % 5)

    @flow.collector(init=0, per=groups)
    def size(acc: int, members: int) -> int:
        return acc + 1

    @flow.task
    def check(groups: int, size: int) -> bool:
        return size == groups % 5

    @flow.collector(init=0)
    def ok(acc: int, check: bool) -> int:
        return acc + check

    result = af.run(flow)
    assert result["ok"] == 300


def test_fan_out_every_consumer_gets_every_item() -> None:
    flow = af.Flow("fan")

    @flow.source
    def numbers(n: int = 1000) -> af.Stream[int]:
        yield from range(n)

    @flow.collector(init=0)
    def a(acc: int, numbers: int) -> int:
        return acc + numbers

    @flow.collector(init=0)
    def b(acc: int, numbers: int) -> int:
        return acc + 1

    result = af.run(flow)
    assert (result["a"], result["b"]) == (sum(range(1000)), 1000)


def test_fan_in_zips_by_sequence_number_even_with_skips() -> None:
    flow = af.Flow("zip")

    @flow.source
    def numbers(n: int = 2000) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def evens(numbers: int) -> int:
        return numbers if numbers % 2 == 0 else af.SKIP

    @flow.task
    def thirds(numbers: int) -> int:
        return numbers if numbers % 3 == 0 else af.SKIP

    @flow.task
    def pair(evens: int, thirds: int) -> tuple[int, int]:
        return (evens, thirds)

    @flow.collector(init=[])
    def pairs(acc: list[tuple[int, int]], pair: tuple[int, int]) -> list[tuple[int, int]]:
        acc.append(pair)
        return acc

    result = af.run(flow)
    assert result["pairs"] == [(i, i) for i in range(0, 2000, 6)]


def test_fan_in_with_unordered_upstream() -> None:
    flow = af.Flow("zipu")

    @flow.source
    def numbers(n: int = 500) -> af.Stream[int]:
        yield from range(n)

    @flow.task(concurrency=3, ordered=False)
    async def slow(numbers: int) -> int:
        await trio.sleep(0)
        return numbers * 10

    @flow.task
    def both(numbers: int, slow: int) -> bool:
        return slow == numbers * 10

    @flow.collector(init=0)
    def good(acc: int, both: bool) -> int:
        return acc + both

    assert af.run(flow)["good"] == 500


def test_final_inputs_are_constants_and_lists_gather_streams() -> None:
    flow = af.Flow("final")

    @flow.source
    def numbers(n: int = 50) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def everything(numbers: list[int]) -> int:
        return len(numbers)

    @flow.source
    def letters() -> af.Stream[str]:
        yield from "abc"

    @flow.task
    def tagged(letters: str, everything: int) -> str:
        return f"{letters}{everything}"

    result = af.run(flow)
    assert result["everything"] == 50
    assert result["tagged"] == ["a50", "b50", "c50"]  # a leaf stream is gathered


def test_skip_drops_items() -> None:
    flow = af.Flow("skip")

    @flow.source
    def numbers(n: int = 1000) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def odd(numbers: int) -> int:
        return numbers if numbers % 2 else af.SKIP

    @flow.collector(init=0)
    def count(acc: int, odd: int) -> int:
        return acc + 1

    result = af.run(flow)
    assert result["count"] == 500
    assert result.summary.tasks["odd"].items_out == 500


@pytest.mark.parametrize("ordered", [True, False])
async def test_concurrency_runs_workers_in_parallel(ordered: bool) -> None:
    flow = af.Flow("conc")
    active = {"now": 0, "peak": 0}

    @flow.source
    def numbers(n: int = 40) -> af.Stream[int]:
        yield from range(n)

    @flow.task(concurrency=4, ordered=ordered)
    async def work(numbers: int) -> int:
        active["now"] += 1
        active["peak"] = max(active["peak"], active["now"])
        await trio.sleep((40 - numbers) * 0.001)  # later items finish first
        active["now"] -= 1
        return numbers

    @flow.collector(init=[])
    def order(acc: list[int], work: int) -> list[int]:
        acc.append(work)
        return acc

    result = await af.run_async(flow)
    assert active["peak"] == 4
    assert sorted(result["order"]) == list(range(40))
    if ordered:
        assert result["order"] == list(range(40))
    else:
        assert result["order"] != list(range(40))


def test_items_travel_in_batches() -> None:
    flow = squares_flow()
    seen: list[int] = []

    async def main() -> None:
        async with af.open_run(flow, options={"numbers": {"n": 10_000}}) as run:
            async for event in run.events(maxlen=100_000):
                if isinstance(event, af.events.BatchProcessed) and event.task == "square":
                    seen.append(event.items_in)

    trio.run(main)
    assert sum(seen) == 10_000
    assert max(seen) > 1  # more than one item per message
    assert len(seen) < 10_000 / 50


def test_backpressure_keeps_memory_flat() -> None:
    """A fast source never runs more than a bounded number of items ahead of a slow consumer."""
    flow = af.Flow("bp")
    state = {"produced": 0, "consumed": 0, "ahead": 0}

    @flow.source
    def numbers(n: int = 50_000) -> af.Stream[int]:
        for i in range(n):
            state["produced"] += 1
            state["ahead"] = max(state["ahead"], state["produced"] - state["consumed"])
            yield i

    @flow.task(capacity=64, batch_size=16)
    def slow(numbers: int) -> int:
        return numbers

    @flow.collector(init=0, capacity=64)
    def total(acc: int, slow: int) -> int:
        state["consumed"] += 1
        return acc + slow

    result = af.run(flow)
    assert result["total"] == sum(range(50_000))
    # two mailboxes of 64 (+ a batch each), one outbox and one batch in hand per actor
    assert state["ahead"] < 4 * DEFAULT_BATCH_SIZE + 2 * 64


def test_wrong_typed_item_fails_at_the_sender() -> None:
    flow = af.Flow("typed")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def label(numbers: int) -> int:
        return "seven" if numbers == 7 else numbers  # type: ignore[return-value]

    @flow.collector(init=0)
    def total(acc: int, label: int) -> int:
        return acc + label

    with pytest.raises(af.MailboxTypeError) as info:
        af.run(flow)
    err = info.value
    assert isinstance(err, TypeError)
    assert (err.flow, err.task, err.port) == ("typed", "label", "out")
    assert (err.expected, err.actual, err.seq) == ("int", "str", 7)
    assert "flow 'typed'" in str(err) and "task 'label'" in str(err) and "seq 7" in str(err)


def test_wrong_typed_source_item_and_final_product() -> None:
    flow = af.Flow("typed2")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1
        yield 2.5  # type: ignore[misc]

    with pytest.raises(af.MailboxTypeError, match="expected int, got float"):
        af.run(flow)

    flow2 = af.Flow("typed3")

    @flow2.source
    def numbers2() -> af.Stream[int]:
        yield 1

    @flow2.collector(init=0)
    def total(acc: int, numbers2: int) -> str:
        return acc + numbers2  # type: ignore[return-value]

    with pytest.raises(af.MailboxTypeError, match="task 'total'"):
        af.run(flow2)


def test_subclass_items_pass_the_type_check() -> None:
    flow = af.Flow("sub")

    class Special(int):
        pass

    @flow.source
    def numbers() -> af.Stream[int]:
        yield Special(3)
        yield 4

    assert af.run(flow)["numbers"] == [3, 4]


def test_bool_is_not_an_int_on_a_port() -> None:
    flow = af.Flow("bools")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 3
        yield True  # one rule with options and the gateway: bool is not an int

    with pytest.raises(af.MailboxTypeError, match=r"expected int, got bool \(item seq 1\)"):
        af.run(flow)


def test_task_error_names_task_and_sequence_number() -> None:
    flow = af.Flow("boom")

    @flow.source
    def numbers(n: int = 1000) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def fragile(numbers: int) -> int:
        if numbers == 321:
            raise ValueError("bad number")
        return numbers

    @flow.collector(init=0)
    def total(acc: int, fragile: int) -> int:
        return acc + fragile

    with pytest.raises(af.TaskFailed) as info:
        af.run(flow)
    err = info.value
    assert (err.flow, err.task, err.seq) == ("boom", "fragile", 321)
    assert isinstance(err.__cause__, ValueError) and "bad number" in str(err)


def test_errors_in_generator_task_collector_and_sink() -> None:
    def build(kind: str) -> af.Flow:
        flow = af.Flow(kind)

        @flow.source
        def numbers(n: int = 20) -> af.Stream[int]:
            yield from range(n)

        if kind == "gen":

            @flow.task
            def explode(numbers: int) -> af.Stream[int]:
                yield numbers
                if numbers == 5:
                    raise KeyError("five")

        elif kind == "collector":

            @flow.collector(init=0)
            def explode(acc: int, numbers: int) -> int:
                return acc // (numbers - 5) if numbers == 5 else acc

        else:

            @flow.sink
            def explode(numbers: int) -> None:
                if numbers == 5:
                    raise RuntimeError("sink down")

        return flow

    for kind, cause in (("gen", KeyError), ("collector", ZeroDivisionError), ("sink", RuntimeError)):
        with pytest.raises(af.TaskFailed) as info:
            af.run(build(kind))
        assert info.value.task == "explode" and info.value.seq == 5, kind
        assert isinstance(info.value.__cause__, cause)


def test_failure_events_are_published() -> None:
    flow = af.Flow("fail-events")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1
        raise ValueError("nope")

    kinds: list[str] = []

    async def main() -> None:
        with pytest.raises(af.TaskFailed):
            async with af.open_run(flow) as run:
                async for event in run.events():
                    kinds.append(event.kind)
        assert run.status == "failed"

    trio.run(main)
    assert "task_failed" in kinds and kinds[-1] == "run_finished"


def _all_tasks() -> set[trio.lowlevel.Task]:
    out: set[trio.lowlevel.Task] = set()
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        out.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return out


def endless_flow() -> af.Flow:
    flow = af.Flow("endless")

    @flow.source
    async def forever() -> AsyncIterator[int]:
        i = 0
        while True:
            yield i
            i += 1
            if i % 64 == 0:
                await trio.sleep(0)

    @flow.task(concurrency=3)
    async def work(forever: int) -> int:
        await trio.sleep(0)
        return forever

    @flow.collector(init=0)
    def total(acc: int, work: int) -> int:
        return acc + 1

    return flow


async def test_run_cancel_stops_every_actor_and_leaks_nothing() -> None:
    before_tasks, before_threads = _all_tasks(), threading.active_count()
    async with af.open_run(endless_flow()) as run:
        async for event in run.events():
            if isinstance(event, af.events.BatchProcessed) and event.task == "total":
                run.cancel()
    with pytest.raises(af.RunCancelled):
        await run.result()
    assert run.status == "cancelled"
    assert _all_tasks() == before_tasks
    assert threading.active_count() == before_threads


async def test_cancel_scope_stops_the_run_and_leaks_nothing() -> None:
    before_tasks, before_threads = _all_tasks(), threading.active_count()
    counted = trio.Event()
    flow = endless_flow()
    with trio.CancelScope() as scope:
        async with af.open_run(flow) as run:
            async for event in run.events():
                if isinstance(event, af.events.BatchProcessed) and event.task == "total":
                    counted.set()
                    scope.cancel()
    assert counted.is_set() and scope.cancelled_caught
    assert run.status == "cancelled"
    assert _all_tasks() == before_tasks
    assert threading.active_count() == before_threads


async def test_error_in_the_embedding_block_cancels_the_run() -> None:
    with pytest.raises(LookupError):
        async with af.open_run(endless_flow()) as run:
            raise LookupError("service broke")
    assert run.status == "cancelled"


async def test_events_in_order_with_counts() -> None:
    records: list[af.events.Event] = []
    async with af.open_run(squares_flow(), options={"numbers": {"n": 1000}}) as run:
        async for event in run.events():
            records.append(event)
    kinds = [e.kind for e in records]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert records[0].tasks == ("numbers", "square", "total")  # type: ignore[attr-defined]
    assert records[-1].status == "ok"  # type: ignore[attr-defined]
    started = {e.task for e in records if isinstance(e, af.events.TaskStarted)}
    finished = {e.task: e for e in records if isinstance(e, af.events.TaskFinished)}
    assert started == set(finished) == {"numbers", "square", "total"}
    assert finished["square"].items_in == 1000 and finished["square"].items_out == 1000
    per_task = Counter()
    for e in records:
        if isinstance(e, af.events.BatchProcessed):
            per_task[e.task] += e.items_in
    assert per_task["square"] == 1000 and per_task["total"] == 1000
    for e in records:
        assert e.run_id == run.run_id
        d = e.to_dict()
        assert d["kind"] == e.kind


async def test_a_slow_event_reader_never_slows_the_pipeline() -> None:
    async with af.open_run(squares_flow(), options={"numbers": {"n": 200_000}}) as run:
        stream = run.events(maxlen=10)  # subscribed, never read while running
        result = await run.result()
    assert result["total"] == sum(i * i for i in range(200_000))
    assert stream.dropped > 0
    kinds = []
    async for event in stream:
        kinds.append(event.kind)
    assert kinds[-1] == "run_finished"  # lifecycle events are always kept
    assert kinds.count("task_finished") == 3


async def test_run_failure_surfaces_at_block_exit_when_result_not_awaited() -> None:
    flow = af.Flow("x")

    @flow.source
    def numbers() -> af.Stream[int]:
        raise RuntimeError("no numbers")
        yield 1

    with pytest.raises(af.TaskFailed, match="no numbers"):
        async with af.open_run(flow):
            pass


def test_invalid_options_raise_before_anything_runs() -> None:
    calls: list[Any] = []
    flow = af.Flow("opts")

    @flow.source
    def numbers(n: int) -> af.Stream[int]:
        calls.append(n)
        yield from range(n)

    with pytest.raises(af.InvocationError) as info:
        af.run(flow, options={"numbers": {"n": "many"}, "nmbers": {}})
    msg = str(info.value)
    assert "option 'n'" in msg and "expected int" in msg and "unknown task 'nmbers'" in msg
    assert "did you mean 'numbers'" in msg
    assert calls == []


def test_run_rejects_non_flows() -> None:
    with pytest.raises(TypeError, match="expected an actorflow Flow"):
        af.run("squares")  # type: ignore[arg-type]


def test_items_from_an_unannotated_sender_are_checked_against_the_receiving_port() -> None:
    flow = af.Flow("loose")

    @flow.source
    def numbers():  # type: ignore[no-untyped-def]  # no annotation: anything may come out
        yield from [1, 2, "three"]

    @flow.task
    def square(numbers: int) -> int:
        return numbers * numbers

    with pytest.raises(af.MailboxTypeError) as info:
        af.run(flow)
    err = info.value
    assert (err.task, err.port, err.expected, err.actual, err.seq) == ("square", "numbers", "int", "str", 2)
    assert "flow 'loose', task 'square', port 'numbers': expected int, got str (item seq 2)" in str(err)


def test_summary_has_time_per_task() -> None:
    result = af.run(squares_flow(), options={"numbers": {"n": 100}})
    stats = result.summary.tasks
    assert set(stats) == {"numbers", "square", "total"}
    assert all(t.elapsed > 0 for t in stats.values()) and result.summary.elapsed >= max(
        t.elapsed for t in stats.values()
    )
    assert (stats["square"].items_in, stats["square"].items_out, stats["total"].items_out) == (100, 100, 1)
