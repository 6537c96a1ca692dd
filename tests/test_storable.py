"""What a checkpoint cannot hold is refused before the work (declared types) or at once (undeclared ones)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import attrs
import pytest

import actorflow as af

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
