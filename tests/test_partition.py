"""Key-partitioned concurrency: ``@flow.task(key=fn, concurrency=N)`` and a task class's ``key``."""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

import actorflow as af
from actorflow._kernel._partition import lane_of, lanes
from actorflow._storage._codec import pack


def test_lanes_keep_input_order_and_a_key_always_gets_the_same_lane() -> None:
    items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
    parts = lanes(items, lambda x: x[0], 4)
    for idx in parts:
        assert idx == sorted(idx)
        assert len({items[i][0] for i in idx}) >= 1
    by_key = {items[i][0]: lane for lane, idx in enumerate(parts) for i in idx}
    assert len(by_key) == 3
    assert lane_of("a", 4) == zlib.crc32(pack("a")) % 4  # the same in every process (no hash seed)
    assert lanes([([1], 0)], lambda x: x[0], 3) == [[0]]  # an unhashable key still gets a lane


async def test_per_key_order_holds_while_keys_run_concurrently(autojump_clock: trio.testing.MockClock) -> None:
    flow = af.Flow("keyed")
    running: set[int] = set()
    most = [0]
    seen: dict[int, list[int]] = {}

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(60)

    @flow.task(key=lambda n: n % 4, concurrency=4)
    async def work(nums: int) -> int:
        k = nums % 4
        running.add(k)
        most[0] = max(most[0], len(running))
        await trio.sleep(((nums * 7) % 5) / 10)  # items finish out of order
        seen.setdefault(k, []).append(nums)
        running.discard(k)
        return nums * 10

    result = await af.run_async(flow)
    assert result["work"] == [n * 10 for n in range(60)]  # output in input order
    assert seen == {k: list(range(k, 60, 4)) for k in range(4)}  # per-key order of processing
    assert most[0] > 1  # keys ran in parallel


def parity(n: int) -> int:
    return n % 2


class Tag(af.Task):
    """A task class keyed by its item's parity."""

    concurrency: ClassVar[int | None] = 2
    key = parity

    def run(self, nums: int) -> str:
        return f"{nums}:{nums % 2}"


def test_a_task_class_gives_its_key_as_a_class_attribute() -> None:
    flow = af.Flow("cls")

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(9)

    spec = flow.add(Tag, name="tag")
    assert spec.settings.key is not None and spec.settings.key(3) == 1
    assert af.run(flow)["tag"] == [f"{n}:{n % 2}" for n in range(9)]


def test_a_failing_item_of_a_keyed_task_fails_the_run_naming_it() -> None:
    flow = af.Flow("fails")

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(20)

    @flow.task(key=lambda n: n % 3, concurrency=3)
    def work(nums: int) -> int:
        if nums == 13:
            raise ValueError("thirteen")
        return nums

    with pytest.raises(af.TaskFailed, match="thirteen") as info:
        af.run(flow)
    assert info.value.seq == 13


@pytest.mark.parametrize(
    ("kwargs", "generator", "message"),
    [
        ({"executor": "thread"}, False, "cannot be honoured on an executor"),
        ({}, True, "not generator tasks"),
    ],
)
def test_keyed_tasks_refuse_what_they_cannot_honour(kwargs: dict[str, Any], generator: bool, message: str) -> None:
    flow = af.Flow("refused")

    @flow.source
    def nums() -> af.Stream[int]:
        yield 1

    def plain(nums: int) -> int:
        return nums

    def gen(nums: int) -> af.Stream[int]:
        yield nums

    with pytest.raises(af.DefinitionError, match=message):
        flow.task(key=lambda n: n, concurrency=2, **kwargs)(gen if generator else plain)
