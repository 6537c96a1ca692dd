"""The gateway: external sources fed from outside a run, taps on a task's output stream."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

import attrs
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

import actorflow as af
from actorflow._run._gateway import structure_item


@attrs.frozen
class Order:
    id: int
    qty: int
    note: str = ""


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: float
    y: float


flow = af.Flow("orders")
flow.source(af.external_source(Order, name="orders", doc="Orders from the shop."))


@flow.task
def amount(orders: Order, price: int = 3) -> int:
    return orders.qty * price


@flow.collector(init=0)
def revenue(acc: int, amount: int) -> int:
    return acc + amount


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    return json.loads(await ws.get_message())


async def reply(ws: WebSocketConnection, message: dict[str, Any], items: list[Any] | None = None) -> dict[str, Any]:
    """Send *message*, return its reply; watched items that arrive meanwhile go to *items*."""
    await ws.send_message(json.dumps(message))
    while True:
        msg = await recv(ws)
        if msg["type"] in ("ack", "error"):
            return msg
        if msg["type"] == "items" and items is not None:
            items.extend(zip(msg["seqs"], msg["items"], strict=True))


async def test_feed_in_process() -> None:
    async with af.open_run(flow) as run:
        feed = af.feed(run, "orders")
        assert af.feed(run, "orders") is feed
        await feed.send(Order(1, 2))
        await feed.send({"id": 2, "qty": 5, "note": "rush"})
        feed.close()
        result = await run.result()
    assert result["revenue"] == 21
    assert feed.accepted == 2
    assert run.graph.tasks["orders"].description == "Orders from the shop."


async def test_feed_refuses_bad_items_and_late_items() -> None:
    async with af.open_run(flow) as run:
        feed = af.feed(run, "orders")
        with pytest.raises(TypeError, match=r"does not fit .*Order.*qty"):
            await feed.send({"id": 1, "qty": "lots"})
        with pytest.raises(TypeError, match="expected a mapping of fields"):
            await feed.send(7)
        feed.close()
        with pytest.raises(af.ActorflowError, match="'orders' is closed"):
            await feed.send({"id": 1, "qty": 1})
        with pytest.raises(KeyError, match="no external source 'amount'"):
            af.feed(run, "amount")
    assert (await run.result())["revenue"] == 0


async def test_websocket_round_trip_push_and_subscribe() -> None:
    async with af.open_run(flow, {"amount": {"price": 10}}) as run, af.monitor.open_monitor(run, port=0) as mon:
        async with open_websocket_url(mon.url) as ws:
            hello = await recv(ws)
            assert hello["graph"]["tasks"][0]["external"] is True
            assert await reply(ws, {"op": "subscribe", "task": "amount", "id": "s"}) == {
                "type": "ack", "op": "subscribe", "id": "s"
            }
            again = await reply(ws, {"op": "subscribe", "task": "amount"})
            assert again["already"] is True
            seen: list[tuple[Any, int]] = []
            two = [{"id": 1, "qty": 1}, {"id": 2, "qty": 4}]
            ack = await reply(ws, {"op": "push", "source": "orders", "items": two}, seen)
            assert ack == {"type": "ack", "op": "push", "accepted": 2, "start": 0}
            ack = await reply(ws, {"op": "push", "source": "orders", "item": {"id": 3, "qty": 2, "note": "gift"}}, seen)
            assert ack["accepted"] == 1
            while len(seen) < 3:
                msg = await recv(ws)
                if msg["type"] == "items":
                    assert msg["task"] == "amount"
                    seen.extend(zip(msg["seqs"], msg["items"], strict=True))
            assert (await reply(ws, {"op": "end", "source": "orders"}, seen))["type"] == "ack"
            while True:
                msg = await recv(ws)
                if msg["type"] == "end":
                    break
            assert msg == {"type": "end", "task": "amount", "dropped": 0}
        result = await run.result()
    assert seen == [(0, 10), (1, 40), (2, 20)]
    assert result["revenue"] == 70


async def test_wrong_items_are_refused_whole_with_reasons() -> None:
    async with af.open_run(flow) as run, af.monitor.open_monitor(run, port=0) as mon:
        async with open_websocket_url(mon.url) as ws:
            await recv(ws)
            bad = await reply(ws, {"op": "push", "source": "orders",
                                   "items": [{"id": 1, "qty": 1}, {"id": 2}, "nope", {"id": "x", "qty": 1}]})
            assert bad["type"] == "error"
            text = bad["error"]
            assert "nothing was accepted" in text and "Order" in text
            assert "item 1" in text and "qty" in text
            assert "item 2: expected a mapping of fields" in text
            assert "item 3" in text and "id" in text
            assert "item 0" not in text
            sub = await reply(ws, {"op": "subscribe", "task": "revenue"})
            assert sub["type"] == "error" and "without an output stream" in sub["error"]
            await reply(ws, {"op": "end", "source": "orders"})
            late = await reply(ws, {"op": "push", "source": "orders", "item": {"id": 1, "qty": 1}})
            assert late["type"] == "error" and "closed" in late["error"]
        result = await run.result()
    assert result["revenue"] == 0


async def test_tap_in_process() -> None:
    numbers = af.Flow("tapped")
    numbers.source(af.external_source(int, name="xs"))

    @numbers.task
    def double(xs: int) -> int:
        return 2 * xs

    async with af.open_run(numbers) as run:
        t = af.tap(run, "double")
        with pytest.raises(KeyError, match="no task 'nope'"):
            af.tap(run, "nope")
        feed = af.feed(run, "xs")
        got: list[int] = []

        async def read() -> None:
            async for _seqs, items in t:
                got.extend(items)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            for x in range(5):
                await feed.send(x)
            feed.close()
        result = await run.result()
    assert got == [0, 2, 4, 6, 8]
    assert result["double"] == got
    assert t.dropped == 0


async def test_external_source_outside_a_run_and_bad_names() -> None:
    with pytest.raises(af.ActorflowError, match="identifier"):
        af.external_source(int, name="not a name")
    fn = af.external_source(int, name="lonely")
    with pytest.raises(af.ActorflowError, match="only run inside an actorflow run"):
        async for _ in fn():
            pass


def test_structure_item() -> None:
    assert structure_item({"id": 1, "qty": 2}, Order) == Order(1, 2)
    assert structure_item({"x": 1, "y": 2.5}, Point) == Point(1.0, 2.5)
    assert structure_item(3, float) == 3.0 and isinstance(structure_item(3, float), float)
    assert structure_item("red", Colour) is Colour.RED
    assert structure_item([1, 2], list[int]) == [1, 2]
    assert structure_item([1, 2], tuple[int, int]) == (1, 2)
    assert structure_item("anything", Any) == "anything"
    with pytest.raises(TypeError, match="expected int, got bool True"):
        structure_item(True, int)
    with pytest.raises(TypeError, match="expected str, got int 5"):
        structure_item(5, str)
    with pytest.raises(TypeError, match=r"expected list\[int\]"):
        structure_item(["a"], list[int])
    with pytest.raises(TypeError, match="Colour"):
        structure_item("green", Colour)
    with pytest.raises(TypeError, match="Point"):
        structure_item({"x": "left"}, Point)


def chain_flow() -> af.Flow:
    chain = af.Flow("chain")
    chain.source(af.external_source(int, name="inbox"))

    @chain.task(capacity=8)
    def plus(inbox: int) -> int:
        return inbox + 1

    @chain.collector(init=[])
    def kept(acc: list[int], plus: int) -> list[int]:
        acc.append(plus)
        return acc

    return chain


async def test_an_item_fed_to_an_idle_source_is_sent_before_send_returns_and_order_holds() -> None:
    """A feed whose source waits idle hands the item downstream in the feeder's own step; a burst
    queues in the feed's channel; the stream keeps the fed order either way."""
    async with af.open_run(chain_flow()) as run:
        feed, watch = run.feed("inbox"), run.tap("plus")
        await feed.send(0)  # before the source runs: through the channel
        assert await watch.__anext__() == ([0], [1])
        for wrong in (True, 1.0, "1"):  # refused, not sent, whether or not the source is idle
            with pytest.raises(TypeError, match="expected int"):
                await feed.send(wrong)
        for i in range(1, 100):  # one at a time: the source is idle each time
            await feed.send(i)
            assert run.summary.tasks["inbox"].items_out == i + 1  # sent already, no scheduling between
            assert await watch.__anext__() == ([i], [i + 1])
        for i in range(100, 5000):  # a burst: most wait in the channel, small mailboxes fill up
            await feed.send(i)
        feed.close()
        result = await run.result()
    assert result["kept"] == [i + 1 for i in range(5000)]
    assert feed.accepted == 5000 and feed.queued == 0


