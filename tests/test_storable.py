"""What a checkpoint cannot hold is refused before the work (declared types) or at once (undeclared ones)."""

from __future__ import annotations

import collections
import datetime as dt
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import attrs
import pytest
import trio

import actorflow as af
from actorflow._storage._codec import pack, unpack

CALLS: list[str] = []


class Opaque:
    """Not plain data, not an attrs class, not a dataclass: msgpack cannot hold it."""


@attrs.frozen
class Holder:
    name: str
    sock: socket.socket


@attrs.frozen
class Point:
    x: int
    y: list[float]


def numbers_flow() -> af.Flow:
    flow = af.Flow("storable")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        CALLS.append("numbers")
        yield from range(n)

    return flow


@pytest.fixture(autouse=True)
def _clean() -> None:
    CALLS.clear()


def test_a_declared_type_that_cannot_be_stored_is_refused_before_any_task_runs(tmp_path: Path) -> None:
    flow = numbers_flow()

    @flow.task
    def wrap(numbers: int) -> Opaque:
        return Opaque()

    @flow.collector(init=None)
    def last(acc: Holder | None, numbers: int) -> Holder | None:
        return acc

    with pytest.raises(af.StoreError) as info:
        af.run(flow, store=tmp_path / "s")
    text = str(info.value)
    assert "task 'wrap' produces items of type Opaque" in text
    assert "task 'last' produces a product of type" in text and "Holder.sock: socket is not plain data" in text
    assert CALLS == [] and not (tmp_path / "s").exists()  # refused before the store is opened or any task runs


def test_storable_declared_types_run_with_a_store(tmp_path: Path) -> None:
    flow = numbers_flow()

    @flow.task
    def point(numbers: int) -> Point:
        return Point(numbers, [numbers / 2])

    @flow.collector(init=0)
    def total(acc: int, point: Point) -> int:
        return acc + point.x

    assert af.run(flow, store=tmp_path / "s", checkpoint_every=0.01)["total"] == 45


def test_without_a_store_nothing_is_refused() -> None:
    flow = numbers_flow()

    @flow.task
    def wrap(numbers: int) -> Opaque:
        return Opaque()

    @flow.collector(init=0)
    def count(acc: int, wrap: Opaque) -> int:
        return acc + 1

    assert af.run(flow)["count"] == 10


@pytest.mark.parametrize("annotation", ["none", "any"])
def test_an_undeclared_value_that_cannot_be_stored_fails_at_once_naming_task_item_and_type(
    tmp_path: Path, annotation: str
) -> None:
    flow = numbers_flow()

    def maybe(numbers):  # type: ignore[no-untyped-def]  # undeclared output type
        return Opaque() if numbers == 5 else numbers

    if annotation == "any":
        maybe.__annotations__ = {"numbers": int, "return": Any}
    else:
        maybe.__annotations__ = {"numbers": int}
    flow.task(maybe)

    @flow.collector(init=0)
    def count(acc: int, maybe: Any) -> int:
        return acc + 1

    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, store=tmp_path / "s", checkpoint_every=None)  # no periodic checkpoint running
    assert info.value.task == "maybe" and info.value.seq == 5
    assert isinstance(info.value.__cause__, af.StoreError)
    assert "task 'maybe', item 5: a value of type Opaque cannot be stored" in str(info.value.__cause__)


def test_an_undeclared_product_that_cannot_be_stored_fails_naming_the_task(tmp_path: Path) -> None:
    flow = numbers_flow()

    @flow.task
    def make(n: int = 3):  # type: ignore[no-untyped-def]
        return Opaque()

    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, store=tmp_path / "s")
    assert info.value.task == "make" and "its product: a value of type Opaque" in str(info.value.__cause__)


# -- values come back from the store exactly as they were written ---------------------------------

