"""Deep type checks: container elements, record fields and tuple positions are checked on ports,
options and the gateway by one rule (``bool`` is not an ``int``); large containers by sample.
Errors name the task, the port, the item's sequence number and the offending part's path."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from trio_websocket import open_websocket_url

import actorflow as af
from actorflow._base._typing import SAMPLE_HEAD, SAMPLE_LIMIT, deep_checker, sample_indices, type_problem
from actorflow._define._sampling import CHECK_FIRST, CHECK_STRIDE, sampled_checker


@attrs.define
class Pair:
    n: int
    tags: list[str]


@dataclasses.dataclass
class Point:
    x: float
    y: float


@attrs.define
class Node:  # recursive: its check is compiled once and refers to itself
    value: int
    children: list[Node]


BAD = [  # (port type, a good value, a bad value, the path and what the error says about it)
    (list[int], [1, 2], [0, "x"], "[1]: expected int, got str 'x'"),
    (list[int], [1, 2], [0, True], "[1]: expected int, got bool True"),
    (dict[str, int], {"n": 0}, {"n": "0"}, "['n']: expected int, got str '0'"),
    (dict[str, int], {"n": 0}, {1: 0}, "key 1: expected str, got int 1"),
    (tuple[int, str], (1, "a"), (1, 2), "[1]: expected str, got int 2"),
    (tuple[int, str], (1, "a"), (1,), "expected tuple[int, str] (2 elements), got 1 elements"),
    (tuple[int, ...], (1, 2, 3), (1, 2, "3"), "[2]: expected int, got str '3'"),
    (list[list[int]], [[1], [2, 3]], [[1], [2, "3"]], "[1][1]: expected int, got str '3'"),
    (set[str], {"a", "b"}, {"a", 2}, "expected str, got int 2"),
    (Pair, Pair(1, ["a"]), Pair(1, ["a", 3]), ".tags[1]: expected str, got int 3"),
    (Pair, Pair(1, []), Pair(True, []), ".n: expected int, got bool True"),
    (Point, Point(1, 2.5), Point(1, "2"), ".y: expected float, got str '2'"),  # type: ignore[arg-type]
    (Node, Node(1, [Node(2, [])]), Node(1, [Node("2", [])]), ".children[0].value: expected int, got str '2'"),
    (list[int | None], [1, None], [1, None, 2.5], "[2]: expected int | None, got float 2.5"),
    (dict[str, list[int]], {"a": [1]}, {"a": [1], "b": [2, False]}, "['b'][1]: expected int, got bool False"),
]


def port_flow(tp: Any, value: Any, annotate_sender: bool) -> af.Flow:
    """source -> make (returns *value* for item 2, a good value of the same shape otherwise) -> use."""
    flow = af.Flow("deep")

    @flow.source
    def numbers() -> Iterator[int]:
        yield from range(4)

    def make(numbers: int) -> Any:
        return value if numbers == 2 else GOOD[id(tp)]

    if annotate_sender:
        make.__annotations__["return"] = tp
    else:
        del make.__annotations__["return"]
    flow.task(make)

    def use(make: Any) -> None:
        pass

    use.__annotations__["make"] = tp
    flow.sink(use)
    return flow


GOOD: dict[int, Any] = {id(tp): good for tp, good, _, _ in BAD}


@pytest.mark.parametrize(("tp", "good", "bad", "why"), BAD, ids=[str(i) for i in range(len(BAD))])
@pytest.mark.parametrize("annotate_sender", [True, False], ids=["sender-declares", "receiver-declares"])
def test_a_port_refuses_a_wrong_element_naming_task_port_seq_and_path(
    tp: Any, good: Any, bad: Any, why: str, annotate_sender: bool
) -> None:
    af.run(port_flow(tp, good, annotate_sender))  # good values pass
    with pytest.raises(af.MailboxTypeError) as info:
        af.run(port_flow(tp, bad, annotate_sender))
    err = info.value
    assert (err.task, err.port) == (("make", "out") if annotate_sender else ("use", "make"))
    assert err.seq == 2
    assert why in str(err) and "(item seq 2)" in str(err)


def test_a_shallow_sender_is_checked_at_the_receivers_port() -> None:
    flow = af.Flow("shallow")

    @flow.source
    def numbers() -> Iterator[int]:
        yield from range(3)

    @flow.task
    def make(numbers: int) -> list:  # type: ignore[type-arg]  # says list, not list[int]
        return [numbers, "x"] if numbers == 1 else [numbers]

    @flow.collector(init=0)
    def count(acc: int, make: list[int]) -> int:
        return acc + len(make)

    with pytest.raises(af.MailboxTypeError, match=r"task 'count', port 'make'.*\(item seq 1\): \[1\]: expected int"):
        af.run(flow)


def test_bool_is_not_an_int_but_int_subclasses_and_int_for_float_pass() -> None:
    class Small(int):
        pass

    flow = af.Flow("numbers")

    @flow.source
    def numbers() -> Iterator[list[float]]:
        yield [1, 2.5, Small(3)]

    @flow.task
    def flags(numbers: list[float]) -> list[int | bool]:
        return [True, 1]

    assert af.run(flow)["flags"] == [[True, 1]]
    assert type_problem(list[float], [1.0, True]) == "[1]: expected float, got bool True"


def test_a_product_is_checked_deeply() -> None:
    flow = af.Flow("product")

    @flow.source
    def numbers() -> Iterator[int]:
        yield from range(3)

    @flow.collector(init=[])
    def gather(acc: list[int], numbers: int) -> list[int]:
        return [*acc, numbers]

    @flow.task
    def label(gather: list[int]) -> dict[str, int]:
        return {str(x): x if x != 1 else "one" for x in gather}  # type: ignore[misc]

    with pytest.raises(af.MailboxTypeError, match=r"task 'label', port 'out': .*\['1'\]: expected int, got str 'one'"):
        af.run(flow)


def test_large_containers_are_checked_by_the_documented_sample() -> None:
    n = 1000
    step = (n - SAMPLE_HEAD) // (SAMPLE_LIMIT - SAMPLE_HEAD)
    indices = list(sample_indices(n))
    assert indices[:SAMPLE_HEAD] == list(range(SAMPLE_HEAD))
    assert indices[SAMPLE_HEAD:-1] == list(range(SAMPLE_HEAD, n, step)) and indices[-1] == n - 1
    assert len(indices) <= SAMPLE_LIMIT + 2
    check = deep_checker(list[int])
    assert check is not None
    for i in (0, SAMPLE_HEAD - 1, SAMPLE_HEAD, SAMPLE_HEAD + step, n - 1):  # sampled: found
        items: list[Any] = list(range(n))
        items[i] = "x"
        assert not check(items)
        assert type_problem(list[int], items) == f"[{i}]: expected int, got str 'x'"
    unsampled = SAMPLE_HEAD + 1
    items = list(range(n))
    items[unsampled] = "x"
    assert check(items)  # not looked at: the documented price of a bounded check
    small = list(range(SAMPLE_LIMIT))
    small[SAMPLE_LIMIT - 2] = "x"  # type: ignore[call-overload]
    assert not check(small)  # up to SAMPLE_LIMIT elements every one is checked


def test_a_port_checks_its_first_items_whole_then_a_documented_sample_of_each_batch() -> None:
    check = sampled_checker(list[int])
    assert check is not None
    good, bad = [1, 2], [1, "x"]
    assert not check([good] * 5 + [bad])  # the first CHECK_FIRST items: every one
    check = sampled_checker(list[int])
    assert check is not None and check([good] * CHECK_FIRST)
    batch = [good] * (4 * CHECK_STRIDE)
    for picked in (0, CHECK_STRIDE, 3 * CHECK_STRIDE):  # positions 0, 8, 16, ...: found
        assert not check([*batch[:picked], bad, *batch[picked + 1:]])
    assert check([good, bad, *batch[2:]])  # position 1 is not looked at: the documented price of the sample
    full = sampled_checker(list[int], full=True)
    assert full is not None and full([good] * CHECK_FIRST)
    assert not full([good, bad, *batch[2:]])  # check="full": every item


def sample_flow(check: str, bad: Any) -> af.Flow:
    """rows (list[int], one bad row or every row bad after CHECK_FIRST) -> total."""
    flow = af.Flow("sampled")

    @flow.source(check=check)
    def rows(n: int = 3000) -> Iterator[list[int]]:
        for i in range(n):
            yield [i, "x"] if bad(i) else [i, i]  # type: ignore[list-item]

    @flow.collector(init=0)
    def total(acc: int, rows: list[int]) -> int:
        return acc + len(rows)

    return flow


def test_check_full_finds_a_single_bad_item_anywhere() -> None:
    with pytest.raises(af.MailboxTypeError, match=r"\(item seq 2345\): \[1\]: expected int, got str 'x'"):
        af.run(sample_flow("full", lambda i: i == 2345))


def test_the_sample_finds_items_that_are_wrong_throughout_a_stream() -> None:
    with pytest.raises(af.MailboxTypeError, match=r"task 'rows', port 'out'.*\[1\]: expected int, got str 'x'") as info:
        af.run(sample_flow("sample", lambda i: i >= CHECK_FIRST + 5))
    assert info.value.seq >= CHECK_FIRST + 5  # the first sampled bad item (the first of a batch at the latest)


def test_the_check_setting_is_validated() -> None:
    flow = af.Flow("bad-check")
    with pytest.raises(af.DefinitionError, match=r"task 'rows': check must be 'sample' or 'full', got 'all'"):
        flow.source(name="rows", check="all")(lambda: iter([[1]]))


def test_checks_are_compiled_once_per_type_and_plain_types_need_none() -> None:
    assert deep_checker(list[int]) is deep_checker(list[int])
    assert deep_checker(Node) is deep_checker(Node)
    for plain in (int, str, float, int | None, Any):
        assert deep_checker(plain) is None  # the class check says it all: the fast path
    for deep in (Pair | None, list[int], tuple[int, ...], Point):
        assert deep_checker(deep) is not None


# -- options ---------------------------------------------------------------------------------------


DEFAULT_PAIR = Pair(1, [])


def options_flow() -> af.Flow:
    flow = af.Flow("opts")

    @flow.source
    def numbers(sizes: list[int] = [1], weights: dict[str, int] = {"a": 1},  # noqa: B006
                pair: tuple[int, str] = (1, "a"), item: Pair = DEFAULT_PAIR, n: int = 0) -> Iterator[int]:
        yield from sizes

    return flow


@pytest.mark.parametrize(("option", "value", "why"), [
    ("sizes", [0, "x"], "[1]: expected int, got str 'x'"),
    ("sizes", [0, True], "[1]: expected int, got bool True"),
    ("weights", {"n": "0"}, "['n']: expected int, got str '0'"),
    ("pair", (1, 2), "[1]: expected str, got int 2"),
    ("item", Pair(1, ["a", 2]), ".tags[1]: expected str, got int 2"),
    ("item", {"n": "1", "tags": []}, ".n: expected int, got str '1'"),
    ("n", True, "expected int, got bool True"),
])
def test_options_apply_the_same_rule(option: str, value: Any, why: str) -> None:
    with pytest.raises(af.InvocationError) as info:
        options_flow().bind({"numbers": {option: value}})
    assert f"option {option!r}" in str(info.value) and why in str(info.value)


def test_options_of_the_right_types_are_kept_and_lists_become_tuples() -> None:
    graph = options_flow().bind({"numbers": {"sizes": [3, 4], "weights": {"b": 2}, "pair": [2, "b"], "n": "5"}})
    opts = graph.options["numbers"]
    assert opts["sizes"] == [3, 4] and opts["weights"] == {"b": 2} and opts["pair"] == (2, "b") and opts["n"] == 5


# -- the gateway -----------------------------------------------------------------------------------


def gateway_flow(item_type: Any) -> af.Flow:
    flow = af.Flow("gate")
    flow.source(af.external_source(item_type, name="inbox"))

    @flow.collector(init=0)
    def count(acc: int, inbox: Any) -> int:
        return acc + 1

    return flow


async def test_feed_refuses_wrong_elements() -> None:
    async with af.open_run(gateway_flow(dict[str, int])) as run:
        feed = af.feed(run, "inbox")
        with pytest.raises(TypeError, match=r"\['n'\]: expected int, got str '0'"):
            await feed.send({"n": "0"})
        with pytest.raises(TypeError, match=r"\['n'\]: expected int, got bool True"):
            await feed.send({"n": True})
        await feed.send({"n": 0})
        feed.close()
        assert (await run.result())["count"] == 1


async def test_websocket_push_refuses_wrong_elements() -> None:
    async with af.open_run(gateway_flow(list[int])) as run, af.monitor.open_monitor(run, port=0) as mon:
        async with open_websocket_url(mon.url) as ws:
            json.loads(await ws.get_message())  # hello
            await ws.send_message(json.dumps({"op": "push", "source": "inbox", "items": [[1, 2], [0, "x"], [True]]}))
            while (msg := json.loads(await ws.get_message()))["type"] not in ("ack", "error"):
                pass
            assert msg["type"] == "error"
            assert "item 1: expected list[int], got list [0, 'x'] ([1]: expected int, got str 'x')" in msg["error"]
            assert "item 2: expected list[int], got list [True] ([0]: expected int, got bool True)" in msg["error"]
            await ws.send_message(json.dumps({"op": "end", "source": "inbox"}))
        assert (await run.result())["count"] == 0


def test_a_task_class_takes_the_check_setting() -> None:
    class Rows(af.Task):
        kind = "source"
        check = "full"

        def run(self) -> Iterator[list[int]]:
            for i in range(3000):
                yield [i, "x"] if i == 2345 else [i, i]  # type: ignore[list-item]

    flow = af.Flow("class-check")
    flow.add(Rows)
    assert flow.tasks["rows"].settings.check == "full"
    with pytest.raises(af.MailboxTypeError, match=r"\(item seq 2345\)"):
        af.run(flow)
