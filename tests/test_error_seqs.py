"""Exact sequence numbers in every error, whatever the batch size and the actor kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import actorflow as af

N = 3000
BAD = 1000
SIZES = [1, 1024]


def sync_source(bs: int) -> af.Flow:
    flow = af.Flow("sync_source")

    @flow.source(batch_size=bs)
    def numbers(n: int = N) -> af.Stream[int]:
        for i in range(n):
            if i == BAD:
                raise ValueError("bad item")
            yield i

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


def async_source(bs: int) -> af.Flow:
    flow = af.Flow("async_source")

    @flow.source(batch_size=bs)
    async def numbers(n: int = N) -> af.Stream[int]:
        for i in range(n):
            if i == BAD:
                raise ValueError("bad item")
            yield i

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


def _numbers(flow: af.Flow, bs: int) -> None:
    @flow.source(batch_size=bs)
    def numbers(n: int = N) -> af.Stream[int]:
        yield from range(n)


def task(bs: int, on_error: Any = None, concurrency: int = 1) -> af.Flow:
    flow = af.Flow("task")
    _numbers(flow, bs)

    @flow.task(batch_size=bs, on_error=on_error, concurrency=concurrency)
    def check(numbers: int) -> int:
        if numbers == BAD:
            raise ValueError("bad item")
        return numbers

    @flow.collector(init=0)
    def total(acc: int, check: int) -> int:
        return acc + check

    return flow


def async_task(bs: int, on_error: Any = None) -> af.Flow:
    flow = af.Flow("async_task")
    _numbers(flow, bs)

    @flow.task(batch_size=bs, on_error=on_error)
    async def check(numbers: int) -> int:
        if numbers == BAD:
            raise ValueError("bad item")
        return numbers

    @flow.collector(init=0)
    def total(acc: int, check: int) -> int:
        return acc + check

    return flow


def thread_task(bs: int, on_error: Any = None) -> af.Flow:
    flow = af.Flow("thread_task")
    _numbers(flow, bs)

    @flow.task(batch_size=bs, on_error=on_error, executor="thread")
    def check(numbers: int) -> int:
        if numbers == BAD:
            raise ValueError("bad item")
        return numbers

    @flow.collector(init=0)
    def total(acc: int, check: int) -> int:
        return acc + check

    return flow


def generator_task(bs: int, on_error: Any = None) -> af.Flow:
    flow = af.Flow("generator_task")
    _numbers(flow, bs)

    @flow.task(batch_size=bs, on_error=on_error)
    def check(numbers: int) -> af.Stream[int]:
        yield numbers
        if numbers == BAD:
            raise ValueError("bad item")

    @flow.collector(init=0)
    def total(acc: int, check: int) -> int:
        return acc + check

    return flow


def collector(bs: int, on_error: Any = None) -> af.Flow:
    flow = af.Flow("collector")
    _numbers(flow, bs)

    @flow.collector(init=0, on_error=on_error)
    def total(acc: int, numbers: int) -> int:
        if numbers == BAD:
            raise ValueError("bad item")
        return acc + numbers

    return flow


def sink(bs: int, on_error: Any = None) -> af.Flow:
    flow = af.Flow("sink")
    _numbers(flow, bs)

    @flow.sink(on_error=on_error)
    def check(numbers: int) -> None:
        if numbers == BAD:
            raise ValueError("bad item")

    return flow


FAILING: dict[str, Callable[[int], af.Flow]] = {
    "sync source": sync_source, "async source": async_source, "task": task,
    "task with concurrency 4": lambda bs: task(bs, concurrency=4), "async task": async_task,
    "task on threads": thread_task, "generator task": generator_task, "collector": collector, "sink": sink,
}


@pytest.mark.parametrize("bs", SIZES)
@pytest.mark.parametrize("kind", list(FAILING))
def test_a_failure_names_the_exact_item(kind: str, bs: int) -> None:
    with pytest.raises(af.TaskFailed) as err:
        af.run(FAILING[kind](bs))
    assert err.value.seq == BAD, f"{kind}, batch_size {bs}: seq {err.value.seq}"
    assert str(BAD) in str(err.value)


DEAD: dict[str, Callable[[int, Any], af.Flow]] = {
    "task": task, "async task": async_task, "task on threads": thread_task, "generator task": generator_task,
    "collector": collector, "sink": sink,
}


@pytest.mark.parametrize("bs", SIZES)
@pytest.mark.parametrize("kind", list(DEAD))
def test_a_dead_letter_names_the_exact_item(kind: str, bs: int) -> None:
    result = af.run(DEAD[kind](bs, af.DeadLetter()))
    assert [d["seq"] for d in result.dead_letters] == [BAD], kind


@pytest.mark.parametrize("bs", SIZES)
@pytest.mark.parametrize("is_async", [False, True])
def test_a_source_failing_while_a_retry_skips_its_prefix_names_the_item(is_async: bool, bs: int) -> None:
    """A retried source is opened again and skips what it already sent: an error in that prefix is
    the item where it happened, not the cursor."""
    flow = af.Flow("retried")
    calls: list[int] = []

    def fails_at() -> int:
        return BAD if len(calls) == 1 else 500  # a flaky source: the second time it fails earlier

    if is_async:
        @flow.source(batch_size=bs, on_error=af.Retry(attempts=2, backoff=0.001))
        async def numbers(n: int = N) -> af.Stream[int]:
            calls.append(1)
            for i in range(n):
                if i == fails_at():
                    raise ValueError("bad item")
                yield i
    else:
        @flow.source(batch_size=bs, on_error=af.Retry(attempts=2, backoff=0.001))
        def numbers(n: int = N) -> af.Stream[int]:
            calls.append(1)
            for i in range(n):
                if i == fails_at():
                    raise ValueError("bad item")
                yield i

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    with pytest.raises(af.TaskFailed) as err:
        af.run(flow)
    assert err.value.seq == 500