#: Every kind of value docs/durability.md ("What a store holds") lists as coming back as itself,
#: whatever the declared type (Any included). Keep the two lists the same.
EXACT: list[Any] = [
    None, True, False, 0, -7, 2**63 + 5, -(2**70), 1.5, float("inf"), "text", "ünïcode", b"\x00bytes",
    [1, [2, "x"]], {"k": [1]}, (1, "a"), ((1, 2), (3,)), (), {(1, "a"): 2, (2, "b"): 3}, {1, 2}, frozenset({"x"}),
    {frozenset({1, 2}): "key"}, {1: "int key", 2.5: "float key", b"b": "bytes key", None: "none key"},
    Path("/tmp/p"), PurePosixPath("a/b"), PureWindowsPath("c:\\d"),
    dt.datetime(2024, 5, 6, 7, 8, 9, 10), dt.datetime(2024, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.date(2024, 5, 6), dt.time(7, 8, 9, 10),
]


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (1 == 1.0 == True would hide a change)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(_same(k, k2) and _same(a[k], b[k2]) for k, k2 in zip(a, b, strict=True))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)


@pytest.mark.parametrize("value", EXACT, ids=repr)
def test_every_listed_value_round_trips_through_the_codec_exactly(value: Any) -> None:
    assert _same(unpack(pack(value)), value)


def exact_flow() -> af.Flow:
    flow = af.Flow("exact")

    @flow.source
    async def values() -> af.Stream[Any]:
        for value in EXACT:
            await trio.sleep(0.003)  # checkpoints come while they flow
            yield value

    @flow.collector(init=[])
    def kept(acc: list[Any], values: Any) -> list[Any]:
        return [*acc, values]

    return flow


def test_values_come_back_from_a_checkpoint_exactly(tmp_path: Path) -> None:
    """Through a real store: the final checkpoint holds the collector's product as it was."""
    assert _same(af.run(exact_flow(), store=tmp_path / "s")["kept"], EXACT)
    with af.store.open_store(tmp_path / "s", create=False) as st:
        blob = st.read_checkpoint()
    assert blob is not None
    assert _same(unpack(blob)["actors"]["kept"]["product"], EXACT)


async def test_values_held_in_a_checkpoint_resume_exactly(tmp_path: Path) -> None:
    """Cut mid-stream: the accumulator and queued items come back from the checkpoint as they were."""
    store = tmp_path / "s"
    await af.testing.kill_at_checkpoint(exact_flow(), k=2, store=store, checkpoint_every=0.005)
    resumed = await af.run_async(exact_flow(), store=store, resume=True)
    assert _same(resumed["kept"], EXACT)


async def test_a_collector_with_tuple_keys_resumes_to_the_products_of_an_uninterrupted_run(tmp_path: Path) -> None:
    """The reported case: ``acc[(word, n)] += 1`` was written as list keys and could never be read back."""

    def words_flow() -> af.Flow:
        flow = af.Flow("words")

        @flow.source(batch_size=16)
        def words(n: int = 3000) -> af.Stream[str]:
            for i in range(n):
                if i % 100 == 0:
                    time.sleep(0.002)  # long enough for a few checkpoints
                yield ("ab", "cd", "ef")[i % 3]

        @flow.collector(init={})
        def pairs(acc: dict[Any, int], words: str) -> dict[Any, int]:
            key = (words, len(acc) % 4)
            acc[key] = acc.get(key, 0) + 1
            return acc

        return flow

    expected = (await af.run_async(words_flow()))["pairs"]
    store = tmp_path / "s"
    await af.testing.kill_at_checkpoint(words_flow(), k=2, store=store, checkpoint_every=0.005)
    resumed = await af.run_async(words_flow(), store=store, resume=True)
    assert resumed["pairs"] == expected and all(type(k) is tuple for k in resumed["pairs"])