async def test_a_paused_run_takes_fed_items_but_sends_them_only_when_resumed() -> None:
    async with af.open_run(chain_flow()) as run:
        feed, watch = run.feed("inbox"), run.tap("plus")
        await feed.send(0)
        assert await watch.__anext__() == ([0], [1])
        run.pause()
        await feed.send(1)
        assert run.summary.tasks["inbox"].items_out == 1  # not sent while paused
        run.resume()
        assert await watch.__anext__() == ([1], [2])
        feed.close()
        result = await run.result()
    assert result["kept"] == [1, 2]


async def test_fed_items_sent_at_once_are_in_the_checkpoint_and_the_run_ends_with_all(tmp_path: Any) -> None:
    async with af.open_run(chain_flow(), store=tmp_path / "s", checkpoint_every=0.001) as run:
        feed, watch = run.feed("inbox"), run.tap("plus")
        events = af.testing.collect_events(run)
        for i in range(300):
            await feed.send(i)
            await watch.__anext__()
        feed.close()
        result = await run.result()
    assert result["kept"] == [i + 1 for i in range(300)]
    written = [e for e in events.events if isinstance(e, af.events.CheckpointWritten)]
    assert written and written[-1].final


async def _feed_until_a_checkpoint_then_crash(store: Any, upto: int) -> None:
    """Feed 0..upto-1 one at a time, then cut the run off right after a checkpoint (as a crash would)."""
    with trio.CancelScope() as scope:
        async with af.open_run(chain_flow(), store=store, checkpoint_every=0.001) as run:
            feed, watch = run.feed("inbox"), run.tap("plus")
            for i in range(upto):
                await feed.send(i)
                await watch.__anext__()
            run.bus.hook(lambda e: scope.cancel() if isinstance(e, af.events.CheckpointWritten) else None)
            await run.result()
    assert scope.cancelled_caught


async def test_a_resumed_external_source_takes_new_items_from_where_its_checkpoint_left_off(tmp_path: Any) -> None:
    """Nothing fed after a resume is skipped: ``feed.start`` says how many items the checkpoint holds,
    and the feeder sends again from there; every item is counted once."""
    store = tmp_path / "s"
    await _feed_until_a_checkpoint_then_crash(store, 40)
    async with af.open_run(chain_flow(), store=store, resume=True) as run:
        feed = run.feed("inbox")
        assert 0 < feed.start <= 40
        for i in range(feed.start, 60):
            await feed.send(i)
        feed.close()
        result = await run.result()
    assert result["kept"] == [i + 1 for i in range(60)]
