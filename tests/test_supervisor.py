"""Failure policies: retry with backoff, restart with intensity limits, dead letters, fail."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import actorflow as af


def flaky_flow(policy: Any, failures: dict[int, int], kind: str = "task") -> af.Flow:
    """numbers 0..9 -> work (fails failures[x] times on x) -> total."""
    flow = af.Flow("flaky")
    calls: dict[int, int] = {}

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    if kind == "task":

        @flow.task(on_error=policy)
        async def work(numbers: int) -> int:
            calls[numbers] = calls.get(numbers, 0) + 1
            if calls[numbers] <= failures.get(numbers, 0):
                raise ConnectionError(f"flaky {numbers}")
            return numbers

        @flow.collector(init=0)
        def total(acc: int, work: int) -> int:
            return acc + work

    else:

        @flow.collector(init=0, on_error=policy)
        def total(acc: int, numbers: int) -> int:
            calls[numbers] = calls.get(numbers, 0) + 1
            if calls[numbers] <= failures.get(numbers, 0):
                raise ConnectionError(f"flaky {numbers}")
            return acc + numbers

    flow.calls = calls  # type: ignore[attr-defined]
    return flow


async def collect(flow: af.Flow) -> tuple[af.RunResult | BaseException, list[af.events.Event]]:
    events: list[af.events.Event] = []
    outcome: af.RunResult | BaseException
    try:
        async with af.open_run(flow) as run:
            async for event in run.events():
                events.append(event)
            outcome = await run.result()
    except af.ActorflowError as exc:
        outcome = exc
    return outcome, events


@pytest.mark.parametrize("kind", ["task", "collector"])
async def test_retry_succeeds_after_backoff(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    flow = flaky_flow(af.Retry(attempts=3, backoff=1.0, jitter=0.0), {4: 2}, kind)
    t0 = trio.current_time()
    result, events = await collect(flow)
    assert isinstance(result, af.RunResult) and result["total"] == 45
    retries = [e for e in events if isinstance(e, af.events.ItemRetried)]
    assert [(e.seq, e.attempt, e.delay) for e in retries] == [(4, 2, 1.0), (4, 3, 2.0)]
    assert "ConnectionError: flaky 4" in retries[0].error
    assert trio.current_time() - t0 >= 3.0  # waited 1 s then 2 s (mock clock)
    assert flow.calls[4] == 3  # type: ignore[attr-defined]


async def test_retry_gives_up_after_attempts_and_fails_the_run(autojump_clock: trio.testing.MockClock) -> None:
    flow = flaky_flow(af.Retry(attempts=2, backoff=0.5), {7: 5})
    result, events = await collect(flow)
    assert isinstance(result, af.TaskFailed) and result.task == "work" and result.seq == 7
    assert isinstance(result.__cause__, ConnectionError)
    kinds = [e.kind for e in events]
    assert kinds.count("item_retried") == 1 and "escalated" in kinds and "task_failed" in kinds


async def test_retry_then_dead_letter(autojump_clock: trio.testing.MockClock) -> None:
    flow = flaky_flow(af.Retry(attempts=2, backoff=0.1, then=af.DeadLetter()), {3: 9})
    result, _ = await collect(flow)
    assert isinstance(result, af.RunResult) and result["total"] == 45 - 3
    assert [(d["task"], d["seq"], d["item"]) for d in result.dead_letters] == [("work", 3, 3)]


async def test_jitter_spreads_the_backoff() -> None:
    policy = af.Retry(attempts=5, backoff=1.0, jitter=0.5, max_backoff=3.0)
    delays = [policy.delay(3) for _ in range(50)]
    assert all(1.5 <= d <= 4.5 for d in delays) and len(set(delays)) > 1
    assert af.Retry(backoff=1.0, jitter=0, max_backoff=3.0).delay(5) == 3.0


@pytest.mark.parametrize("kind", ["task", "collector"])
async def test_dead_letter_skips_the_item_and_goes_on(kind: str) -> None:
    flow = flaky_flow(af.DeadLetter(), {2: 99, 5: 99}, kind)
    result, events = await collect(flow)
    assert isinstance(result, af.RunResult) and result["total"] == 45 - 2 - 5
    letters = result.dead_letters
    assert [(d["seq"], d["item"]) for d in letters] == [(2, 2), (5, 5)]
    assert all(d["error"] == f"ConnectionError: flaky {d['seq']}" for d in letters)
    assert [e.seq for e in events if isinstance(e, af.events.ItemDeadLettered)] == [2, 5]


async def test_restart_within_intensity_recovers(autojump_clock: trio.testing.MockClock) -> None:
    flow = flaky_flow(af.Restart(intensity=3, period=10.0), {1: 1, 6: 2})
    result, events = await collect(flow)
    assert isinstance(result, af.RunResult) and result["total"] == 45
    restarts = [e for e in events if isinstance(e, af.events.ActorRestarted)]
    assert [(e.seq, e.restarts) for e in restarts] == [(1, 1), (6, 2), (6, 3)]


async def test_restart_intensity_exceeded_escalates() -> None:
    flow = flaky_flow(af.Restart(intensity=2, period=60.0), {5: 10})
    result, events = await collect(flow)
    assert isinstance(result, af.TaskFailed) and result.seq == 5
    esc = [e for e in events if isinstance(e, af.events.Escalated)]
    assert len(esc) == 1 and "more than 2 restarts in 60.0s" in esc[0].reason
    assert [e.kind for e in events].count("actor_restarted") == 2


async def test_restarts_outside_the_window_do_not_count(autojump_clock: trio.testing.MockClock) -> None:
    flow = af.Flow("window")
    seen: dict[int, int] = {}

    @flow.source
    async def ticks(n: int = 5) -> af.Stream[int]:
        for i in range(n):
            await trio.sleep(10)
            yield i

    @flow.task(on_error=af.Restart(intensity=1, period=5.0))
    def work(ticks: int) -> int:
        seen[ticks] = seen.get(ticks, 0) + 1
        if seen[ticks] == 1:
            raise RuntimeError("first try always fails")
        return ticks

    result, events = await collect(flow)
    assert isinstance(result, af.RunResult) and result["work"] == [0, 1, 2, 3, 4]
    assert [e.kind for e in events].count("actor_restarted") == 5


async def test_source_retry_recreates_the_generator_and_skips_the_prefix(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flow = af.Flow("src")
    runs = {"n": 0}

    @flow.source(on_error=af.Retry(attempts=3, backoff=0.1), batch_size=4)
    def numbers() -> af.Stream[int]:
        runs["n"] += 1
        for i in range(10):
            if i == 6 and runs["n"] == 1:
                raise OSError("connection reset")
            yield i

    result, _ = await collect(flow)
    assert isinstance(result, af.RunResult) and result["numbers"] == list(range(10))
    assert runs["n"] == 2


async def test_generator_task_retry_does_not_repeat_children(autojump_clock: trio.testing.MockClock) -> None:
    flow = af.Flow("gen")
    tries: dict[int, int] = {}

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(3)

    @flow.task(on_error=af.Retry(attempts=2, backoff=0.1))
    def parts(numbers: int) -> af.Stream[str]:
        tries[numbers] = tries.get(numbers, 0) + 1
        for j in range(3):
            if numbers == 1 and j == 2 and tries[numbers] == 1:
                raise ValueError("half way")
            yield f"{numbers}.{j}"

    result, _ = await collect(flow)
    assert isinstance(result, af.RunResult)
    assert result["parts"] == ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2", "2.0", "2.1", "2.2"]


async def test_sink_dead_letters_and_sees_sequence_numbers() -> None:
    flow = af.Flow("sink")
    got: list[tuple[Any, str]] = []

    @flow.source
    def words() -> af.Stream[str]:
        yield from ["a b", "c", "d e"]

    @flow.task
    def split(words: str) -> af.Stream[str]:
        yield from words.split()

    @flow.sink(on_error=af.DeadLetter())
    def show(split: str, seq: af.Seq) -> None:
        if split == "c":
            raise KeyError(split)
        got.append((seq, split))

    result, _ = await collect(flow)
    assert isinstance(result, af.RunResult)
    assert got == [((0, 0), "a"), ((0, 1), "b"), ((2, 0), "d"), ((2, 1), "e")]
    assert [(d["seq"], d["item"]) for d in result.dead_letters] == [([1, 0], "c")]


def test_bad_policies_are_refused() -> None:
    flow = af.Flow("bad")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match=r"on_error must be af\.Retry"):

        @flow.task(on_error="retry")
        def a(numbers: int) -> int:
            return numbers

    with pytest.raises(af.DefinitionError, match="a source cannot dead-letter"):

        @flow.source(on_error=af.DeadLetter())
        def other() -> af.Stream[int]:
            yield 1

    with pytest.raises(ValueError, match="attempts must be at least 1"):
        af.Retry(attempts=0)
    with pytest.raises(ValueError, match="backoff must not be negative"):
        af.Retry(backoff=-1)
    with pytest.raises(ValueError, match="intensity must be at least 1"):
        af.Restart(intensity=0)


def test_af_seq_and_cursor_only_where_they_mean_something() -> None:
    flow = af.Flow("markers")

    @flow.source
    def numbers(cursor: af.Cursor) -> af.Stream[int]:
        yield from range(cursor, 3)

    assert flow.tasks["numbers"].cursor_param == "cursor" and not flow.tasks["numbers"].options
    with pytest.raises(af.DefinitionError, match=r"only a source can take an af\.Cursor"):

        @flow.task
        def t(numbers: int, c: af.Cursor) -> int:
            return numbers

    with pytest.raises(af.DefinitionError, match=r"only tasks and sinks can take an af\.Seq"):

        @flow.collector(init=0)
        def c(acc: int, numbers: int, s: af.Seq) -> int:
            return acc


def test_dead_letters_reach_the_store_even_when_the_run_fails(tmp_path: Any) -> None:
    flow = af.Flow("then-fail")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(5)

    @flow.task(on_error=af.DeadLetter())
    def picky(numbers: int) -> int:
        if numbers == 1:
            raise ValueError("one is bad")
        return numbers

    @flow.collector(init=0)
    def total(acc: int, picky: int) -> int:
        if picky == 4:
            raise RuntimeError("four breaks the run")
        return acc + picky

    with pytest.raises(af.TaskFailed, match="four breaks the run"):
        af.run(flow, store=tmp_path / "s", checkpoint_every=None)
    with af.store.open_store(tmp_path / "s") as st:
        letters = list(st.dead_letters())
    assert [(d["task"], d["seq"], d["item"], d["error"]) for d in letters] == [
        ("picky", 1, 1, "ValueError: one is bad")
    ]