def test_an_accumulator_that_cannot_be_stored_fails_at_its_first_batch(tmp_path: Path) -> None:
    flow = numbers_flow()

    @flow.collector(init={})
    def things(acc: dict[Any, Any], numbers: int) -> dict[Any, Any]:
        CALLS.append("things")
        acc[numbers] = Opaque()
        return acc

    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, {"numbers": {"n": 100_000}}, store=tmp_path / "s", checkpoint_every=60)
    assert info.value.task == "things"
    cause = info.value.__cause__
    assert isinstance(cause, af.StoreError)
    assert "task 'things', its accumulator after item 0: a value of type dict cannot be stored" in str(cause)
    assert "cannot encode a Opaque" in str(cause)
    assert CALLS.count("things") < 100_000  # found after the first batch, not after all the work


def test_a_per_group_accumulator_that_cannot_be_stored_fails_at_its_first_batch(tmp_path: Path) -> None:
    flow = numbers_flow()

    @flow.task
    def pairs(numbers: int) -> af.Stream[int]:
        yield numbers
        yield numbers + 1

    @flow.collector(init=None, per="numbers")
    def per_number(acc: Any, pairs: int) -> Any:
        return Opaque()

    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, store=tmp_path / "s", checkpoint_every=60)
    assert info.value.task == "per_number" and isinstance(info.value.__cause__, af.StoreError)
    assert "its accumulator after item" in str(info.value.__cause__) and "Opaque" in str(info.value.__cause__)


async def test_a_defaultdict_accumulator_stays_one_after_a_resume(tmp_path: Path) -> None:
    def counting() -> af.Flow:
        flow = af.Flow("counting")

        @flow.source
        async def words(n: int = 400) -> af.Stream[str]:
            for i in range(n):
                if i % 20 == 0:
                    await trio.sleep(0.001)
                yield ("a", "b", "c")[i % 3]

        @flow.collector(init=collections.defaultdict(int))
        def counts(acc: dict[str, int], words: str) -> dict[str, int]:
            acc[words] += 1
            return acc

        return flow

    store = tmp_path / "s"
    await af.testing.kill_at_checkpoint(counting(), k=2, store=store, checkpoint_every=0.002)
    resumed = (await af.run_async(counting(), store=store, resume=True))["counts"]
    assert isinstance(resumed, collections.defaultdict) and resumed == {"a": 134, "b": 133, "c": 133}


class _Hoard(af.Task):
    """Keeps every number in a public attribute of its instance (its state for ``end_of_stream``)."""

    def run(self, numbers: int) -> int:
        CALLS.append("hoard")
        self.kept = getattr(self, "kept", [])
        self.kept.append(Opaque() if numbers == 0 else numbers)
        self.last = Opaque()
        return numbers

    def end_of_stream(self) -> list[int]:
        return [len(self.kept)]


class _Grouper(af.Task):
    """A generator task whose state for ``end_of_stream`` becomes unstorable after a while."""

    def run(self, numbers: int) -> Iterator[int]:
        CALLS.append("grouper")
        self.where = Opaque() if numbers >= 500 else numbers
        yield numbers

    def end_of_stream(self) -> list[int]:
        return []


@pytest.mark.parametrize("task", [_Hoard, _Grouper])
def test_an_end_of_stream_state_that_cannot_be_stored_fails_when_it_first_appears(tmp_path: Path, task: type) -> None:
    """A task class's instance state is checked like an accumulator: at the first batch with a new shape."""
    flow = numbers_flow()
    flow.add(task, name="held", inputs={"numbers": "numbers"})
    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, {"numbers": {"n": 100_000}}, store=tmp_path / "s", checkpoint_every=60)
    assert info.value.task == "held"
    cause = info.value.__cause__
    assert isinstance(cause, af.StoreError)
    assert re.search(r"task 'held', its attribute '\w+' after item", str(cause))
    assert "cannot encode a Opaque" in str(cause)
    assert len(CALLS) < 100_000  # found after the batch that made it, not after all the work


def test_an_end_of_stream_state_is_not_checked_without_a_store() -> None:
    flow = numbers_flow()
    flow.add(_Hoard, name="held", inputs={"numbers": "numbers"})
    result = af.run(flow, {"numbers": {"n": 50}})
    assert result.summary.tasks["held"].items_out == 51  # 50 items and the end-of-stream count
